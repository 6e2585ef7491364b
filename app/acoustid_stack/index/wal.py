"""Write-ahead log: every acknowledged update is in a fsynced record before the reply.

Files `wal-<first version>.log` hold records `magic | length | crc32 | payload`, the
payload a msgpack map {v: version, c: [[op, id, hashes as LE uint32 bytes]], m: metadata}.
Versions follow each other without a gap, across files too. A checkpoint rotates to a
new file; files wholly covered by the manifest's version are deleted (and skipped by
replay).

A record is only acknowledged after fsync, and a failed append is cut off again, so a
record that fails its magic, length or CRC check is one of two things:

* the torn tail of a crash (kill -9 or power loss mid-write): nothing valid follows it
  in its file and it is in the newest file. Replay drops it and truncates the file there,
  with a warning: that record was never acknowledged.
* corruption (a flipped bit, a damaged disk): a valid record follows it in its file
  (found by trying to decode a record at every later occurrence of the magic), or newer
  WAL files exist. The records around it were acknowledged, so replay raises
  WalCorruptionError naming the file and offset and changes nothing on disk. A gap in
  the versions is corruption too. The store then refuses to serve the index until it is
  restored from a snapshot (`acoustid-stack index restore`) or rebuilt from the database
  (`acoustid-stack index rebuild`); `acoustid-stack index check` reports the same.
"""

from __future__ import annotations

import itertools
import logging
import os
import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import msgpack
import numpy as np

from acoustid_stack.index.durable import fsync_dir, make_dirs
from acoustid_stack.index.interfaces import Change, Delete, FpindexError, Insert, MetadataValue

log = logging.getLogger(__name__)

_MAGIC = 0x4C415746  # "FWAL"
_RECORD = struct.Struct("<III")
_MAGIC_BYTES = _RECORD.pack(_MAGIC, 0, 0)[:4]
_OP_INSERT = 1
_OP_DELETE = 2


class WalCorruptionError(FpindexError):
    """A WAL record is damaged where acknowledged records follow it, or versions skip."""

    def __init__(self, path: Path, offset: int, reason: str) -> None:
        super().__init__(f"{path}: the record at offset {offset} {reason}")
        self.path = path
        self.offset = offset


@dataclass(frozen=True)
class WalRecord:
    version: int
    changes: list[Change]
    metadata: dict[str, MetadataValue] | None


@dataclass(frozen=True)
class TornTail:
    """Bytes at the end of the newest file that were never an acknowledged record."""

    path: Path
    offset: int
    size: int


def _file_name(first_version: int) -> str:
    return f"wal-{first_version:020d}.log"


def _first_version(path: Path) -> int:
    return int(path.stem.removeprefix("wal-"))


def encode_record(
    version: int, changes: list[Change], metadata: Mapping[str, MetadataValue] | None
) -> bytes:
    items = [
        [_OP_INSERT, c.id, c.hashes.astype("<u4", copy=False).tobytes()]
        if isinstance(c, Insert)
        else [_OP_DELETE, c.id, b""]
        for c in changes
    ]
    payload: bytes = msgpack.packb(
        {"v": version, "c": items, "m": dict(metadata) if metadata is not None else None}
    )
    return _RECORD.pack(_MAGIC, len(payload), zlib.crc32(payload)) + payload


def _decode_payload(payload: bytes) -> WalRecord:
    data = msgpack.unpackb(payload)
    changes: list[Change] = []
    for op, doc_id, raw in data["c"]:
        if op == _OP_INSERT:
            changes.append(Insert(doc_id, np.frombuffer(raw, dtype="<u4").astype(np.uint32)))
        else:
            changes.append(Delete(doc_id))
    return WalRecord(version=int(data["v"]), changes=changes, metadata=data["m"])


def _read_record(data: bytes, position: int) -> tuple[bytes, int] | None:
    """(payload, end) of the record at `position`, or None if it fails its checks."""
    if position + _RECORD.size > len(data):
        return None
    magic, length, crc = _RECORD.unpack_from(data, position)
    start = position + _RECORD.size
    payload = data[start : start + length]
    if magic != _MAGIC or len(payload) != length or zlib.crc32(payload) != crc:
        return None
    return payload, start + length


def _next_valid_record(data: bytes, position: int) -> int | None:
    """Offset of the first whole, valid record that starts after `position`."""
    candidate = data.find(_MAGIC_BYTES, position + 1)
    while candidate != -1:
        if _read_record(data, candidate) is not None:
            return candidate
        candidate = data.find(_MAGIC_BYTES, candidate + 1)
    return None


class WriteAheadLog:
    """Appends records to the current file of `directory`; one writer at a time."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        make_dirs(self.directory)
        self._file: int | None = None
        self._path: Path | None = None
        #: what the last replay found (and, repairing, truncated) at the end of the newest file
        self.torn_tail: TornTail | None = None

    def files(self) -> list[Path]:
        return sorted(self.directory.glob("wal-*.log"), key=_first_version)

    @property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.files())

    def replay(self, after_version: int, *, repair: bool = True) -> Iterator[WalRecord]:
        """Records with version > `after_version`, in order.

        Raises WalCorruptionError on a damaged record that is not the torn tail, or on a
        gap in the versions; truncates a torn tail if `repair` (the check does not).
        """
        self.torn_tail = None
        files = self.files()
        expected = after_version + 1
        for path, following in itertools.zip_longest(files, files[1:]):
            if following is not None and _first_version(following) <= after_version + 1:
                continue  # every record is in the checkpoint; drop_through deletes it
            data = path.read_bytes()
            position = 0
            while position < len(data):
                record = _read_record(data, position)
                if record is None:
                    self._damaged(path, data, position, newest=following is None, repair=repair)
                    break
                payload, end = record
                decoded = _decode_payload(payload)
                if decoded.version > after_version or expected > after_version + 1:
                    if decoded.version != expected:
                        raise WalCorruptionError(
                            path,
                            position,
                            f"has version {decoded.version} where {expected} is due "
                            "(versions are missing)",
                        )
                    expected += 1
                    yield decoded
                position = end

    def _damaged(
        self, path: Path, data: bytes, position: int, *, newest: bool, repair: bool
    ) -> None:
        valid = _next_valid_record(data, position)
        if valid is not None:
            raise WalCorruptionError(
                path, position, f"is damaged and a valid record follows at offset {valid}"
            )
        if not newest:
            raise WalCorruptionError(path, position, "is damaged and newer WAL files follow")
        self.torn_tail = TornTail(path, position, len(data) - position)
        if repair:
            log.warning(
                "wal %s: dropping %d bytes of torn tail at offset %d",
                path,
                len(data) - position,
                position,
            )
            with path.open("r+b") as f:
                f.truncate(position)
                os.fsync(f.fileno())

    def open(self, next_version: int) -> None:
        """Append to the newest file, or start one at `next_version` if there is none."""
        existing = self.files()
        path = existing[-1] if existing else self.directory / _file_name(next_version)
        self._switch(path)

    def rotate(self, next_version: int) -> None:
        """Start a new file whose first record will be `next_version`."""
        self._switch(self.directory / _file_name(next_version))

    def _switch(self, path: Path) -> None:
        self.close()
        self._file = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._path = path
        fsync_dir(self.directory)

    def append(
        self, version: int, changes: list[Change], metadata: Mapping[str, MetadataValue] | None
    ) -> None:
        """Write and fsync one record; when this returns the update may be acknowledged."""
        if self._file is None:
            raise FpindexError("the WAL is not open (closed after a failed write?)")
        record = encode_record(version, changes, metadata)
        start = os.lseek(self._file, 0, os.SEEK_END)
        try:
            view = memoryview(record)
            while view:
                written = os.write(self._file, view)
                view = view[written:]
            os.fdatasync(self._file)
        except OSError:
            self._cut_back(start)
            raise

    def _cut_back(self, size: int) -> None:
        """Remove a record whose append failed: acknowledged records written after it
        would make it read as corruption rather than a torn tail."""
        assert self._file is not None
        try:
            os.ftruncate(self._file, size)
        except OSError:
            log.exception("wal %s: cannot cut off a failed append; refusing writes", self._path)
            self.close()

    def drop_through(self, version: int) -> None:
        """Delete files whose records are all ≤ `version` (covered by the manifest)."""
        files = self.files()
        for path, following in itertools.pairwise(files):
            if _first_version(following) <= version + 1 and path != self._path:
                path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._file is not None:
            os.close(self._file)
            self._file = None
