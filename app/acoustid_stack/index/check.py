"""What `acoustid-stack index check` finds in an index directory, without changing it.

The same checks as loading and restoring: the manifest, every file it names (with its
checksums), and every WAL record after the manifest's version (wal.py tells corruption
from the torn tail of a crash; a torn tail is not a problem, the server drops it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from acoustid_stack.index.segment import SegmentFileError
from acoustid_stack.index.store import WAL_DIR, read_manifest, segment_problems
from acoustid_stack.index.wal import TornTail, WalCorruptionError, WriteAheadLog


@dataclass(frozen=True)
class IndexCheck:
    path: Path
    #: one line each, `<file>: <what is wrong>`
    problems: list[str]
    #: the manifest's version plus the WAL records after it
    version: int = 0
    segments: int = 0
    wal_records: int = 0
    torn_tail: TornTail | None = None

    def summary(self) -> str:
        text = (
            f"{self.path.name} at version {self.version} "
            f"({self.segments} segments, {self.wal_records} WAL records)"
        )
        if self.torn_tail is not None:
            text += (
                f", a torn tail of {self.torn_tail.size} bytes at offset "
                f"{self.torn_tail.offset} of {self.torn_tail.path.name} that the next start drops"
            )
        return text


def check_index(path: Path) -> IndexCheck:
    try:
        manifest = read_manifest(path)
    except SegmentFileError as exc:
        return IndexCheck(path, [str(exc)])
    problems = [str(problem) for problem in segment_problems(path, manifest)]
    checkpoint = int(manifest["version"])
    records = 0
    torn_tail = None
    # a restored snapshot has no WAL yet; the check must not create one
    if (path / WAL_DIR).is_dir():
        wal = WriteAheadLog(path / WAL_DIR)
        try:
            for _ in wal.replay(checkpoint, repair=False):
                records += 1
        except WalCorruptionError as exc:
            problems.append(str(exc))
        torn_tail = wal.torn_tail
    return IndexCheck(
        path,
        problems,
        version=checkpoint + records,
        segments=len(manifest["segments"]),
        wal_records=records,
        torn_tail=torn_tail,
    )
