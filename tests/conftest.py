"""Markers by place: every test under ``tests/integration`` is ``integration``.

``make unit`` runs ``-m "not integration"``: no broker, no Java, no HTTP endpoint, seconds.
``make test`` runs everything. A test file cannot forget its marker: the folder decides.

With pytest-xdist the workers share one Kafka broker (``tests/support/kafka_broker.py``); the
controller stops it here once every worker is done.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import kafka_broker

_INTEGRATION = Path(__file__).resolve().parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests of ``tests/integration`` as ``integration``."""
    for item in items:
        if _INTEGRATION in item.path.parents:
            item.add_marker(pytest.mark.integration)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On the xdist controller: stop the broker the workers shared, if one was started."""
    config = session.config
    if hasattr(config, "workerinput") or not hasattr(config, "_tmp_path_factory"):
        return  # a worker, or no temporary folder was ever made
    if not config.pluginmanager.has_plugin("dsession"):
        return  # not the controller of an xdist run: the fixture stops its own broker
    # xdist gives each worker ``<this run's temporary folder>/popen-gwN`` (workermanage.py).
    try:
        failure = kafka_broker.stop_shared(config._tmp_path_factory.getbasetemp())
    except pytest.fail.Exception as exc:
        failure = str(exc)
    if failure:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(failure, red=True)
