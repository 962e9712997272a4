"""Loading a plans folder gives the memory it freed back to the system, also when refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.rating.exceptions import ReferenceDataError
from pipeline.reference import loader
from tests.builders import deck_row, simple_reference


def test_the_freed_memory_is_given_back_after_a_load_good_or_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = loader.give_back_free_memory

    def recording() -> None:
        calls.append("trim")
        real()  # the real call: on glibc it trims, elsewhere it does nothing; never raises

    monkeypatch.setattr(loader, "give_back_free_memory", recording)
    simple_reference(tmp_path / "plans", [deck_row("44", "0.0100")])  # writes and loads
    calls.clear()
    loader.load_plans_folder(tmp_path / "plans")
    assert calls == ["trim"]
    (tmp_path / "plans" / "plans.csv").write_text("nonsense\n")
    with pytest.raises(ReferenceDataError):
        loader.load_plans_folder(tmp_path / "plans")
    assert calls == ["trim", "trim"]
