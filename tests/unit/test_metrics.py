"""The rater's Prometheus metrics and JSON log lines, as a scraper and a log shipper see them."""

from __future__ import annotations

import json
import logging
import urllib.request
from collections import Counter

from prometheus_client.parser import text_string_to_metric_families

from pipeline.logs import JsonFormatter
from pipeline.services.metrics import RaterMetrics
from pipeline.services.outcomes import Outcomes


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_batches_refusals_lag_and_version_are_served_over_http() -> None:
    metrics = RaterMetrics()
    server = metrics.serve(0)
    try:
        metrics.reference_in_use("v1")
        first = Outcomes(
            rated=7,
            unrated=2,
            rejected=1,
            unrated_by_reason=Counter({"customer:no_prefix": 2, "reseller:no_prefix": 1}),
            rejected_by_reason=Counter({"invalid:callee": 1}),
        )
        metrics.batch(10, first, 0.2)
        metrics.batch(3, Outcomes(rated=3), 0.05)
        metrics.reference_in_use("v2")
        metrics.write_errors.inc()
        metrics.write_retries.inc()
        metrics.lag_of([("cdr.v1", 0, 5), ("cdr.v1", 1, 0)])
        metrics.client_status(4, Counter({"invalid:online": 2, "not_json": 1}))
        metrics.client_status(3, Counter({"invalid:online": 1}))
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            samples = _samples(response.read().decode())
    finally:
        server.shutdown()
        server.server_close()
    assert samples[("vmgate_cdrs_consumed_total", ())] == 13
    assert samples[("vmgate_cdrs_rated_total", ())] == 10
    assert samples[("vmgate_cdrs_unrated_total", (("reason", "customer:no_prefix"),))] == 2
    assert samples[("vmgate_cdrs_rejected_total", (("reason", "invalid:callee"),))] == 1
    assert samples[("vmgate_batch_size_cdrs_count", ())] == 2
    assert samples[("vmgate_batch_size_cdrs_sum", ())] == 13
    assert samples[("vmgate_batch_duration_seconds_bucket", (("le", "0.1"),))] == 1
    assert samples[("vmgate_store_write_errors_total", ())] == 1
    assert samples[("vmgate_store_write_retries_total", ())] == 1
    lag = (("partition", "0"), ("topic", "cdr.v1"))
    assert samples[("vmgate_consumer_lag_messages", lag)] == 5
    # Only the version in use is reported.
    assert samples[("vmgate_reference_data_info", (("version", "v2"),))] == 1
    assert ("vmgate_reference_data_info", (("version", "v1"),)) not in samples
    assert samples[("vmgate_client_status_stored_total", ())] == 7
    assert samples[("vmgate_client_status_refused_total", (("reason", "invalid:online"),))] == 3
    assert samples[("vmgate_client_status_refused_total", (("reason", "not_json"),))] == 1


def test_json_log_lines_carry_time_level_logger_and_message() -> None:
    record = logging.LogRecord(
        "pipeline.services.rater", logging.INFO, "x.py", 1, "rated %d", (5,), None
    )
    record.created = 1_800_000_000.25
    line = JsonFormatter().format(record)
    assert json.loads(line) == {
        "time": "2027-01-15T08:00:00.250Z",
        "level": "INFO",
        "logger": "pipeline.services.rater",
        "message": "rated 5",
    }
