"""One index on disk: segments + WAL + manifest, with versions, snapshots and recovery.

Layout of an index directory:

    manifest.json          the checkpoint: version V, metadata, file segments + tombstones
    segments/*.fpseg       immutable file segments (segment.py; FPSEG001 ones: legacy.py)
    segments/*.del-N.npy   tombstoned ordinals of a segment, a new file per change
    wal/wal-*.log          every update after V (wal.py)

Contract: `update` returns only after its WAL record is fsynced, so a restart (also
after kill -9) recovers manifest + WAL replay = every acknowledged change and nothing
else. Files are never modified after they are written, which is what lets a snapshot
be a set of hard links. Every file and directory is fsynced, and so is the directory
that names it after it is created or renamed, so this holds after a power loss too.

Damaged files (a segment failing its checks, a WAL record that is not the torn tail of
a crash, see wal.py) leave the store corrupt: it refuses reads and writes with
CorruptIndexError and touches nothing on disk, until the index is restored from a
snapshot or rebuilt from the database.
"""

from __future__ import annotations

import ctypes
import json
import logging
import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from acoustid_stack.index.durable import fsync_dir, make_dirs
from acoustid_stack.index.interfaces import (
    Change,
    ConflictError,
    CorruptIndexError,
    DocumentNotFoundError,
    IndexInfo,
    Insert,
    MetadataValue,
    NotReadyError,
    SearchHit,
    SearchOptions,
    SearchTimeoutError,
)
from acoustid_stack.index.legacy import LegacySegment
from acoustid_stack.index.memory import MemorySegment
from acoustid_stack.index.merge import MergePolicy, merge_segments, merged_chunks, plan_merge
from acoustid_stack.index.segment import (
    MAGIC,
    U32,
    FileSegment,
    MappedSegment,
    Segment,
    SegmentFileError,
    mix,
    segment_magic,
    sorted_unique,
    unique_counts,
)
from acoustid_stack.index.wal import WalCorruptionError, WriteAheadLog

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SEGMENTS_DIR = "segments"
WAL_DIR = "wal"
# format 2: FPSEG002 segments; format 1 manifests (FPSEG001 segments) are still read
_FORMAT = 2
_READABLE_FORMATS = (1, 2)
#: a query term held by more documents than this is left out of a search: it says
#: little about which document matches, and reading all of its postings would make the
#: query cost as much as a scan. Leaving it out for every document keeps the ranking by
#: the other terms fair, where reading only some of its postings would favour those.
MAX_POSTINGS_PER_TERM = 4096
# the budget of a term that is read whole
_UNLIMITED = 1 << 62
# replaying a long WAL creates one memory segment per record; fold them as we go
_REPLAY_FOLD_AT = 32

REPAIR_HINT = (
    "restore a snapshot with `acoustid-stack index restore` "
    "or rebuild with `acoustid-stack index rebuild`"
)

# (index name, kind of work, seconds)
MergeObserver = Callable[[str, str, float], None]


@dataclass
class SearchStats:
    """What one search read, filled in by `IndexStore.search`."""

    #: postings read per distinct query term (summed over segments)
    postings_read: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    #: distinct query terms left out as too common (see MAX_POSTINGS_PER_TERM)
    common_terms: int = 0
    segments: int = 0


@dataclass(frozen=True)
class StoreStats:
    num_docs: int
    memory_segments: int
    file_segments: int
    memory_bytes: int
    file_bytes: int
    wal_bytes: int


class IndexStore:
    """A single index. Thread-safe: one writer at a time, searches never block on writes."""

    def __init__(
        self,
        path: Path,
        *,
        policy: MergePolicy | None = None,
        on_merge: MergeObserver | None = None,
        max_postings_per_term: int = MAX_POSTINGS_PER_TERM,
    ) -> None:
        self.path = path
        self.policy = policy or MergePolicy()
        self.max_postings_per_term = max_postings_per_term
        self._on_merge = on_merge
        self._write_lock = threading.Lock()
        # serialises flushes, merges and snapshots (the manifest has one writer)
        self._maintenance_lock = threading.Lock()
        self._segments: tuple[Segment, ...] = ()
        self._wal = WriteAheadLog(path / WAL_DIR)
        self._dirty: set[int] = set()
        self._deletion_files: dict[int, str] = {}
        self._manifest_serial = 0
        self._next_segment_id = 1
        self.version = 0
        self.checkpoint_version = 0
        self.generation = 1
        self.metadata: dict[str, MetadataValue] = {}
        self.ready = False
        #: why the index refuses to serve (damaged files found by `open`), else None
        self.corruption: str | None = None
        self._last_write = time.monotonic()
        self._compacted_since_write = False

    # ---- lifecycle ------------------------------------------------------------------

    @classmethod
    def create(cls, path: Path, *, generation: int = 1, **kwargs: Any) -> IndexStore:
        make_dirs(path / SEGMENTS_DIR)
        store = cls(path, **kwargs)
        store.generation = generation
        store._write_manifest()
        return store

    def open(self) -> None:
        """Recover: map the manifest's segments, then replay the WAL after its version.

        On damaged files the store stays corrupt (`corruption` says why) and raises
        CorruptIndexError, now and on every use, having changed nothing on disk.
        """
        self.corruption = None
        try:
            replayed = self._recover()
        except (SegmentFileError, WalCorruptionError) as exc:
            self._segments = ()
            self.corruption = (
                f"index {self.path.name} is corrupt and refuses to serve: {exc}; {REPAIR_HINT}"
            )
            raise CorruptIndexError(self.corruption) from exc
        self._wal.open(self.version + 1)
        self._remove_unreferenced_files()
        self.ready = True
        log.info(
            "index %s: version %d, %d segments, %d WAL records replayed",
            self.path.name,
            self.version,
            len(self._segments),
            replayed,
        )

    def _recover(self) -> int:
        """Load the manifest's segments and apply the WAL; the number of records replayed."""
        manifest = read_manifest(self.path)
        self.generation = int(manifest.get("generation", 1))
        self.version = self.checkpoint_version = int(manifest["version"])
        self.metadata = dict(manifest.get("metadata", {}))
        self._next_segment_id = int(manifest["next_segment_id"])
        self._manifest_serial = int(manifest.get("serial", 0))
        segments: list[Segment] = []
        for entry in manifest["segments"]:
            segment = open_segment(self.path / SEGMENTS_DIR / entry["file"])
            if entry.get("deleted"):
                self._deletion_files[segment.segment_id] = entry["deleted"]
                segment.set_deleted_ordinals(load_tombstones(self.path, entry["deleted"]))
            segments.append(segment)
        self._segments = tuple(segments)
        replayed = 0
        for record in self._wal.replay(self.checkpoint_version):
            self._apply(record.version, record.changes, record.metadata)
            replayed += 1
            if sum(1 for s in self._segments if s.kind == "memory") >= _REPLAY_FOLD_AT:
                self._fold_memory()
        return replayed

    def close(self) -> None:
        with self._maintenance_lock, self._write_lock:
            self._wal.close()
            self.ready = False

    # ---- writes ---------------------------------------------------------------------

    def update(
        self,
        changes: Sequence[Change],
        *,
        metadata: Mapping[str, MetadataValue] | None = None,
        expected_version: int | None = None,
    ) -> int:
        """Apply changes atomically; returns the new version once the WAL is fsynced."""
        self.require_ready()
        with self._write_lock:
            if expected_version is not None and expected_version != self.version:
                raise ConflictError(
                    f"expected version {expected_version}, the index is at {self.version}"
                )
            version = self.version + 1
            self._wal.append(version, list(changes), metadata)
            self._apply(version, changes, metadata)
            self._last_write = time.monotonic()
            self._compacted_since_write = False
            return version

    def _apply(
        self,
        version: int,
        changes: Sequence[Change],
        metadata: Mapping[str, MetadataValue] | None,
    ) -> None:
        final: dict[int, U32 | None] = {}
        for change in changes:
            final[change.id] = change.hashes if isinstance(change, Insert) else None
        older = self._segments
        inserted = [(doc_id, h) for doc_id, h in final.items() if h is not None]
        if inserted:
            segment = MemorySegment.from_documents(
                segment_id=self._allocate_segment_id(),
                version=version,
                ids=[doc_id for doc_id, _ in inserted],
                hashes=[h for _, h in inserted],
            )
            # publish the new copy before hiding old ones: a concurrent search sees a
            # document twice (and keeps the best score), never zero times
            self._segments = (*older, segment)
        if final:
            ids = np.fromiter(final.keys(), dtype=np.uint32, count=len(final))
            for old in older:
                if old.mark_deleted(ids) and old.kind == "file":
                    self._dirty.add(old.segment_id)
        for key, value in (metadata or {}).items():
            if value is None:
                self.metadata.pop(key, None)
            else:
                self.metadata[key] = value
        self.version = version

    def _allocate_segment_id(self) -> int:
        segment_id = self._next_segment_id
        self._next_segment_id += 1
        return segment_id

    # ---- reads ----------------------------------------------------------------------

    def search(
        self,
        query: Sequence[int] | U32,
        options: SearchOptions,
        stats: SearchStats | None = None,
    ) -> list[SearchHit]:
        """Documents sharing the most distinct terms with `query` (fpindex semantics).

        A term held by more than `max_postings_per_term` documents is left out (FPSEG001
        segments do not count theirs); `stats` receives what was read.
        """
        self.require_ready()
        terms = sorted_unique(np.asarray(query, dtype=np.uint32))
        if not len(terms):
            return []
        hashes = mix(terms)
        segments = self._segments
        held = sum((segment.common_counts(hashes) for segment in segments), np.int64(0))
        common = held > self.max_postings_per_term
        budget = np.where(common, 0, _UNLIMITED)
        read = np.zeros(len(terms), dtype=np.int64)
        deadline = time.monotonic() + options.timeout
        id_parts: list[U32] = []
        count_parts: list[np.ndarray] = []
        if stats is not None:
            stats.postings_read = read
            stats.common_terms = int(common.sum())
            stats.segments = len(segments)
        for searched, segment in enumerate(segments, 1):
            ords, segment_read = segment.match(hashes, budget)
            read += segment_read
            if len(ords):
                unique_ords, counts = unique_counts(ords)
                id_parts.append(segment.docs[unique_ords])
                count_parts.append(counts)
            if time.monotonic() > deadline and searched < len(segments):
                # never a partial answer: a caller planning an import would take the
                # segments not searched for documents that do not exist (upstream: 503 too)
                raise SearchTimeoutError(
                    f"searched {searched} of {len(segments)} segments in {options.timeout:.3f} s"
                )
        if not id_parts:
            return []
        ids = np.concatenate(id_parts)
        scores = np.concatenate(count_parts)
        if len(id_parts) > 1:
            # a document is live in one segment, except for an instant during an update
            order = np.argsort(-scores, kind="stable")
            ids, first = np.unique(ids[order], return_index=True)
            scores = scores[order][first]
        min_score = (
            options.min_score if options.min_score is not None else math.ceil(len(terms) / 20)
        )
        keep = scores >= max(min_score, 1)
        if not keep.any():
            return []
        ids, scores = ids[keep], scores[keep]
        top = int(scores.max())
        keep = scores * 100 >= top * options.score_pct
        ids, scores = ids[keep], scores[keep]
        order = np.lexsort((ids, -scores))[: options.limit]
        return [SearchHit(int(i), int(s)) for i, s in zip(ids[order], scores[order], strict=True)]

    def segments(self) -> tuple[Segment, ...]:
        """The current segments, oldest first (an immutable view)."""
        return self._segments

    def document_version(self, doc_id: int) -> int:
        """Version that wrote the live copy of `doc_id`."""
        self.require_ready()
        probe = np.array([doc_id], dtype=np.uint32)
        for segment in reversed(self._segments):
            ordinal = int(segment.find(probe)[0])
            if ordinal >= 0 and not segment.deleted[ordinal]:
                return int(segment.versions[ordinal])
        raise DocumentNotFoundError(f"document {doc_id} is not in the index")

    def info(self) -> IndexInfo:
        self.require_ready()
        segments = self._segments
        lows = [int(s.docs[~s.deleted].min()) for s in segments if s.live_docs]
        highs = [int(s.docs[~s.deleted].max()) for s in segments if s.live_docs]
        return IndexInfo(
            version=self.version,
            metadata=dict(self.metadata),
            num_docs=sum(s.live_docs for s in segments),
            num_segments=len(segments),
            min_doc_id=min(lows, default=0),
            max_doc_id=max(highs, default=0),
        )

    def stats(self) -> StoreStats:
        segments = self._segments
        memory = [s for s in segments if s.kind == "memory"]
        files = [s for s in segments if s.kind == "file"]
        return StoreStats(
            num_docs=sum(s.live_docs for s in segments),
            memory_segments=len(memory),
            file_segments=len(files),
            memory_bytes=sum(s.nbytes for s in memory),
            file_bytes=sum(s.nbytes for s in files),
            wal_bytes=self._wal.size_bytes,
        )

    def require_ready(self) -> None:
        """Raise CorruptIndexError or NotReadyError unless the index can serve."""
        if self.corruption is not None:
            raise CorruptIndexError(self.corruption)
        if not self.ready:
            raise NotReadyError(f"index {self.path.name} is loading")

    # ---- maintenance: flushes and merges (called by merge.MergeScheduler) ------------

    def maintain(self) -> bool:
        """Do one flush or merge if the policy asks for one; True if work was done."""
        if not self.ready:
            return False
        with self._maintenance_lock:
            idle = time.monotonic() - self._last_write
            segments = self._segments
            memory = [s for s in segments if s.kind == "memory"]
            files = [s for s in segments if s.kind == "file"]
            if memory and (
                sum(s.live_docs for s in memory) >= self.policy.flush_docs
                or idle >= self.policy.idle_flush
                or time.monotonic() - self._memory_since >= self.policy.max_memory_age
            ):
                self._flush()
                return True
            fold = self.policy.pick_tier([s.num_docs for s in memory], base=1)
            if fold is not None:
                self._fold_memory(memory[fold[0] : fold[1]])
                return True
            compact = idle >= self.policy.idle_compact and not self._compacted_since_write
            pick = self.policy.pick_file_merge([s.live_docs for s in files], compact=compact)
            if pick is None and compact and any(isinstance(s, LegacySegment) for s in files):
                pick = (0, len(files))
            if pick is None:
                self._compacted_since_write = self._compacted_since_write or compact
                return False
            self._merge_files(files[pick[0] : pick[1]])
            return True

    def checkpoint(self) -> None:
        """Flush memory segments to a file segment now (snapshots and shutdown use it)."""
        with self._maintenance_lock:
            if any(s.kind == "memory" for s in self._segments):
                self._flush()

    def _capture(self, kind: str) -> tuple[list[Segment], list[np.ndarray]]:
        chosen = [s for s in self._segments if s.kind == kind]
        return chosen, [s.deleted.copy() for s in chosen]

    @property
    def _memory_since(self) -> float:
        """When the oldest data still only in memory (and the WAL) was written."""
        return min(
            (s.created for s in self._segments if isinstance(s, MemorySegment)),
            default=time.monotonic(),
        )

    def _install(
        self,
        replaced: list[Segment],
        captured: list[np.ndarray],
        new: Segment | None,
    ) -> None:
        """Swap `replaced` for `new`, carrying over tombstones set since the capture."""
        if new is not None:
            for segment, before in zip(replaced, captured, strict=True):
                since = segment.deleted & ~before
                if since.any():
                    new.mark_deleted(segment.docs[since])
                    if new.kind == "file":
                        self._dirty.add(new.segment_id)
        gone = {id(s) for s in replaced}
        current = list(self._segments)
        # the new segment takes the place of the oldest one it replaces, which keeps
        # file segments in age order and before memory segments
        position = next(i for i, s in enumerate(current) if id(s) in gone)
        kept = [s for s in current[:position] if id(s) not in gone]
        if new is not None:
            kept.append(new)
        kept.extend(s for s in current[position:] if id(s) not in gone)
        self._segments = tuple(kept)

    def _fold_memory(self, memory: list[Segment] | None = None) -> None:
        started = time.monotonic()
        with self._write_lock:
            if memory is None:
                memory = [s for s in self._segments if s.kind == "memory"]
            captured = [s.deleted.copy() for s in memory]
            segment_id = self._allocate_segment_id()
        merged = merge_segments(memory, captured, chunk_postings=self.policy.chunk_postings)
        folded = MemorySegment.from_postings(
            segment_id=segment_id,
            docs=merged.docs,
            versions=merged.versions,
            hashes=merged.hashes,
            ords=merged.ords,
            created=min(s.created for s in memory if isinstance(s, MemorySegment)),
        )
        with self._write_lock:
            self._install(memory, captured, folded if folded.num_docs else None)
        self._observe("fold", started)

    def _flush(self) -> None:
        started = time.monotonic()
        with self._write_lock:
            memory, captured = self._capture("memory")
            flushed_version = self.version
            segment_id = self._allocate_segment_id()
            self._wal.rotate(flushed_version + 1)
        new = self._write_merged(segment_id, memory, captured)
        with self._write_lock:
            self._install(memory, captured, new)
            self.checkpoint_version = flushed_version
            self._write_manifest()
        self._wal.drop_through(flushed_version)
        self._remove_unreferenced_files()
        self._observe("flush", started)

    def _merge_files(self, files: list[Segment]) -> None:
        started = time.monotonic()
        with self._write_lock:
            captured = [s.deleted.copy() for s in files]
            segment_id = self._allocate_segment_id()
        new = self._write_merged(segment_id, files, captured)
        with self._write_lock:
            self._install(files, captured, new)
            self._write_manifest()
        self._remove_unreferenced_files()
        self._observe("merge", started)
        log.info(
            "index %s: merged %d segments into %d documents in %.1f s",
            self.path.name,
            len(files),
            new.num_docs if new is not None else 0,
            time.monotonic() - started,
        )

    def _write_merged(
        self, segment_id: int, segments: list[Segment], captured: list[np.ndarray]
    ) -> FileSegment | None:
        """Merge `segments` as of `captured` tombstones into a new file, range by range."""
        plan = plan_merge(segments, captured)
        if not len(plan.docs):
            return None
        return FileSegment.write(
            self.path / SEGMENTS_DIR / f"segment-{segment_id:010d}.fpseg",
            segment_id=segment_id,
            docs=plan.docs,
            versions=plan.versions,
            chunks=merged_chunks(segments, plan, chunk_postings=self.policy.chunk_postings),
            num_postings=plan.num_postings,
            trailing_zeros=plan.trailing_zeros,
        )

    def _observe(self, kind: str, started: float) -> None:
        release_free_memory()
        if self._on_merge is not None:
            self._on_merge(self.path.name, kind, time.monotonic() - started)

    # ---- manifest, snapshots --------------------------------------------------------

    def _write_manifest(self) -> None:
        """Atomically replace manifest.json; caller holds the write lock."""
        segment_dir = self.path / SEGMENTS_DIR
        make_dirs(segment_dir)
        self._manifest_serial += 1
        entries = []
        for segment in self._segments:
            if not isinstance(segment, MappedSegment):
                continue
            if segment.segment_id in self._dirty:
                name = f"{segment.path.stem}.del-{self._manifest_serial:08d}.npy"
                with (segment_dir / name).open("wb") as f:
                    np.save(f, segment.deleted_ordinals())
                    f.flush()
                    os.fsync(f.fileno())
                self._deletion_files[segment.segment_id] = name
            entries.append(
                {
                    "file": segment.path.name,
                    "deleted": self._deletion_files.get(segment.segment_id)
                    if segment.num_deleted
                    else None,
                    "docs": segment.num_docs,
                    "postings": segment.num_postings,
                }
            )
        if self._dirty:
            fsync_dir(segment_dir)  # the manifest must not name a tombstone file lost
        self._dirty.clear()
        manifest = {
            "format": _FORMAT,
            "generation": self.generation,
            "version": self.checkpoint_version,
            # metadata newer than the checkpoint is also in the WAL; replay sets it again
            "metadata": self.metadata,
            "next_segment_id": self._next_segment_id,
            "serial": self._manifest_serial,
            "segments": entries,
        }
        tmp = self.path / (MANIFEST + ".tmp")
        with tmp.open("w") as f:
            json.dump(manifest, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        tmp.rename(self.path / MANIFEST)
        fsync_dir(self.path)

    def snapshot(self, destination: Path) -> list[str]:
        """Hard-link a consistent checkpoint (manifest + its files) into `destination`.

        Returns the relative paths, manifest first. Writes continue meanwhile; they are
        after the snapshot's version and not part of it. A corrupt or loading index
        has no consistent checkpoint to give.
        """
        self.require_ready()
        self.checkpoint()
        with self._maintenance_lock:
            names = [MANIFEST, *manifest_files(read_manifest(self.path))]
            (destination / SEGMENTS_DIR).mkdir(parents=True, exist_ok=True)
            for name in names:
                os.link(self.path / name, destination / name)
        return names

    def _remove_unreferenced_files(self) -> None:
        with self._write_lock:
            referenced = {s.path.name for s in self._segments if isinstance(s, MappedSegment)}
            referenced |= {
                name
                for seg_id, name in self._deletion_files.items()
                if any(s.segment_id == seg_id for s in self._segments)
            }
        for path in (self.path / SEGMENTS_DIR).iterdir():
            if path.name not in referenced:
                path.unlink(missing_ok=True)

    def destroy(self) -> None:
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)


def _load_libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


_libc = _load_libc()
_M_MMAP_THRESHOLD = -3
if _libc is not None:
    # glibc raises its mmap threshold (up to 32 MiB) after large frees, so later big NumPy
    # arrays (merge chunks) come from the heap, whose pages stay in the process after they
    # are freed and add up in a merge's peak RSS; a fixed threshold keeps them mmapped
    _libc.mallopt(_M_MMAP_THRESHOLD, 256 * 1024)


def release_free_memory() -> None:
    """Give merge temporaries left on the heap back to the OS (trimming keeps the
    server's RSS at its working set)."""
    if _libc is not None:
        _libc.malloc_trim(0)


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError as exc:
        raise SegmentFileError(f"{path / MANIFEST}: missing, not an index directory") from exc
    except (OSError, ValueError) as exc:
        raise SegmentFileError(f"{path / MANIFEST}: unreadable: {exc}") from exc
    found = manifest.get("format") if isinstance(manifest, dict) else None
    if found not in _READABLE_FORMATS:
        raise SegmentFileError(f"{path / MANIFEST}: unknown format {found!r}")
    missing = {"version", "next_segment_id", "segments"} - manifest.keys()
    if missing:
        raise SegmentFileError(f"{path / MANIFEST}: lacks {', '.join(sorted(missing))}")
    return manifest


def manifest_files(manifest: dict[str, Any]) -> list[str]:
    """Paths, relative to the index directory, of the files `manifest` refers to."""
    names = []
    for entry in manifest["segments"]:
        names.append(f"{SEGMENTS_DIR}/{entry['file']}")
        if entry.get("deleted"):
            names.append(f"{SEGMENTS_DIR}/{entry['deleted']}")
    return names


def open_segment(path: Path, *, verify: bool = False) -> MappedSegment:
    """Map a segment file of either format (`verify`: check its checksums)."""
    if segment_magic(path) == MAGIC:
        return FileSegment.open(path, verify=verify)
    return LegacySegment.open(path, verify=verify)


def load_tombstones(path: Path, name: str) -> U32:
    """The deleted ordinals stored in `segments/<name>` of the index at `path`."""
    file = path / SEGMENTS_DIR / name
    try:
        ords: U32 = np.load(file)
    except (OSError, ValueError) as exc:
        raise SegmentFileError(f"{file}: unreadable tombstones: {exc}") from exc
    return ords


def segment_problems(path: Path, manifest: dict[str, Any]) -> Iterator[SegmentFileError]:
    """Every file `manifest` names that is missing or fails its checks (checksums)."""
    for entry in manifest["segments"]:
        try:
            open_segment(path / SEGMENTS_DIR / entry["file"], verify=True)
        except SegmentFileError as exc:
            yield exc
        if entry.get("deleted"):
            try:
                load_tombstones(path, entry["deleted"])
            except SegmentFileError as exc:
                yield exc


def verify_index_dir(path: Path) -> dict[str, Any]:
    """Check manifest and every referenced file (checksums); returns the manifest."""
    manifest = read_manifest(path)
    for problem in segment_problems(path, manifest):
        raise problem
    return manifest
