"""What a run leaves behind: its configuration, inputs, machine, raw results and errors.

The report is rendered from a :class:`RunRecord` only, so ``--report-from FILE.json`` prints an
earlier run's report again exactly. The JSON keys are those of the files earlier runs wrote
(``plan`` for the run's configuration, ``data`` for its inputs), so those files still load.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.common import JSON
from benchmarks.harness.config import RunConfig
from benchmarks.harness.inputs import RunInputs


@dataclass(frozen=True)
class RunRecord:
    """One run: how it was asked for, on what, and what each section returned or raised."""

    config: RunConfig
    inputs: RunInputs
    machine: JSON
    command: str
    timings: dict[str, float]  # seconds per section, in the order they ran
    results: JSON  # raw results per section
    errors: dict[str, str]  # section (or ``harness``) -> what went wrong

    def to_json(self) -> JSON:
        """The record as the JSON object ``--out`` writes next to the report."""
        return {
            "plan": asdict(self.config),
            "data": asdict(self.inputs),
            "machine": self.machine,
            "command": self.command,
            "timings": self.timings,
            "results": self.results,
            "errors": self.errors,
        }

    def write(self, path: Path) -> None:
        """Write :meth:`to_json` to ``path`` (paths as text)."""
        path.write_text(json.dumps(self.to_json(), indent=1, default=str))

    @classmethod
    def read(cls, path: Path) -> RunRecord:
        """A record written by :meth:`write`."""
        raw = json.loads(path.read_text())
        return cls(
            config=RunConfig(**raw["plan"]),
            inputs=RunInputs.from_json(raw["data"]),
            machine=raw["machine"],
            command=raw["command"],
            timings=raw["timings"],
            results=raw["results"],
            errors=raw["errors"],
        )
