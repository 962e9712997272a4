"""The Grafana side of the dashboards in ``deploy/grafana``, rebuilt for tests.

Grafana never shows a dashboard's SQL to ClickHouse as written: the browser first replaces
template variables (``${tenant:percentencode}``), then the ClickHouse data source plugin's backend
replaces its macros (``$__timeFilter(start_time)``) and sends the result. To run every panel's
query against the real engine, tests must do the same two steps the same way. This module does
that, and nothing else:

- :func:`expand_variables`: Grafana's template syntax ``$name``, ``${name}``, ``${name:format}``
  and ``[[name]]``, with the formats the dashboards may use, written as Grafana writes them
  (grafana/scenes ``packages/scenes/src/variables/interpolation/formatRegistry.ts``, read at
  commit ac1dec6d; these formatters are unchanged since 6f3a345d, 2023-10-26, so Grafana 12.1
  has them): ``percentencode`` is ``encodeURIComponentStrict``, JavaScript's
  ``encodeURIComponent`` of the UTF-8 text with ``!'()*`` encoded too, so only ``A-Z a-z 0-9
  - _ . ~`` and ``%XX`` are left; ``sqlstring`` quotes with ``'``, doubles every ``'`` and writes
  ``"`` as ``\\"`` (``SQL_ESCAPE_MAP``) and leaves a backslash alone; ``raw`` is the value.
  A format named in the SQL wins over the data source's own format function
  (``sceneInterpolator.ts``: ``fmt = fmt2 || fmt3 || format``); without one the ClickHouse
  plugin's ``format`` (``src/data/CHDatasource.ts`` at v4.8.2, f10be344) returns a single value
  as is. An unknown variable or format is an error, so a panel that names a variable its
  dashboard does not define fails the test.
- :func:`unsafe_variable_uses`: every variable reference of a ClickHouse query that is not
  ``decodeURLComponent('${name:percentencode}')``, the one form in which a value cannot leave
  the string literal (see :data:`BOUND_VARIABLE`).
- :func:`expand_macros`: the macros of grafana-clickhouse-datasource (``pkg/macros/macros.go``,
  v4), matched the way its library (grafana/sqlds) matches them: the pattern
  ``\\$__name\\b(?:\\((.*?)\\))?``, arguments split on ``,`` and trimmed. Time bounds become
  ``toDateTime(<unix seconds>)`` or ``fromUnixTimestamp64Milli(<ms>)``, dates ``toDate('...')``,
  intervals whole seconds (at least 1). Any other ``$__`` name left in the SQL is an error: the
  plugin would pass it to ClickHouse as is and the panel would fail.

Also here: reading the dashboards and provisioning files, and naming the metric names a PromQL
expression uses (:func:`promql_metric_names`).
"""

from __future__ import annotations

import json
import math
import re
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
PROVISIONING = DEPLOY / "grafana" / "provisioning"

CLICKHOUSE_TYPE = "grafana-clickhouse-datasource"
PROMETHEUS_TYPE = "prometheus"


@dataclass(frozen=True)
class TimeRange:
    """The dashboard time range and the interval Grafana derived from it for a panel."""

    start: datetime
    end: datetime
    interval: timedelta


@dataclass(frozen=True)
class Query:
    """One query of a dashboard: a panel target or a template variable's query."""

    dashboard: str
    where: str  # "panel 3 'Calls' target A" or "variable tenant"
    datasource_type: str
    text: str  # rawSql for ClickHouse, expr for Prometheus
    time_series: bool = False  # a ClickHouse target of query type timeSeries


def load_dashboards() -> dict[str, dict[str, Any]]:
    """Every ``*.json`` of ``deploy/grafana/dashboards``, by file name."""
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(DASHBOARDS.glob("*.json"))
    }


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def _datasource_type(item: Mapping[str, Any], default: Mapping[str, Any] | None) -> str:
    datasource = item.get("datasource") or default or {}
    return str(datasource.get("type", ""))


def queries(name: str, dashboard: Mapping[str, Any]) -> Iterator[Query]:
    """The queries of a dashboard: template variables first, then every panel target."""
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        text = query if isinstance(query, str) else (query or {}).get("rawSql", "")
        yield Query(
            name,
            f"variable {variable['name']}",
            _datasource_type(variable, None),
            text,
        )
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            kind = _datasource_type(target, panel.get("datasource"))
            text = target.get("rawSql") if kind == CLICKHOUSE_TYPE else target.get("expr")
            yield Query(
                name,
                f"panel {panel.get('id')} {panel.get('title')!r} target {target.get('refId')}",
                kind,
                str(text or ""),
                time_series=target.get("queryType") == "timeSeries",
            )


# --- template variables -----------------------------------------------------------------------

_VARIABLE = re.compile(
    r"\$(?P<plain>[A-Za-z_]\w*)"
    r"|\$\{(?P<braced>[A-Za-z_]\w*)(?::(?P<format>[A-Za-z]+))?\}"
    r"|\[\[(?P<old>[A-Za-z_]\w*)\]\]"
)


def _percentencode(value: str) -> str:
    """Grafana's ``percentencode``: ``encodeURIComponentStrict`` (scenes ``formatRegistry.ts``).

    ``encodeURIComponent`` keeps ``A-Z a-z 0-9 - _ . ! ~ * ' ( )`` and writes every other UTF-8
    byte as ``%XX`` (upper-case hex); the strict variant also writes ``! ' ( ) *`` as ``%XX``.
    What is left is exactly what ``urllib.parse.quote`` keeps with ``safe=""``. A lone
    surrogate makes JavaScript throw ``URIError`` and Python raise ``UnicodeEncodeError``.
    """
    return urllib.parse.quote(value, safe="")


def _sqlstring(value: str) -> str:
    """Grafana's ``sqlstring`` (``sqlStringFormatter``): ``'`` doubled, ``"`` as ``\\"``.

    A backslash is left as it is, and ClickHouse reads a backslash in a string literal as an
    escape: ``x\\`` becomes ``'x\\'``, whose closing quote is escaped, so the literal runs on
    into the SQL after it. Kept so a test can show why the dashboards no longer use it.
    """
    return "'" + value.replace("'", "''").replace('"', '\\"') + "'"


_FORMATS: dict[str, Callable[[str], str]] = {
    "percentencode": _percentencode,
    "sqlstring": _sqlstring,
    "raw": str,
}

#: How a dashboard's ClickHouse SQL names a variable: Grafana percent-encodes the value and
#: ClickHouse's ``decodeURLComponent`` gives the exact text back. The value never reaches the
#: SQL as itself, only as ``A-Z a-z 0-9 - _ . ~ %``, none of which can end a ClickHouse string
#: literal, start an escape, a query parameter ``{...}``, a comment or a plugin macro ``$__``.
#: Bound query parameters (``{tenant:String}``) would be better, but the plugin cannot send
#: them: at v4.8.2 (f10be344) its backend opens clickhouse-go with static settings only
#: (``pkg/plugin/driver.go``: ``Settings: customSettings``; ``MutateQuery`` adds only
#: ``clickhouse.WithUserLocation``), nothing in ``pkg/`` calls ``clickhouse.WithParameters``,
#: and ``src/data/ast.ts`` still says ``// TODO: support query parameters`` (as it does on the
#: newest commit read, 1d04063a).
BOUND_VARIABLE = "decodeURLComponent('${{{name}:percentencode}}')"


def expand_variables(sql: str, values: Mapping[str, str]) -> str:
    """Replace Grafana template variables the way Grafana does before the plugin sees the SQL.

    ``$__...`` names are left for :func:`expand_macros`. A variable with no format is pasted
    as is (the plugin's own format function leaves single values unquoted).
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group("plain") or match.group("braced") or match.group("old")
        if name.startswith("__"):
            return match.group(0)
        if name not in values:
            msg = f"template variable {name!r} is not defined (known: {sorted(values)})"
            raise KeyError(msg)
        form = match.group("format")
        if form is None:
            return values[name]
        if form not in _FORMATS:
            msg = f"variable format {form!r} of {name!r} is not one of {sorted(_FORMATS)}"
            raise ValueError(msg)
        return _FORMATS[form](values[name])

    return _VARIABLE.sub(replace, sql)


# --- ClickHouse plugin macros -----------------------------------------------------------------


def _seconds(moment: datetime) -> int:
    return math.floor(moment.timestamp())


def _millis(moment: datetime) -> int:
    return math.floor(moment.timestamp() * 1000)


def _date_time(moment: datetime) -> str:
    return f"toDateTime({_seconds(moment)})"


def _date_time64(moment: datetime) -> str:
    return f"fromUnixTimestamp64Milli({_millis(moment)})"


def _date(moment: datetime) -> str:
    return f"toDate('{moment.strftime('%Y-%m-%d')}')"


def _one(args: list[str], macro: str) -> str:
    if len(args) != 1:
        msg = f"$__{macro} expects 1 argument, got {len(args)}: {args}"
        raise ValueError(msg)
    return args[0]


def _interval_seconds(window: TimeRange) -> int:
    return max(int(window.interval.total_seconds()), 1)


def _interval_millis(window: TimeRange) -> int:
    return max(int(window.interval.total_seconds() * 1000), 1)


def _macro(name: str, args: list[str], window: TimeRange) -> str:
    start, end = window.start, window.end
    if name == "fromTime":
        return _date_time(start)
    if name == "toTime":
        return _date_time(end)
    if name == "fromTime_ms":
        return _date_time64(start)
    if name == "toTime_ms":
        return _date_time64(end)
    if name == "timeFilter":
        column = _one(args, name)
        return f"{column} >= {_date_time(start)} AND {column} <= {_date_time(end)}"
    if name == "timeFilter_ms":
        column = _one(args, name)
        return f"{column} >= {_date_time64(start)} AND {column} <= {_date_time64(end)}"
    if name == "dateFilter":
        column = _one(args, name)
        return f"{column} >= {_date(start)} AND {column} <= {_date(end)}"
    if name in ("dateTimeFilter", "dt"):
        if len(args) != 2:
            msg = f"$__{name} expects 2 arguments, got {len(args)}: {args}"
            raise ValueError(msg)
        day, moment = args
        return (
            f"({day} >= {_date(start)} AND {day} <= {_date(end)}) AND "
            f"({moment} >= {_date_time(start)} AND {moment} <= {_date_time(end)})"
        )
    if name == "timeInterval":
        column = _one(args, name)
        seconds = _interval_seconds(window)
        return f"toStartOfInterval(toDateTime({column}), INTERVAL {seconds} second)"
    if name == "timeInterval_ms":
        column = _one(args, name)
        millis = _interval_millis(window)
        return f"toStartOfInterval(toDateTime64({column}, 3), INTERVAL {millis} millisecond)"
    if name == "interval_s":
        return str(_interval_seconds(window))
    msg = f"unknown macro $__{name}"  # pragma: no cover - the caller only passes known names
    raise ValueError(msg)


#: The macro names of grafana-clickhouse-datasource's backend (``Macros`` in macros.go).
MACROS = (
    "fromTime",
    "toTime",
    "fromTime_ms",
    "toTime_ms",
    "timeFilter",
    "timeFilter_ms",
    "dateFilter",
    "dateTimeFilter",
    "dt",
    "timeInterval",
    "timeInterval_ms",
    "interval_s",
)


def expand_macros(sql: str, window: TimeRange) -> str:
    """Replace the plugin's macros as its backend does; refuse any other ``$__`` name."""
    for name in MACROS:
        pattern = re.compile(rf"\$__{name}\b(?:\((.*?)\))?")
        for match in pattern.finditer(sql):
            args = [arg.strip() for arg in (match.group(1) or "").split(",")]
            sql = sql.replace(match.group(0), _macro(name, args, window))
    left = re.findall(r"\$__\w+", sql)
    if left:
        msg = f"macros the ClickHouse plugin does not know: {sorted(set(left))}"
        raise ValueError(msg)
    return sql


def render_sql(sql: str, values: Mapping[str, str], window: TimeRange) -> str:
    """Variables first (Grafana's frontend), then macros (the plugin's backend)."""
    return expand_macros(expand_variables(sql, values), window)


def unsafe_variable_uses(sql: str) -> list[str]:
    """Each variable reference of ``sql`` not written as :data:`BOUND_VARIABLE`.

    ``$__`` macros are the plugin's, not variables, and are not listed.
    """
    found = []
    for match in _VARIABLE.finditer(sql):
        name = match.group("plain") or match.group("braced") or match.group("old")
        if name.startswith("__"):
            continue
        bound = BOUND_VARIABLE.format(name=name)
        prefix, _, suffix = bound.partition(match.group(0))
        start, end = match.start() - len(prefix), match.end() + len(suffix)
        if start < 0 or sql[start:end] != bound:
            found.append(match.group(0))
    return found


# --- PromQL -----------------------------------------------------------------------------------

_PROMQL_KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "atan2",
        "inf",
        "nan",
    }
)


def promql_metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (not functions, labels, keywords or numbers).

    Good enough for the dashboards' expressions: strings, label matchers ``{...}``, ranges
    ``[...]`` and grouping label lists (``by (...)``, ``on (...)``...) are removed first; what is
    left that is an identifier not followed by ``(`` names a metric.
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', " ", expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])([A-Za-z_:][\w:]*)(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in _PROMQL_KEYWORDS:
            continue
        names.add(word)
    return names
