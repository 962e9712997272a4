"""``alerts``: the money alerts of a store (docs/alerts.md), for an operator or a cron job."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pipeline.commands.options import (
    format_option,
    identifier,
    instant,
    positive_int,
    store_option,
    with_store,
)


def _decimal(text: str) -> Decimal:
    from pipeline.config import decimal

    try:
        return decimal(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_commands(commands: Any) -> None:
    """Add ``alerts``."""
    alerts = commands.add_parser(
        "alerts",
        help="money alerts: prepaid credit low, postpaid over limit, cost spikes, negative "
        "margin per destination, traffic through inactive accounts",
        description="Every money alert at --now (default: the clock), one row each: kind, "
        "tenant_id, scope (customer, client, reseller; destination for a margin), subject "
        "(the account or the destination), currency, figure, threshold and the window judged. "
        "Thresholds come from the settings (docs/configuration.md) and these flags override "
        "them. Exit status: 0 no alert, 1 at least one alert, 2 refused input. See "
        "docs/alerts.md for each definition.",
    )
    store_option(alerts)
    alerts.add_argument("--tenant", type=identifier, help="only this tenant's alerts")
    alerts.add_argument(
        "--now", type=instant, help="judge at this instant (RFC 3339; default: now)"
    )
    alerts.add_argument(
        "--prepaid-threshold",
        type=_decimal,
        help="prepaid credit below this alerts (default $VMGATE_ALERT_PREPAID_THRESHOLD or 10)",
    )
    alerts.add_argument(
        "--spike-k",
        type=_decimal,
        help="a spike is the last hour's cost above k times the trailing median (default 3)",
    )
    alerts.add_argument(
        "--spike-minimum",
        type=_decimal,
        help="and at least this cost in that hour (default 1)",
    )
    alerts.add_argument(
        "--spike-hours", type=positive_int, help="hours of the trailing median (default 168)"
    )
    alerts.add_argument(
        "--window-hours",
        type=positive_int,
        help="window of negative margin and inactive traffic, up to now (default 24)",
    )
    format_option(alerts)
    alerts.set_defaults(run=_alerts)


def _alerts(args: argparse.Namespace) -> int:
    from pipeline.commands.options import settings_of
    from pipeline.storage.alerts import AlertThresholds, money_alerts, render_alerts

    settings = settings_of(args)

    def pick(flag: Any, setting: Any) -> Any:
        return setting if flag is None else flag

    thresholds = AlertThresholds(
        prepaid_threshold=pick(args.prepaid_threshold, settings.alert_prepaid_threshold),
        spike_k=pick(args.spike_k, settings.alert_spike_k),
        spike_minimum=pick(args.spike_minimum, settings.alert_spike_minimum),
        spike_hours=pick(args.spike_hours, settings.alert_spike_hours),
        window_hours=pick(args.window_hours, settings.alert_window_hours),
    )
    now = args.now or datetime.now(UTC)
    store = with_store(args)
    try:
        rows = money_alerts(store, now, thresholds, args.tenant)
    finally:
        store.close()
    print(render_alerts(rows, args.format))
    return 1 if rows else 0
