"""Prometheus metrics of a rater, served on ``--metrics-port``.

One registry per rater (no global state, so tests can build several). Names, all prefixed
``vmgate_``, are what the Grafana dashboards in ``deploy/grafana`` query:

- ``cdrs_consumed_total``, ``cdrs_rated_total``, ``cdrs_unrated_total{reason}`` (one count per
  failed leg reason, e.g. ``customer:no_prefix``), ``cdrs_rejected_total{reason}`` (dead letters);
- ``batch_size_cdrs`` and ``batch_duration_seconds`` histograms (consume to commit);
- ``consumer_lag_messages{topic,partition}``: messages between the rater's position and the end
  of each assigned partition, refreshed every few seconds;
- ``store_write_errors_total``, ``store_write_retries_total``;
- ``reference_data_info{version}`` = 1 for the version in use, and
  ``reference_data_refused_total`` for publications refused (the rater kept the last good one);
- ``client_status_stored_total`` and ``client_status_refused_total{reason}``: client online
  status events (``client-status.v1``) stored, and sent to their dead-letter topic.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from pipeline.services.outcomes import Outcomes

log = logging.getLogger(__name__)

_BATCH_SIZES = (1, 10, 100, 500, 1_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000)
_BATCH_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class RaterMetrics:
    """The rater's counters, histograms and gauges in a registry of their own."""

    def __init__(self) -> None:
        """Create the metrics (nothing is served until :meth:`serve`)."""
        self.registry = CollectorRegistry()
        r = self.registry
        self.consumed = Counter("vmgate_cdrs_consumed", "CDR messages consumed", registry=r)
        self.rated = Counter("vmgate_cdrs_rated", "CDRs rated on every leg", registry=r)
        self.unrated = Counter(
            "vmgate_cdrs_unrated", "CDRs with a leg unrated, by reason", ["reason"], registry=r
        )
        self.rejected = Counter(
            "vmgate_cdrs_rejected", "messages sent to the DLQ, by reason", ["reason"], registry=r
        )
        self.batch_size = Histogram(
            "vmgate_batch_size_cdrs", "CDRs per batch", buckets=_BATCH_SIZES, registry=r
        )
        self.batch_duration = Histogram(
            "vmgate_batch_duration_seconds",
            "seconds from a batch's consumption to its commit",
            buckets=_BATCH_SECONDS,
            registry=r,
        )
        self.lag = Gauge(
            "vmgate_consumer_lag_messages",
            "messages behind the end of each assigned partition",
            ["topic", "partition"],
            registry=r,
        )
        self.write_errors = Counter(
            "vmgate_store_write_errors", "failed call-history writes", registry=r
        )
        self.write_retries = Counter(
            "vmgate_store_write_retries", "call-history writes retried", registry=r
        )
        self.reference = Gauge(
            "vmgate_reference_data_info",
            "1 for the reference-data version in use",
            ["version"],
            registry=r,
        )
        self.reference_refused = Counter(
            "vmgate_reference_data_refused",
            "published reference-data versions refused (the last good one stays in use)",
            registry=r,
        )
        self.client_status_stored = Counter(
            "vmgate_client_status_stored",
            "client online-status events stored in client_status",
            registry=r,
        )
        self.client_status_refused = Counter(
            "vmgate_client_status_refused",
            "client online-status messages sent to their dead-letter topic, by reason",
            ["reason"],
            registry=r,
        )
        self._version: str | None = None

    def serve(self, port: int, address: str = "127.0.0.1") -> Any:
        """Serve ``/metrics`` over HTTP in a daemon thread; return the server."""
        server, _ = start_http_server(port, addr=address, registry=self.registry)
        log.info("metrics on http://%s:%d/metrics", address, server.server_port)
        return server

    def batch(self, consumed: int, outcome: Outcomes, seconds: float) -> None:
        """Count one committed batch."""
        self.consumed.inc(consumed)
        self.rated.inc(outcome.rated)
        for reason, count in outcome.unrated_by_reason.items():
            self.unrated.labels(reason=reason).inc(count)
        for reason, count in outcome.rejected_by_reason.items():
            self.rejected.labels(reason=reason).inc(count)
        self.batch_size.observe(consumed)
        self.batch_duration.observe(seconds)

    def client_status(self, stored: int, refused_by_reason: Mapping[str, int]) -> None:
        """Count one committed client-status batch."""
        self.client_status_stored.inc(stored)
        for reason, count in refused_by_reason.items():
            self.client_status_refused.labels(reason=reason).inc(count)

    def reference_in_use(self, version: str) -> None:
        """Mark ``version`` as the one in use (the previous one is removed)."""
        if self._version is not None and self._version != version:
            self.reference.remove(self._version)
        self.reference.labels(version=version).set(1)
        self._version = version

    def lag_of(self, partitions: Iterable[tuple[str, int, int]]) -> None:
        """Set the lag of each ``(topic, partition, messages behind)``; drop the others."""
        self.lag.clear()
        for topic, partition, behind in partitions:
            self.lag.labels(topic=topic, partition=str(partition)).set(behind)
