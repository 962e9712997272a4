"""Markers by place: every test under ``tests/integration`` is ``integration``.

``make unit`` runs ``-m "not integration"``: no broker, no Java, no HTTP endpoint, seconds.
``make test`` runs everything. A test file cannot forget its marker: the folder decides.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_INTEGRATION = Path(__file__).resolve().parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests of ``tests/integration`` as ``integration``."""
    for item in items:
        if _INTEGRATION in item.path.parents:
            item.add_marker(pytest.mark.integration)
