"""The compose stack, its Prometheus and Grafana provisioning, and the dashboards' shape.

No Docker engine runs here, so the stack is checked by reading it: the compose file parses,
every file it mounts exists, every ``vmgate-rating`` command it runs is accepted by the real
CLI parser (parsed, not run), every variable a service sets is one its program reads and the
pipeline's settings are understood by the real configuration loader (credentials never in a
URL, the same password the ClickHouse server gets, whatever its characters), every service
restarts as it should and the CLI runs under an init process, Prometheus scrapes the port the
raters serve metrics on, and Grafana's data sources are the ones the dashboards name. The
dashboards' SQL runs in tests/integration/test_dashboards.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree import ElementTree

import pytest
import yaml

from pipeline.cli import build_parser
from pipeline.config import ENVIRONMENT_VARIABLES, load_settings
from pipeline.services.metrics import RaterMetrics
from pipeline.sinks.open_store import server_settings
from tests.support.grafana import (
    CLICKHOUSE_TYPE,
    DEPLOY,
    PROMETHEUS_TYPE,
    PROVISIONING,
    REPO_ROOT,
    TimeRange,
    expand_macros,
    expand_variables,
    load_dashboards,
    panels,
    promql_metric_names,
    queries,
    unsafe_variable_uses,
)

COMPOSE = DEPLOY / "docker-compose.yml"


def _rater_metric_names() -> tuple[frozenset[str], frozenset[str]]:
    """The series names a rater exposes, read from its real registry (pipeline/services/metrics.py).

    Returns (every series name a query may use, one name per metric). Counters are exposed as
    ``<name>_total``, histograms as ``<name>_bucket``, ``_sum`` and ``_count``; the
    ``_created`` series are left out (the dashboards do not use them).
    """
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    series: set[str] = set()
    primary: set[str] = set()
    for family in RaterMetrics().registry.collect():
        names = [family.name + suffix for suffix in suffixes[family.type]]
        series.update(names)
        primary.add(names[0])
    return frozenset(series), frozenset(primary)


RATER_SERIES, RATER_METRICS = _rater_metric_names()
#: Series Prometheus itself writes for every scrape target.
PROMETHEUS_SERIES = frozenset({"up"})
ALLOWED_METRICS = RATER_SERIES | PROMETHEUS_SERIES

#: The metrics issue 7 names for the dashboards; the raters must keep exposing them.
DASHBOARD_METRICS = (
    "vmgate_cdrs_consumed_total",
    "vmgate_cdrs_rated_total",
    "vmgate_cdrs_unrated_total",
    "vmgate_cdrs_rejected_total",
    "vmgate_batch_size_cdrs_bucket",
    "vmgate_batch_duration_seconds_bucket",
    "vmgate_consumer_lag_messages",
    "vmgate_store_write_errors_total",
    "vmgate_store_write_retries_total",
    "vmgate_reference_data_info",
)


# --- compose ----------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_]\w*)(?P<op>:?-)(?P<default>[^}]*)\})")


def _interpolate(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Compose's interpolation, by default with every variable unset (a fresh clone, no .env).

    Only ``$$`` and ``${NAME:-default}`` / ``${NAME-default}`` are allowed, so every variable
    has a default and the stack runs from a fresh clone; anything else fails the test. A value
    from ``environ`` is pasted as it is, never interpolated again (as compose does).
    """
    env = environ or {}
    leftover = re.findall(r"\$\{?[A-Za-z_]\w*", _VARIABLE.sub("", text))
    assert not leftover, f"compose variables without a default: {leftover}"

    def value(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name")
        if match.group("op") == ":-":
            return env.get(name) or match.group("default")
        return env.get(name, match.group("default"))

    return _VARIABLE.sub(value, text)


def _interpolated(value: Any, environ: Mapping[str, str] | None = None) -> Any:
    if isinstance(value, str):
        return _interpolate(value, environ)
    if isinstance(value, list):
        return [_interpolated(v, environ) for v in value]
    if isinstance(value, dict):
        return {k: _interpolated(v, environ) for k, v in value.items()}
    return value


def _load_compose(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    raw = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(raw, dict)
    interpolated: dict[str, Any] = _interpolated(raw, environ)
    return interpolated


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load_compose()


def _services(compose: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose["services"]
    return services


def _vmgate_services(compose: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the rater image (built from deploy/Dockerfile)."""
    return {n: s for n, s in _services(compose).items() if "build" in s}


def _environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _bind_mounts(service: Mapping[str, Any]) -> list[tuple[str, str]]:
    mounts = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append((source, target))
    return mounts


def _metrics_port(command: list[str]) -> int:
    return int(command[command.index("--metrics-port") + 1])


def test_compose_has_the_pipeline_services(compose: dict[str, Any]) -> None:
    services = _services(compose)
    assert {"kafka", "clickhouse", "setup", "rater", "prometheus", "grafana"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    for name, service in services.items():
        if "image" in service and "build" not in service:
            assert re.search(r":v?\d[\w.]*$", service["image"]), f"{name}: pin an image version"
    assert int(services["rater"]["deploy"]["replicas"]) >= 2
    assert "container_name" not in services["rater"]  # replicas need generated names


def test_every_variable_has_a_default() -> None:
    _interpolated(yaml.safe_load(COMPOSE.read_text(encoding="utf-8")))
    with pytest.raises(AssertionError, match="without a default"):
        _interpolate("password: ${SECRET}")


def test_every_mounted_file_exists_in_the_repository(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes", {}))
    seen = 0
    for name, service in _services(compose).items():
        for source, _ in _bind_mounts(service):
            path = (DEPLOY / source).resolve()
            assert path.exists(), f"{name} mounts {source}, which is not in the repository"
            assert path.is_relative_to(REPO_ROOT), f"{name} mounts {source} from outside"
            seen += 1
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} uses undeclared volume {source}"
    assert seen >= 5


def test_services_share_one_network_and_only_grafana_is_published(
    compose: dict[str, Any],
) -> None:
    for name, service in _services(compose).items():
        assert service.get("networks") == ["vmgate"], name
        if name != "grafana":
            assert "ports" not in service, f"{name} must not publish a port"
    assert compose["networks"] == {"vmgate": {}}
    ports = _services(compose)["grafana"]["ports"]
    assert ports, "Grafana's port is published"
    assert all(str(p).startswith("127.0.0.1:") for p in ports), ports


def test_dependencies_wait_for_health_or_completion(compose: dict[str, Any]) -> None:
    services = _services(compose)
    for name, service in services.items():
        for target, rule in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits on {target}'s health"
            elif condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} must be one-shot"
            else:
                assert condition == "service_started", (name, target, condition)
    for name in ("kafka", "clickhouse", "rater", "prometheus", "grafana"):
        assert "healthcheck" in services[name], name
    assert services["setup"]["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "clickhouse": {"condition": "service_healthy"},
    }
    assert services["rater"]["depends_on"]["setup"] == {
        "condition": "service_completed_successfully"
    }


def test_every_vmgate_command_is_accepted_by_the_cli(compose: dict[str, Any]) -> None:
    services = _vmgate_services(compose)
    assert {"setup", "rater"} <= set(services)
    parser = build_parser()
    for name, service in services.items():
        argv = service["command"]
        assert isinstance(argv, list), name
        assert argv, name
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # argparse reports the problem on stderr, then exits
            pytest.fail(f"service {name}: `vmgate-rating {' '.join(argv)}` refused ({exc})")
        assert args.command == argv[0]
    assert services["setup"]["command"] == ["setup"]
    assert services["rater"]["command"][0] == "run"
    assert _metrics_port(services["rater"]["command"]) > 0


#: A password with every character that differs between raw and percent-decoded, or that a
#: shell, YAML or a URL would treat specially (the pipeline's side; the ClickHouse server reads
#: a users file's password as XML, so it cannot take `&`, `<` or `]]>`, docs/deployment.md).
AWKWARD_PASSWORD = "p@ss:w/o%25rd #?&+ ='\"\\ $x é€ 密"


@pytest.mark.parametrize("password", [None, AWKWARD_PASSWORD], ids=["default", "awkward"])
def test_vmgate_services_talk_to_the_compose_kafka_and_clickhouse(password: str | None) -> None:
    compose = _load_compose({"VMGATE_CLICKHOUSE_PASSWORD": password} if password else None)
    services = _services(compose)
    clickhouse = _environment(services["clickhouse"])
    # users.d/vmgate.xml reads the password of the pipeline's user from this variable.
    if password:
        assert clickhouse["VMGATE_CLICKHOUSE_PASSWORD"] == password
    else:
        # The server parses a from_env value as XML (tests/integration/storage/
        # test_access_rules.py): the defaults must hold no `&`, `<` or `]]>`.
        for variable in ("VMGATE_CLICKHOUSE_PASSWORD", "GRAFANA_CLICKHOUSE_PASSWORD"):
            assert not re.search(r"[&<]|\]\]>", clickhouse[variable]), variable
    for name, service in _vmgate_services(compose).items():
        settings = load_settings(environ=_environment(service))
        assert settings.kafka_bootstrap == "kafka:9092", name
        assert settings.clickhouse_url is not None, f"{name} would use an embedded store"
        # What the pipeline connects with (pipeline.sinks.open_store), from its own settings.
        server = server_settings(
            settings.clickhouse_url.reveal(),
            settings.database,
            settings.clickhouse_user,
            settings.clickhouse_password,
        )
        assert server.url == "http://clickhouse:8123", name
        assert server.database == settings.database == "vmgate"
        assert server.username == PIPELINE_USER
        # The very string the server's user gets: nothing decoded, nothing encoded.
        assert server.password.reveal() == clickhouse["VMGATE_CLICKHOUSE_PASSWORD"]


def _users_file(name: str) -> ElementTree.Element:
    return ElementTree.parse(DEPLOY / "clickhouse" / "users.d" / name).getroot()


#: The pipeline's ClickHouse user: the one users.d/vmgate.xml defines.
PIPELINE_USER = next(
    u.tag for u in _users_file("vmgate.xml").findall("users/*") if u.tag != "default"
)


def test_the_server_users_read_their_passwords_from_the_environment(
    compose: dict[str, Any],
) -> None:
    clickhouse = _environment(_services(compose)["clickhouse"])
    # The image's entrypoint would paste CLICKHOUSE_PASSWORD into XML unescaped and, with
    # CLICKHOUSE_DB, run its init as a `default` user that users.d/vmgate.xml removes.
    assert not {"CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD", "CLICKHOUSE_DB"} & set(clickhouse)
    users = _users_file("vmgate.xml").find("users")
    assert users is not None
    default = users.find("default")
    assert default is not None
    assert default.get("remove") == "remove"
    password = users.find(f"{PIPELINE_USER}/password")
    assert password is not None
    assert password.get("from_env") == "VMGATE_CLICKHOUSE_PASSWORD"
    assert "VMGATE_CLICKHOUSE_PASSWORD" in clickhouse
    grafana = _users_file("grafana.xml").find("users/grafana/password")
    assert grafana is not None
    assert grafana.get("from_env") == "GRAFANA_CLICKHOUSE_PASSWORD"
    assert "GRAFANA_CLICKHOUSE_PASSWORD" in clickhouse
    healthcheck = " ".join(_services(compose)["clickhouse"]["healthcheck"]["test"])
    assert f"--user {PIPELINE_USER}" in healthcheck
    # $$ in the file: the container's shell expands the variable, not compose.
    assert '--password "$VMGATE_CLICKHOUSE_PASSWORD"' in healthcheck


#: Variables the pipeline reads that every service talking to the stack must set.
STACK_VARIABLES = frozenset(
    {
        "KAFKA_BOOTSTRAP",
        "CLICKHOUSE_URL",
        "CLICKHOUSE_USER",
        "CLICKHOUSE_PASSWORD",
        "VMGATE_DATABASE",
    }
)

#: Variables the other services set, each read by its image (or by a file mounted into it).
IMAGE_VARIABLES: dict[str, tuple[re.Pattern[str], str]] = {
    "kafka": (
        re.compile(r"KAFKA_[A-Z_]+"),
        "apache/kafka turns every KAFKA_* variable into a server.properties setting",
    ),
    "clickhouse": (
        re.compile(r"VMGATE_CLICKHOUSE_PASSWORD|GRAFANA_CLICKHOUSE_PASSWORD"),
        "users.d/vmgate.xml and users.d/grafana.xml read their users' passwords (from_env)",
    ),
    "grafana": (
        re.compile(r"GF_[A-Z_]+|GRAFANA_CLICKHOUSE_PASSWORD"),
        "Grafana reads GF_<SECTION>_<KEY> as its settings; the provisioned ClickHouse data "
        "source expands $GRAFANA_CLICKHOUSE_PASSWORD",
    ),
}


def test_every_variable_a_service_sets_is_read(compose: dict[str, Any]) -> None:
    vmgate = _vmgate_services(compose)
    for name, service in _services(compose).items():
        env = _environment(service)
        if name in vmgate:
            unread = set(env) - ENVIRONMENT_VARIABLES
            assert not unread, f"{name} sets {unread}, which pipeline/config.py does not read"
            missing = STACK_VARIABLES - set(env)
            assert not missing, f"{name} does not set {missing}"
            continue
        if not env:
            continue
        assert name in IMAGE_VARIABLES, f"{name} sets variables: say which program reads them"
        pattern, _why = IMAGE_VARIABLES[name]
        unknown = {variable for variable in env if not pattern.fullmatch(variable)}
        assert not unknown, f"{name} sets {unknown}, which its image does not read"
    variable = (DEPLOY / "grafana/provisioning/datasources/vmgate.yml").read_text()
    assert "$GRAFANA_CLICKHOUSE_PASSWORD" in variable
    assert 'from_env="GRAFANA_CLICKHOUSE_PASSWORD"' in (
        DEPLOY / "clickhouse/users.d/grafana.xml"
    ).read_text(encoding="utf-8")


_CREDENTIALS_IN_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s@]*@", re.IGNORECASE)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [str(k), *_strings(v)]]
    return []


def test_no_service_passes_credentials_in_a_url() -> None:
    compose = _load_compose({"VMGATE_CLICKHOUSE_PASSWORD": AWKWARD_PASSWORD})
    for name, service in _services(compose).items():
        for text in _strings(service):
            assert not _CREDENTIALS_IN_URL.search(text), f"{name}: credentials in {text!r}"
    provisioned = [*PROVISIONING.rglob("*.yml"), DEPLOY / "prometheus" / "prometheus.yml"]
    for path in provisioned:
        text = path.read_text(encoding="utf-8")
        assert not _CREDENTIALS_IN_URL.search(text), path
    assert _CREDENTIALS_IN_URL.search("http://vmgate:pw@clickhouse:8123/vmgate")
    assert not _CREDENTIALS_IN_URL.search("1@kafka:9093")  # a quorum voter, not a URL


def test_every_service_restarts_as_it_should(compose: dict[str, Any]) -> None:
    services = _services(compose)
    vmgate = _vmgate_services(compose)
    for name, service in services.items():
        assert "restart" in service, f"{name} has no restart policy"
        long_running = name not in vmgate or service["command"][0] == "run"
        expected = "unless-stopped" if long_running else "no"
        assert service["restart"] == expected, name
    for name in ("kafka", "clickhouse", "prometheus", "grafana", "rater"):
        assert services[name]["restart"] == "unless-stopped", name
    for name in ("setup", "demo-network", "demo-plans", "demo-cdrs", "cli"):
        assert services[name]["restart"] == "no", name


def test_the_cli_runs_under_an_init_process(compose: dict[str, Any]) -> None:
    vmgate = _vmgate_services(compose)
    assert {"setup", "rater", "cli"} <= set(vmgate)
    for name, service in vmgate.items():
        assert service.get("init") is True, f"{name} runs vmgate-rating without init: true"


def test_the_image_holds_the_package_and_its_ddl(compose: dict[str, Any]) -> None:
    for name, service in _vmgate_services(compose).items():
        build = service["build"]
        assert (DEPLOY / build["context"]).resolve() == REPO_ROOT, name
        assert (REPO_ROOT / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile", name
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert "FROM python:3.11." in dockerfile  # the exact tag: test_versions.py
    sent = [
        line[1:].rstrip("/")
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    copied = {}
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            *sources, target = line.split()[1:]
            for source in sources:
                assert (REPO_ROOT / source).exists(), source
                assert source in sent, f"{source} is copied but not in the build context"
                copied[source] = target
    assert {"pipeline", "schemas"} <= set(copied)
    # The DDL is package data (built from schemas/): the image needs no path to it.
    assert "VMGATE_SCHEMAS" not in dockerfile
    assert (REPO_ROOT / "schemas" / "clickhouse").is_dir()
    assert 'ENTRYPOINT ["vmgate-rating"]' in dockerfile
    assert "RUN pip install ." in dockerfile


# --- Prometheus -------------------------------------------------------------------------------


def test_prometheus_scrapes_every_rater_on_its_metrics_port(compose: dict[str, Any]) -> None:
    services = _services(compose)
    mounts = dict(_bind_mounts(services["prometheus"]))
    config_path = DEPLOY / "prometheus" / "prometheus.yml"
    assert mounts["./prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "vmgate-raters"]
    (discovery,) = job["dns_sd_configs"]
    assert discovery["names"] == ["rater"]
    assert "rater" in services
    assert discovery["type"] == "A"
    command = services["rater"]["command"]
    assert discovery["port"] == _metrics_port(command)
    # The metrics listen on 127.0.0.1 unless told otherwise: Prometheus is another container.
    assert command[command.index("--metrics-address") + 1] == "0.0.0.0"


# --- Grafana ----------------------------------------------------------------------------------


def _provisioned_datasources() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((PROVISIONING / "datasources").glob("*.yml")):
        for source in yaml.safe_load(path.read_text(encoding="utf-8"))["datasources"]:
            found[source["uid"]] = source
    return found


def test_grafana_provisioning_is_mounted_where_grafana_reads_it(compose: dict[str, Any]) -> None:
    grafana = _services(compose)["grafana"]
    mounts = dict(_bind_mounts(grafana))
    assert mounts["./grafana/provisioning/datasources"] == "/etc/grafana/provisioning/datasources"
    assert mounts["./grafana/provisioning/dashboards"] == "/etc/grafana/provisioning/dashboards"
    target = mounts["./grafana/dashboards"]
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "vmgate.yml").read_text())
    assert [p["options"]["path"] for p in providers["providers"]] == [target]
    env = _environment(grafana)
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(target + "/")
    assert (DEPLOY / "grafana" / "dashboards" / home.removeprefix(target + "/")).is_file()
    assert env["GF_PLUGINS_PREINSTALL_SYNC"].split("@")[0] == CLICKHOUSE_TYPE


def test_grafana_datasources_reach_the_compose_services(compose: dict[str, Any]) -> None:
    services = _services(compose)
    sources = _provisioned_datasources()
    assert {s["type"] for s in sources.values()} == {CLICKHOUSE_TYPE, PROMETHEUS_TYPE}
    (clickhouse,) = [s for s in sources.values() if s["type"] == CLICKHOUSE_TYPE]
    assert clickhouse["jsonData"]["host"] == "clickhouse"
    assert clickhouse["jsonData"]["port"] == 9000
    assert clickhouse["jsonData"]["protocol"] == "native"
    assert (
        clickhouse["jsonData"]["defaultDatabase"]
        == (_environment(services["setup"])["VMGATE_DATABASE"])
    )
    # The password comes from Grafana's environment, the same value ClickHouse's user has.
    password_variable = clickhouse["secureJsonData"]["password"].lstrip("$").strip("{}")
    grafana_env = _environment(services["grafana"])
    clickhouse_env = _environment(services["clickhouse"])
    assert grafana_env[password_variable] == clickhouse_env[password_variable]
    users = ElementTree.parse(DEPLOY / "clickhouse" / "users.d" / "grafana.xml").getroot()
    user = users.find(f"users/{clickhouse['jsonData']['username']}")
    assert user is not None
    password = user.find("password")
    assert password is not None
    assert password.get("from_env") == password_variable
    profile = users.find(f"profiles/{user.findtext('profile')}")
    assert profile is not None
    assert profile.findtext("readonly") == "1"
    (prometheus,) = [s for s in sources.values() if s["type"] == PROMETHEUS_TYPE]
    assert prometheus["url"] == "http://prometheus:9090"
    assert "prometheus" in services


# --- dashboards -------------------------------------------------------------------------------

DASHBOARDS = load_dashboards()


def test_the_five_dashboards_are_there() -> None:
    assert set(DASHBOARDS) == {
        "traffic-revenue-cost.json",
        "money-alerts.json",
        "owed-to-resellers.json",
        "unrated-rejected.json",
        "rater-throughput-lag.json",
    }


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_shape(name: str) -> None:
    dashboard = DASHBOARDS[name]
    sources = _provisioned_datasources()
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"]), dashboard["uid"]
    assert dashboard["title"].startswith("VMGate: ")
    assert isinstance(dashboard["schemaVersion"], int)
    assert dashboard["time"]["from"].startswith("now-")
    ids = [p["id"] for p in panels(dashboard)]
    assert ids
    assert len(ids) == len(set(ids)), ids
    for panel in panels(dashboard):
        where = f"{name} panel {panel['id']} {panel['title']!r}"
        assert panel["type"] in {"stat", "table", "timeseries", "barchart"}, where
        assert panel["description"], where
        grid = panel["gridPos"]
        assert min(grid["w"], grid["h"]) > 0, where
        assert grid["x"] + grid["w"] <= 24, where
        for item in [panel, *panel["targets"]]:
            source = item["datasource"]
            assert source["uid"] in sources, f"{where}: unknown data source {source}"
            assert sources[source["uid"]]["type"] == source["type"], where
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), where
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"]["uid"] in sources, variable
    uids = [d["uid"] for d in DASHBOARDS.values()]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_variable_a_query_uses_is_defined(name: str) -> None:
    dashboard = DASHBOARDS[name]
    defined = {v["name"]: "x" for v in dashboard["templating"]["list"]}
    for query in queries(name, dashboard):
        expand_variables(query.text, defined)  # raises on an unknown variable or format
        if query.datasource_type == CLICKHOUSE_TYPE:
            # Grafana pastes values into the SQL text: only percent-encoded, inside
            # decodeURLComponent('...'), can a value not leave its string literal.
            assert unsafe_variable_uses(query.text) == [], (name, query.where)


def test_promql_panels_use_only_the_raters_metric_names() -> None:
    found = set()
    for name, dashboard in DASHBOARDS.items():
        for query in queries(name, dashboard):
            if query.datasource_type != PROMETHEUS_TYPE:
                continue
            names = promql_metric_names(query.text)
            assert names, (name, query.where, query.text)
            unknown = names - ALLOWED_METRICS
            assert not unknown, f"{name} {query.where}: unknown metrics {unknown}"
            found |= names
    # The dashboards show every metric the raters expose (a histogram through any series).
    shown = {
        name.removesuffix(suffix) for name in found for suffix in ("_bucket", "_sum", "_count")
    }
    missing = {
        m for m in RATER_METRICS if m not in found and m.removesuffix("_bucket") not in shown
    }
    assert not missing, f"rater metrics no dashboard shows: {missing}"
    assert set(DASHBOARD_METRICS) <= RATER_SERIES, set(DASHBOARD_METRICS) - RATER_SERIES


def test_metric_name_check_catches_a_misspelt_metric() -> None:
    expr = 'sum by (reason) (rate(vmgate_cdrs_rejectd_total{job="x"}[$__rate_interval]))'
    assert promql_metric_names(expr) == {"vmgate_cdrs_rejectd_total"}
    assert promql_metric_names(expr) - ALLOWED_METRICS
    assert promql_metric_names(
        "histogram_quantile(0.99, sum by (le) (rate(vmgate_batch_duration_seconds_bucket[5m])))"
        " / on (instance) group_left up"
    ) == {"vmgate_batch_duration_seconds_bucket", "up"}


# --- the plugin's macros and Grafana's variables, as the SQL test expands them ----------------

WINDOW = TimeRange(
    datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, 12, 30, tzinfo=UTC), timedelta(0)
)


def test_macros_expand_as_the_clickhouse_plugin_does() -> None:
    start, end = 1772323200, 1772454600
    assert expand_macros("WHERE $__timeFilter(start_time)", WINDOW) == (
        f"WHERE start_time >= toDateTime({start}) AND start_time <= toDateTime({end})"
    )
    assert expand_macros("$__timeFilter_ms( t )", WINDOW) == (
        f"t >= fromUnixTimestamp64Milli({start}000) AND t <= fromUnixTimestamp64Milli({end}000)"
    )
    assert expand_macros("$__fromTime AND $__toTime", WINDOW) == (
        f"toDateTime({start}) AND toDateTime({end})"
    )
    assert expand_macros("$__dateFilter(d)", WINDOW) == (
        "d >= toDate('2026-03-01') AND d <= toDate('2026-03-02')"
    )
    # Grafana's interval is never below one second in the plugin's expansion.
    assert expand_macros("$__timeInterval(start_time)", WINDOW) == (
        "toStartOfInterval(toDateTime(start_time), INTERVAL 1 second)"
    )
    assert expand_macros("$__interval_s", WINDOW) == "1"
    with pytest.raises(ValueError, match=r"\$__timeGroup"):
        expand_macros("$__timeGroup(start_time, '1h')", WINDOW)
    with pytest.raises(ValueError, match="expects 1 argument"):
        expand_macros("$__timeFilter(a, b)", WINDOW)


def test_sqlstring_quotes_like_grafana() -> None:
    assert expand_variables("x = ${t:sqlstring}", {"t": "o'neil"}) == "x = 'o''neil'"
    # Grafana's sqlStringFormatter writes " as \" and leaves a backslash as it is.
    assert expand_variables("${t:sqlstring}", {"t": 'a"b\\'}) == "'a\\\"b\\'"
    assert expand_variables("x = '$t' AND [[t]]", {"t": "a"}) == "x = 'a' AND a"
    assert expand_variables("$__timeFilter(x)", {}) == "$__timeFilter(x)"
    with pytest.raises(KeyError, match="tenantt"):
        expand_variables("${tenantt:sqlstring}", {"tenant": "a"})
    with pytest.raises(ValueError, match="csv"):
        expand_variables("${tenant:csv}", {"tenant": "a"})


def test_percentencode_encodes_like_grafana() -> None:
    """encodeURIComponentStrict: only A-Z a-z 0-9 - _ . ~ stay, UTF-8 bytes as upper-case %XX."""
    value = "a-Z_0.~ '\"\\!()*%{}$\né🙂"
    assert expand_variables("${t:percentencode}", {"t": value}) == (
        "a-Z_0.~%20%27%22%5C%21%28%29%2A%25%7B%7D%24%0A%C3%A9%F0%9F%99%82"
    )
    assert expand_variables("${t:percentencode}", {"t": ""}) == ""
    with pytest.raises(UnicodeEncodeError):  # JavaScript throws URIError on a lone surrogate
        expand_variables("${t:percentencode}", {"t": "\ud800"})


def test_the_variable_check_refuses_every_other_form() -> None:
    bound = "decodeURLComponent('${tenant:percentencode}')"
    assert unsafe_variable_uses(f"WHERE tenant_id = {bound} AND $__timeFilter(t)") == []
    for unsafe in (
        "${tenant:sqlstring}",
        "'${tenant}'",
        "'$tenant'",
        "'[[tenant]]'",
        "'${tenant:percentencode}'",
        "decodeURLComponent(${tenant:percentencode})",
        "decodeURLComponent('${tenant:raw}')",
    ):
        assert unsafe_variable_uses(f"WHERE tenant_id = {unsafe}") != [], unsafe


def test_deployment_doc_is_linked_from_the_readme() -> None:
    doc = REPO_ROOT / "docs" / "deployment.md"
    assert doc.is_file()
    assert "(docs/deployment.md)" in (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    text = doc.read_text(encoding="utf-8")
    for name in DASHBOARDS:
        assert name in text, f"docs/deployment.md does not describe {name}"
