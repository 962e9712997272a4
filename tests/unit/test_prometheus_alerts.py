"""The raters' Prometheus alert rules (deploy/prometheus/alerts.yml), read as Prometheus reads them.

No Prometheus runs here, so every rule's expression is parsed by a PromQL parser (the
``promql-parser`` package, a port of Prometheus' grammar) and every metric and label it selects is
checked against what the raters really expose (their registry, pipeline/services/metrics.py) and
what Prometheus adds to every target (``up``, ``job``, ``instance``). The rules file must be the
one Prometheus loads: named in prometheus.yml and mounted there by the compose file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from pipeline.services.metrics import RaterMetrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
TARGET_LABELS = frozenset({"job", "instance"})
JOB = "vmgate-raters"


def _series() -> dict[str, frozenset[str]]:
    """Every series name a rater exposes, with its labels (counters as ``<name>_total``)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    found: dict[str, frozenset[str]] = {"up": frozenset()}
    metrics = RaterMetrics()
    for family in metrics.registry.collect():
        collector = metrics.registry._names_to_collectors[family.name + suffixes[family.type][0]]
        labels = frozenset(getattr(collector, "_labelnames", ()))
        if family.type == "histogram":
            labels |= {"le"}
        for suffix in suffixes[family.type]:
            found[family.name + suffix] = labels
    return found


SERIES = _series()


def _rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def _selectors(node: Any) -> list[Any]:
    """The vector selectors of a parsed expression, at any depth."""
    if isinstance(node, promql_parser.VectorSelector):
        return [node]
    children = []
    for attribute in ("lhs", "rhs", "expr", "param", "vector_selector"):
        child = getattr(node, attribute, None)
        if child is not None:
            children.append(child)
    children.extend(getattr(node, "args", None) or [])
    return [selector for child in children for selector in _selectors(child)]


def test_prometheus_loads_the_rules_the_compose_file_mounts() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert [job["job_name"] for job in config["scrape_configs"]] == [JOB]
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))
    volumes = compose["services"]["prometheus"]["volumes"]
    assert "./prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in volumes


@pytest.mark.parametrize("rule", _rules(), ids=lambda rule: rule["alert"])
def test_every_rule_parses_and_selects_what_the_raters_expose(rule: dict[str, Any]) -> None:
    assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
    assert rule["alert"].startswith("Vmgate")
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule["annotations"]["summary"]
    assert rule["annotations"]["description"]
    if "for" in rule:
        assert promql_parser.parse_duration(rule["for"])
    selectors = _selectors(promql_parser.parse(rule["expr"]))
    assert selectors, rule["expr"]
    for selector in selectors:
        assert selector.name in SERIES, f"{rule['alert']}: unknown series {selector.name}"
        for matcher in selector.matchers.matchers:
            assert matcher.name in SERIES[selector.name] | TARGET_LABELS, (rule["alert"], matcher)
            if matcher.name == "job":
                assert matcher.value == JOB


def test_what_can_go_wrong_with_a_rater_has_a_rule() -> None:
    selected = {s.name for rule in _rules() for s in _selectors(promql_parser.parse(rule["expr"]))}
    wanted = {
        "up",  # a rater down
        "vmgate_consumer_lag_messages",  # lag
        "vmgate_reference_data_refused_total",  # refusals
        "vmgate_reference_data_info",
        "vmgate_cdrs_rejected_total",  # dead-letter rate
        "vmgate_cdrs_unrated_total",
        "vmgate_store_write_errors_total",  # store errors
        "vmgate_client_status_refused_total",
    }
    assert wanted <= selected, wanted - selected


def test_the_selector_walk_finds_every_metric_of_an_expression() -> None:
    expr = "sum(rate(a_total[5m])) / clamp_min(sum(rate(b_total{x='1'}[5m])), 1) unless on (i) c"
    names = sorted(s.name for s in _selectors(promql_parser.parse(expr)))
    assert names == ["a_total", "b_total", "c"]
    with pytest.raises(ValueError, match="unclosed"):
        promql_parser.parse("sum by (x (vmgate_cdrs_rated_total")
