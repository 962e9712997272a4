"""ClickHouse server versions, and since which one each setting the DDL names exists.

A statement naming a setting the server does not know fails, and in a multi-statement script
everything after it is never applied: the access script would stop before a single role or row
policy exists. So the DDL is rendered for a server version (``schema --server-version``; by
default the version of the engine the tests run, which the pinned server image shares,
deploy/versions.toml) and names only settings that version has.

:data:`SETTINGS_SINCE` records, per setting the DDL names, the first version that has it. A test
holds it to the engine's own record (``system.settings_changes``) where that names the setting,
and holds every ``SETTINGS`` clause the DDL renders to this table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_VERSION = re.compile(r"^v?(\d{1,4})\.(\d{1,3})(?:\.\d+)*(?:-\w+)?$")


@dataclass(frozen=True, order=True)
class ServerVersion:
    """A ClickHouse release line: its major and minor version (``26.9``)."""

    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> ServerVersion:
        """``26.9``, ``26.9.2.8`` or ``v26.9.2.8-stable``; ``ValueError`` for anything else."""
        match = _VERSION.match(text.strip())
        if match is None:
            msg = f"not a ClickHouse version: {text!r} (expected MAJOR.MINOR, e.g. 26.9)"
            raise ValueError(msg)
        return cls(int(match[1]), int(match[2]))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


# The oldest server the DDL is written for: the long-term-support line before the settings
# and grammar below; older servers lack parts of the schema's grammar that nothing here checks.
OLDEST = ServerVersion(25, 3)

SETTINGS_SINCE = {
    # Row policies and PREWHERE applied after FINAL (a reseller's policy is on reseller_id, a
    # column outside the sorting key). system.settings_changes records it at 25.10.
    "apply_row_policy_after_final": ServerVersion(25, 10),
    # The new name of insert_distributed_sync (ClickHouse PR #55978, released in 23.10); the
    # old name stays an alias. A cluster's rater profile names it.
    "distributed_foreground_insert": ServerVersion(23, 10),
}


def has_setting(version: ServerVersion, setting: str) -> bool:
    """Whether a server of ``version`` knows ``setting`` (one of :data:`SETTINGS_SINCE`)."""
    return version >= SETTINGS_SINCE[setting]


def check_supported(version: ServerVersion) -> None:
    """``ValueError`` naming the oldest version the DDL is written for, if ``version`` is older."""
    if version < OLDEST:
        msg = (
            f"ClickHouse {version} is older than {OLDEST}, the oldest server this DDL is "
            "written for; upgrade the server"
        )
        raise ValueError(msg)
