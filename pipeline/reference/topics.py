"""How a plans folder travels through Kafka: chunks, a manifest, and what makes a version complete.

A publication is one version of a whole plans folder (DESIGN.md section 4). Its files are cut
into chunks of at most :data:`CHUNK_BYTES` and sent to three compacted topics: ``plans.csv``,
``decks/*.csv``, the tariff-v2 files (``origin_groups.csv``, ``time_bands.csv``,
``holidays.csv``) and the roster (``accounts.csv``, ``join_codes.csv``, ``enrollments.csv``) to
``rateplans.v1``, ``associations.csv`` to ``associations.v1``,
``memberships.csv`` to ``memberships.v1``. Each chunk is keyed ``<version>/<file>#<chunk>``
and carries the version in its headers too; last comes a manifest (key
``manifest/<version>`` on ``rateplans.v1``) naming, per file, its chunk count, size and SHA-256.
Re-importing a version replaces its keys one for one; the importer keeps the newest few versions
and deletes the keys of older ones with tombstones, so compaction leaves the topics holding just
those versions.

All of it is written in ONE Kafka transaction and read with ``isolation.level=read_committed``:
a publication that died half-way is never seen. Readers also check it: a version counts only
when every file its manifest names has all its chunks and the reassembled bytes hash to the
manifest's digest. The version itself is the loader's content digest of the files, so a rater
that reassembles and loads them gets the very version the importer computed. Because earlier
versions stay on the topics, a rater that starts after a bad publication still finds the last
good one.

This module is the format only (no Kafka client): :mod:`pipeline.reference.publisher`
writes it and :mod:`pipeline.reference.feed` reads it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import ReferenceTopics
from pipeline.json_bounds import nesting_depth

CHUNK_BYTES = 512 * 1024  # well under the topics' 1 MiB message limit
MANIFEST_PREFIX = b"manifest/"
FORMAT = 1
KEEP_VERSIONS = 3  # versions an import leaves on the topics: the new one and two before it

HEADER_VERSION = "vmgate.version"
HEADER_FILE = "vmgate.file"
HEADER_CHUNK = "vmgate.chunk"
HEADER_CHUNKS = "vmgate.chunks"


@dataclass(frozen=True)
class FileEntry:
    """One file of a publication as the manifest describes it."""

    topic: str
    chunks: int
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """What a complete publication holds; written last."""

    version: str
    published_at: str  # RFC 3339, UTC
    files: Mapping[str, FileEntry]

    def to_bytes(self) -> bytes:
        """The manifest as a JSON message value."""
        body = {
            "format": FORMAT,
            "version": self.version,
            "published_at": self.published_at,
            "files": {
                name: {
                    "topic": entry.topic,
                    "chunks": entry.chunks,
                    "size": entry.size,
                    "sha256": entry.sha256,
                }
                for name, entry in sorted(self.files.items())
            },
        }
        return json.dumps(body, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """Parse a manifest; :class:`ValueError` naming what is wrong (whatever ``data`` is)."""
        if len(data) > _MAX_MANIFEST_BYTES or nesting_depth(data) > _MAX_MANIFEST_NESTING:
            msg = f"manifest of {len(data)} bytes is too large or too deeply nested"
            raise ValueError(msg)
        try:
            body: Any = json.loads(data)
        except (ValueError, RecursionError) as exc:
            msg = f"manifest is not JSON: {exc}"
            raise ValueError(msg) from exc
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            msg = f"manifest format is not {FORMAT}"
            raise ValueError(msg)
        try:
            files = {
                str(name): FileEntry(
                    str(entry["topic"]),
                    int(entry["chunks"]),
                    int(entry["size"]),
                    str(entry["sha256"]),
                )
                for name, entry in body["files"].items()
            }
            return cls(str(body["version"]), str(body["published_at"]), files)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            msg = f"manifest field missing or wrong: {exc}"
            raise ValueError(msg) from exc


# A manifest lists a few files in a flat object: anything far larger or deeper is not one.
_MAX_MANIFEST_BYTES = 1024 * 1024
_MAX_MANIFEST_NESTING = 8


@dataclass(frozen=True)
class Chunk:
    """One message of a publication's file."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, str | bytes | None]]


def chunk_key(version: str, name: str, index: int) -> bytes:
    """The message key of chunk ``index`` of file ``name`` of ``version``."""
    return f"{version}/{name}#{index:05d}".encode()


def manifest_key(version: str) -> bytes:
    """The message key of ``version``'s manifest."""
    return MANIFEST_PREFIX + version.encode()


def chunks_of(
    version: str, files: Mapping[str, bytes], topics: ReferenceTopics
) -> tuple[list[Chunk], dict[str, FileEntry]]:
    """Cut ``files`` into chunks; return them and the manifest's description of each file."""
    out: list[Chunk] = []
    entries: dict[str, FileEntry] = {}
    for name in sorted(files):
        data = files[name]
        topic = topics.for_file(name)
        pieces = [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)] or [b""]
        for index, piece in enumerate(pieces):
            out.append(
                Chunk(
                    topic,
                    chunk_key(version, name, index),
                    piece,
                    [
                        (HEADER_VERSION, version.encode()),
                        (HEADER_FILE, name.encode()),
                        (HEADER_CHUNK, str(index).encode()),
                        (HEADER_CHUNKS, str(len(pieces)).encode()),
                    ],
                )
            )
        entries[name] = FileEntry(topic, len(pieces), len(data), hashlib.sha256(data).hexdigest())
    return out, entries


@dataclass
class PublishedState:
    """The latest committed value of every key on the reference topics, as compaction keeps it.

    Fed message by message (:meth:`apply`). :meth:`newest_first` lists the manifests present;
    :meth:`assemble` says whether one of them is complete and, if so, returns its files.
    """

    chunks: dict[tuple[str, bytes], tuple[str, bytes]] = field(default_factory=dict)
    manifests: dict[str, Manifest] = field(default_factory=dict)
    order: dict[str, int] = field(default_factory=dict)  # version -> offset of its manifest
    problems: dict[bytes, str] = field(default_factory=dict)  # unreadable manifests by key

    def apply(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Mapping[str, bytes],
        offset: int = 0,
    ) -> None:
        """Take one message (a ``None`` value is a tombstone) read at ``offset``."""
        if key is None:
            return
        if key.startswith(MANIFEST_PREFIX):
            version = key[len(MANIFEST_PREFIX) :].decode(errors="replace")
            self.manifests.pop(version, None)
            self.problems.pop(key, None)
            if value is None:
                return
            try:
                manifest = Manifest.from_bytes(value)
            except ValueError as exc:
                self.problems[key] = str(exc)
                return
            if manifest.version != version:
                self.problems[key] = f"manifest of {manifest.version} under the key of {version}"
                return
            self.manifests[version] = manifest
            self.order[version] = offset
            return
        if value is None:
            self.chunks.pop((topic, key), None)
            return
        version = headers.get(HEADER_VERSION, b"").decode(errors="replace")
        self.chunks[(topic, key)] = (version, value)

    def newest_first(self) -> list[Manifest]:
        """The manifests present, most recently published (highest offset) first."""
        return sorted(
            self.manifests.values(), key=lambda m: self.order.get(m.version, 0), reverse=True
        )

    def newest(self) -> Manifest | None:
        """The most recently published manifest, if any."""
        ordered = self.newest_first()
        return ordered[0] if ordered else None

    def assemble(self, manifest: Manifest) -> dict[str, bytes] | str:
        """``manifest``'s files, or a sentence saying why they are not complete."""
        files: dict[str, bytes] = {}
        for name, entry in manifest.files.items():
            parts: list[bytes] = []
            for index in range(entry.chunks):
                found = self.chunks.get((entry.topic, chunk_key(manifest.version, name, index)))
                if found is None:
                    return f"{name} chunk {index} missing"
                version, value = found
                if version != manifest.version:
                    return f"{name} chunk {index} is labelled {version or '(none)'}"
                parts.append(value)
            data = b"".join(parts)
            if len(data) != entry.size or hashlib.sha256(data).hexdigest() != entry.sha256:
                return f"{name} does not match its manifest digest"
            files[name] = data
        return files

    def forget(self, versions: set[str]) -> None:
        """Drop the chunk bytes of ``versions`` (kept as empty values: the keys stay known)."""
        for key, (version, _) in list(self.chunks.items()):
            if version in versions:
                self.chunks[key] = (version, b"")

    def older_than(self, manifest: Manifest) -> set[str]:
        """``manifest``'s version and every version published before it."""
        mark = self.order.get(manifest.version, 0)
        return {v for v in self.manifests if self.order.get(v, 0) <= mark}


def stale_keys(
    state: PublishedState, keep: set[str], topics: ReferenceTopics
) -> list[tuple[str, bytes]]:
    """Keys (chunks and manifests) of versions not in ``keep``: to delete with tombstones."""
    stale = [key for key, (version, _) in state.chunks.items() if version not in keep]
    stale += [
        (topics.rateplans, manifest_key(version))
        for version in state.manifests
        if version not in keep
    ]
    stale += [(topics.rateplans, key) for key in state.problems]
    return sorted(stale)
