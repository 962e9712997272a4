"""Configuration: one frozen object from environment variables and an optional TOML file.

Precedence: command-line flags (applied by the CLI) over environment variables over the TOML
file (``--config FILE`` or ``VMGATE_CONFIG``) over defaults. The defaults run the embedded mode:
no Kafka, no ClickHouse server. Secrets are held in :class:`Secret` and never printed.

Environment variables: those of :data:`ENVIRONMENT_VARIABLES` (``KAFKA_BOOTSTRAP``,
``CLICKHOUSE_URL``, ``CLICKHOUSE_USER``, ``CLICKHOUSE_PASSWORD``, ``VMGATE_STARTUP_WAIT_S``, ...;
docs/configuration.md lists them). Extra librdkafka settings (SASL, TLS, tuning) go in the TOML
file's ``[kafka.librdkafka]`` table and are passed through to every client.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final

_SECRET_HINTS = ("password", "secret", "token", "key")

#: Lines per batch of offline ``rate``. 50,000 measured faster than 100,000 for the whole
#: command (a batch's work buffers stay small enough to be reused rather than given back and
#: zeroed again) and holds less memory (benchmarks/RESULTS.md, issue 17).
RATE_BATCH_SIZE = 50_000

#: Settings handed to a confluent-kafka client.
KafkaConfig = dict[str, str | int | float | bool]


@dataclass(frozen=True)
class ReferenceTopics:
    """The three compacted topics a publication is spread over."""

    rateplans: str = "rateplans.v1"
    associations: str = "associations.v1"
    memberships: str = "memberships.v1"

    def for_file(self, name: str) -> str:
        """The topic that carries file ``name`` of a plans folder."""
        if name == "associations.csv":
            return self.associations
        if name == "memberships.csv":
            return self.memberships
        return self.rateplans

    def all(self) -> tuple[str, str, str]:
        """The three topic names."""
        return (self.rateplans, self.associations, self.memberships)


class Secret:
    """A value that is never shown: ``repr`` and ``str`` give ``***``; :meth:`reveal` gives it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        """Hold the value."""
        self._value = value

    def reveal(self) -> str:
        """The value itself, for the client that needs it."""
        return self._value

    def __repr__(self) -> str:
        """Masked."""
        return "***"

    def __str__(self) -> str:
        """Masked."""
        return "***"

    def __eq__(self, other: object) -> bool:
        """Equal when the hidden values are."""
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        """Hash of the hidden value."""
        return hash(self._value)

    def __bool__(self) -> bool:
        """True when a non-empty secret is held."""
        return bool(self._value)


@dataclass(frozen=True, repr=False)
class Settings:
    """Everything the pipeline's commands can be configured with."""

    kafka_bootstrap: str | None = None
    group_id: str = "raters"
    cdr_topic: str = "cdr.v1"
    dlq_topic: str = "cdr.dlq.v1"
    payments_topic: str = "payments.v1"
    payments_dlq_topic: str = "payments.dlq.v1"
    client_status_topic: str = "client-status.v1"
    client_status_dlq_topic: str = "client-status.dlq.v1"
    rateplans_topic: str = "rateplans.v1"
    associations_topic: str = "associations.v1"
    memberships_topic: str = "memberships.v1"
    cdr_partitions: int = 6
    librdkafka: Mapping[str, str] = field(default_factory=dict)
    clickhouse_url: Secret | None = None  # may carry a password
    clickhouse_user: str | None = None
    clickhouse_password: Secret | None = None
    database: str = "vmgate"
    batch_size: int = 50_000
    batch_timeout_s: float = 0.5
    batch_linger_s: float = 0.1
    metrics_port: int | None = None
    metrics_address: str = "127.0.0.1"
    #: How long ``setup`` and ``run`` wait for a Kafka broker or ClickHouse server that does not
    #: accept connections yet (a stack still starting); 0 tries once.
    startup_wait_s: float = 120.0
    #: Money alerts (docs/alerts.md): prepaid credit below this amount, in the account's currency.
    alert_prepaid_threshold: Decimal = Decimal(10)
    #: A cost spike: the last complete hour's cost above k times the trailing median ...
    alert_spike_k: Decimal = Decimal(3)
    #: ... and at least this amount.
    alert_spike_minimum: Decimal = Decimal(1)
    #: The trailing window of the median, in hours.
    alert_spike_hours: int = 168
    #: The window of the negative-margin and inactive-traffic alerts, in hours up to now.
    alert_window_hours: int = 24

    def kafka(self, **overrides: str | int | float | bool) -> KafkaConfig:
        """Settings for a librdkafka client: bootstrap, pass-through extras, then overrides."""
        if not self.kafka_bootstrap:
            msg = "no Kafka configured: set KAFKA_BOOTSTRAP (host:port) or pass --bootstrap"
            raise ValueError(msg)
        config: KafkaConfig = {"bootstrap.servers": self.kafka_bootstrap}
        config.update(self.librdkafka)
        config.update(overrides)
        return config

    def reference_topics(self) -> ReferenceTopics:
        """The compacted topics reference data is published to."""
        return ReferenceTopics(
            self.rateplans_topic, self.associations_topic, self.memberships_topic
        )

    def __repr__(self) -> str:
        """The settings with every secret masked."""
        shown = ", ".join(f"{name}={value!r}" for name, value in self.masked().items())
        return f"Settings({shown})"

    def masked(self) -> dict[str, object]:
        """The effective settings with every secret masked, for printing."""
        shown: dict[str, object] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, Secret):
                value = str(value)
            elif isinstance(value, Mapping):
                value = {
                    k: "***" if any(h in k.lower() for h in _SECRET_HINTS) else v
                    for k, v in value.items()
                }
            shown[item.name] = value
        return shown


_ENV: dict[str, tuple[str, type]] = {
    "KAFKA_BOOTSTRAP": ("kafka_bootstrap", str),
    "VMGATE_GROUP": ("group_id", str),
    "VMGATE_CDR_TOPIC": ("cdr_topic", str),
    "VMGATE_DLQ_TOPIC": ("dlq_topic", str),
    "VMGATE_PAYMENTS_TOPIC": ("payments_topic", str),
    "VMGATE_PAYMENTS_DLQ_TOPIC": ("payments_dlq_topic", str),
    "VMGATE_CLIENT_STATUS_TOPIC": ("client_status_topic", str),
    "VMGATE_CLIENT_STATUS_DLQ_TOPIC": ("client_status_dlq_topic", str),
    "VMGATE_RATEPLANS_TOPIC": ("rateplans_topic", str),
    "VMGATE_ASSOCIATIONS_TOPIC": ("associations_topic", str),
    "VMGATE_MEMBERSHIPS_TOPIC": ("memberships_topic", str),
    "CLICKHOUSE_URL": ("clickhouse_url", Secret),
    "CLICKHOUSE_USER": ("clickhouse_user", str),
    "CLICKHOUSE_PASSWORD": ("clickhouse_password", Secret),
    "VMGATE_DATABASE": ("database", str),
    "VMGATE_BATCH_SIZE": ("batch_size", int),
    "VMGATE_METRICS_PORT": ("metrics_port", int),
    "VMGATE_METRICS_ADDRESS": ("metrics_address", str),
    "VMGATE_STARTUP_WAIT_S": ("startup_wait_s", float),
    "VMGATE_ALERT_PREPAID_THRESHOLD": ("alert_prepaid_threshold", Decimal),
    "VMGATE_ALERT_SPIKE_K": ("alert_spike_k", Decimal),
    "VMGATE_ALERT_SPIKE_MINIMUM": ("alert_spike_minimum", Decimal),
    "VMGATE_ALERT_SPIKE_HOURS": ("alert_spike_hours", int),
    "VMGATE_ALERT_WINDOW_HOURS": ("alert_window_hours", int),
}

#: Every environment variable the pipeline reads (``VMGATE_LOG_FORMAT`` is read by the CLI).
ENVIRONMENT_VARIABLES: Final = frozenset({*_ENV, "VMGATE_CONFIG", "VMGATE_LOG_FORMAT"})


def load_settings(
    config_file: Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build the settings from an optional TOML file and the environment."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = config_file or (Path(env["VMGATE_CONFIG"]) if env.get("VMGATE_CONFIG") else None)
    if path is not None:
        values.update(_from_toml(path))
    for name, (attribute, kind) in _ENV.items():
        raw = env.get(name)
        if raw:
            try:
                values[attribute] = decimal(raw) if kind is Decimal else kind(raw)
            except ValueError as exc:
                msg = f"environment variable {name}={raw!r}: {exc}"
                raise ValueError(msg) from exc
    wait = values.get("startup_wait_s", Settings.startup_wait_s)
    if not isinstance(wait, int | float) or not math.isfinite(wait) or wait < 0:
        msg = f"VMGATE_STARTUP_WAIT_S (startup.wait_s) must be 0 or more seconds, not {wait!r}"
        raise ValueError(msg)
    for name in ("alert_prepaid_threshold", "alert_spike_k", "alert_spike_minimum"):
        if name in values:
            values[name] = decimal(values[name])
    for name in ("alert_spike_hours", "alert_window_hours"):
        hours = values.get(name, 1)
        if isinstance(hours, bool) or not isinstance(hours, int) or hours < 1:
            msg = f"{name} must be a whole number of hours, 1 or more, not {hours!r}"
            raise ValueError(msg)
    return replace(Settings(), **values)


def decimal(value: object) -> Decimal:
    """An exact decimal from text or a TOML number (at most 9 decimal places); else ValueError."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        msg = f"{value!r} is not a decimal number"
        raise ValueError(msg)
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        number = Decimal("NaN")
    exponent = number.as_tuple().exponent
    if not number.is_finite() or not isinstance(exponent, int) or exponent < -9:
        msg = f"{value!r} is not a decimal number with at most 9 decimal places"
        raise ValueError(msg)
    return number


def _from_toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    kafka = data.get("kafka", {})
    clickhouse = data.get("clickhouse", {})
    rater = data.get("rater", {})
    startup = data.get("startup", {})
    alerts = data.get("alerts", {})
    out: dict[str, Any] = {}
    simple = {
        "kafka_bootstrap": kafka.get("bootstrap"),
        "group_id": kafka.get("group"),
        "cdr_topic": kafka.get("cdr_topic"),
        "dlq_topic": kafka.get("dlq_topic"),
        "payments_topic": kafka.get("payments_topic"),
        "payments_dlq_topic": kafka.get("payments_dlq_topic"),
        "client_status_topic": kafka.get("client_status_topic"),
        "client_status_dlq_topic": kafka.get("client_status_dlq_topic"),
        "rateplans_topic": kafka.get("rateplans_topic"),
        "associations_topic": kafka.get("associations_topic"),
        "memberships_topic": kafka.get("memberships_topic"),
        "cdr_partitions": kafka.get("cdr_partitions"),
        "clickhouse_user": clickhouse.get("user"),
        "database": clickhouse.get("database"),
        "batch_size": rater.get("batch_size"),
        "batch_timeout_s": rater.get("batch_timeout_s"),
        "batch_linger_s": rater.get("batch_linger_s"),
        "metrics_port": rater.get("metrics_port"),
        "metrics_address": rater.get("metrics_address"),
        "startup_wait_s": startup.get("wait_s"),
        "alert_prepaid_threshold": alerts.get("prepaid_threshold"),
        "alert_spike_k": alerts.get("spike_k"),
        "alert_spike_minimum": alerts.get("spike_minimum"),
        "alert_spike_hours": alerts.get("spike_hours"),
        "alert_window_hours": alerts.get("window_hours"),
    }
    out.update({k: v for k, v in simple.items() if v is not None})
    if "librdkafka" in kafka:
        out["librdkafka"] = {str(k): str(v) for k, v in kafka["librdkafka"].items()}
    if clickhouse.get("url"):
        out["clickhouse_url"] = Secret(str(clickhouse["url"]))
    if clickhouse.get("password"):
        out["clickhouse_password"] = Secret(str(clickhouse["password"]))
    return out
