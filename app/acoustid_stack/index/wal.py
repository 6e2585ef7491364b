"""Write-ahead log: every acknowledged update is in a fsynced record before the reply.

Files `wal-<first version>.log` hold records `magic | length | crc32 | payload`, the
payload a msgpack map {v: version, c: [[op, id, hashes as LE uint32 bytes]], m: metadata}.
A record is only acknowledged after fsync, so a record that fails its length or CRC
check can only be the torn tail of a crash (kill -9 mid-write): recovery drops it and
truncates the file there. A checkpoint rotates to a new file; files wholly covered by
the manifest's version are deleted.
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

from acoustid_stack.index.interfaces import Change, Delete, Insert, MetadataValue

log = logging.getLogger(__name__)

_MAGIC = 0x4C415746  # "FWAL"
_RECORD = struct.Struct("<III")
_OP_INSERT = 1
_OP_DELETE = 2


@dataclass(frozen=True)
class WalRecord:
    version: int
    changes: list[Change]
    metadata: dict[str, MetadataValue] | None


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


class WriteAheadLog:
    """Appends records to the current file of `directory`; one writer at a time."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._file: int | None = None
        self._path: Path | None = None

    def files(self) -> list[Path]:
        return sorted(self.directory.glob("wal-*.log"), key=_first_version)

    @property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.files())

    def replay(self, after_version: int) -> Iterator[WalRecord]:
        """Records with version > `after_version`, in order; truncates a torn tail."""
        for path in self.files():
            data = path.read_bytes()
            position = 0
            while position < len(data):
                record = self._read_record(data, position)
                if record is None:
                    log.warning(
                        "wal %s: dropping %d bytes of torn tail at offset %d",
                        path.name,
                        len(data) - position,
                        position,
                    )
                    with path.open("r+b") as f:
                        f.truncate(position)
                        os.fsync(f.fileno())
                    break
                payload, position = record
                decoded = _decode_payload(payload)
                if decoded.version > after_version:
                    yield decoded

    @staticmethod
    def _read_record(data: bytes, position: int) -> tuple[bytes, int] | None:
        if position + _RECORD.size > len(data):
            return None
        magic, length, crc = _RECORD.unpack_from(data, position)
        start = position + _RECORD.size
        payload = data[start : start + length]
        if magic != _MAGIC or len(payload) != length or zlib.crc32(payload) != crc:
            return None
        return payload, start + length

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
        _fsync_dir(self.directory)

    def append(
        self, version: int, changes: list[Change], metadata: Mapping[str, MetadataValue] | None
    ) -> None:
        """Write and fsync one record; when this returns the update may be acknowledged."""
        assert self._file is not None, "WAL is not open"
        record = encode_record(version, changes, metadata)
        view = memoryview(record)
        while view:
            written = os.write(self._file, view)
            view = view[written:]
        os.fdatasync(self._file)

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


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
