"""Where the files of a plans folder come from: a folder on disk, or a publication held in memory.

The reference-data loader reads a plans folder (DESIGN.md section 4) through :class:`PlanFiles`,
so the same validation, the same problems (named by the file's path inside the folder) and the
same content version apply whether the files are read from disk (``rate --plans``, ``decks
import``) or were reassembled from the reference-data topics by a rater.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

DECKS_DIR = "decks"
PLANS_FILE = "plans.csv"
ASSOCIATIONS_FILE = "associations.csv"
MEMBERSHIPS_FILE = "memberships.csv"
# Tariff v2 (DESIGN.md section 8), each optional.
ORIGIN_GROUPS_FILE = "origin_groups.csv"
TIME_BANDS_FILE = "time_bands.csv"
HOLIDAYS_FILE = "holidays.csv"
# Accounts as reference data (the roster), each optional.
ACCOUNTS_FILE = "accounts.csv"
JOIN_CODES_FILE = "join_codes.csv"
ENROLLMENTS_FILE = "enrollments.csv"
# Exchange rates for reporting, optional.
FX_RATES_FILE = "fx_rates.csv"
# Every file at the top of a plans folder, in the order the loader reads them.
TOP_FILES = (
    PLANS_FILE,
    ASSOCIATIONS_FILE,
    MEMBERSHIPS_FILE,
    ORIGIN_GROUPS_FILE,
    TIME_BANDS_FILE,
    HOLIDAYS_FILE,
    ACCOUNTS_FILE,
    JOIN_CODES_FILE,
    ENROLLMENTS_FILE,
    FX_RATES_FILE,
)


class PlanFiles(Protocol):
    """The files of one plans folder, by their path inside it (``decks/P1.csv``)."""

    def read(self, relative: str) -> bytes | None:
        """The file's bytes, or None when the folder has no such file."""
        ...

    def deck_files(self) -> list[str]:
        """Paths of the ``decks/*.csv`` files, sorted."""
        ...


class FolderPlanFiles:
    """A plans folder on disk."""

    def __init__(self, folder: Path) -> None:
        """Read files under ``folder`` (nothing is read until asked)."""
        self.folder = folder

    def read(self, relative: str) -> bytes | None:
        """The file's bytes, or None when it is missing."""
        path = self.folder / relative
        return path.read_bytes() if path.is_file() else None

    def deck_files(self) -> list[str]:
        """``decks/*.csv`` in name order."""
        decks = self.folder / DECKS_DIR
        if not decks.is_dir():
            return []
        return sorted(f"{DECKS_DIR}/{path.name}" for path in decks.glob("*.csv"))

    def all_files(self) -> dict[str, bytes]:
        """Every file the loader reads, by path (what ``decks import`` publishes)."""
        names = [*TOP_FILES, *self.deck_files()]
        found = {name: self.read(name) for name in names}
        return {name: data for name, data in found.items() if data is not None}


class PublishedPlanFiles:
    """A plans folder held in memory, as reassembled from a publication."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        """Serve ``files`` (path inside the folder -> bytes)."""
        self.files = dict(files)

    def read(self, relative: str) -> bytes | None:
        """The file's bytes, or None when the publication has no such file."""
        return self.files.get(relative)

    def deck_files(self) -> list[str]:
        """``decks/*.csv`` paths of the publication, sorted."""
        return sorted(
            name
            for name in self.files
            if name.startswith(f"{DECKS_DIR}/") and name.endswith(".csv") and name.count("/") == 1
        )
