"""The named indexes of one server, each a sub-directory of the data directory."""

from __future__ import annotations

import logging
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

from acoustid_stack.index.interfaces import (
    CorruptIndexError,
    IndexAlreadyExistsError,
    IndexNotFoundError,
    InvalidIndexNameError,
    NewerIndexAlreadyExistsError,
    OlderIndexAlreadyExistsError,
)
from acoustid_stack.index.merge import MergePolicy
from acoustid_stack.index.store import MANIFEST, IndexStore, MergeObserver

log = logging.getLogger(__name__)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
SNAPSHOTS_DIR = ".snapshots"


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidIndexNameError(
            f"invalid index name {name!r}: letters, digits, '_', '.', '-', at most 64, "
            "not starting with '_' or '.'"
        )
    return name


class IndexRegistry:
    def __init__(
        self,
        root: Path,
        *,
        policy: MergePolicy | None = None,
        on_merge: MergeObserver | None = None,
    ) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._policy = policy
        self._on_merge = on_merge
        self._stores: dict[str, IndexStore] = {}
        self._lock = threading.Lock()
        #: set once start-up has loaded every index found (and created the requested ones)
        self.loaded = threading.Event()

    def _new_store(self, name: str) -> IndexStore:
        return IndexStore(self.root / name, policy=self._policy, on_merge=self._on_merge)

    def discover(self) -> list[IndexStore]:
        """Register every index directory (not yet loaded: they answer 503 until `load`)."""
        found = []
        with self._lock:
            for path in sorted(self.root.iterdir()):
                if (path / MANIFEST).exists() and path.name not in self._stores:
                    store = self._new_store(path.name)
                    self._stores[path.name] = store
                    found.append(store)
        return found

    @staticmethod
    def load(stores: list[IndexStore]) -> None:
        for store in stores:
            try:
                store.open()
            except CorruptIndexError as exc:
                # one line naming file, offset and the way out; the store answers 503
                log.error("%s", exc)
            except Exception:
                log.exception("index %s failed to load; it stays unavailable", store.path.name)

    def items(self) -> Iterator[tuple[str, IndexStore]]:
        with self._lock:
            items = list(self._stores.items())
        return iter(items)

    def waiting(self) -> list[str]:
        """Names of the indexes that cannot serve yet: not ready and not corrupt (loading,
        or a load that failed unexpectedly). A corrupt index is left out: it answers for
        itself on `/<index>/_health`, and the server's other indexes still serve."""
        return [
            name for name, store in self.items() if not store.ready and store.corruption is None
        ]

    def stores(self) -> list[IndexStore]:
        with self._lock:
            return list(self._stores.values())

    def get(self, name: str) -> IndexStore:
        check_name(name)
        store = self._stores.get(name)
        if store is None:
            raise IndexNotFoundError(f"index {name!r} does not exist")
        return store

    def create(
        self, name: str, *, generation: int | None = None, expect_new: bool = False
    ) -> IndexStore:
        """Create `name` at `generation` (default 1). Idempotent, as upstream: an existing
        index is returned unless `expect_new`, or a `generation` other than its own is asked
        for (older or newer: a different lineage)."""
        check_name(name)
        with self._lock:
            existing = self._stores.get(name)
            if existing is not None:
                if expect_new:
                    raise IndexAlreadyExistsError(f"index {name!r} already exists")
                if generation is not None and generation < existing.generation:
                    raise OlderIndexAlreadyExistsError(
                        f"index {name!r} exists at generation {existing.generation}, "
                        f"newer than the requested {generation}"
                    )
                if generation is not None and generation > existing.generation:
                    raise NewerIndexAlreadyExistsError(
                        f"index {name!r} exists at generation {existing.generation}, "
                        f"older than the requested {generation}"
                    )
                return existing
            store = IndexStore.create(
                self.root / name,
                generation=generation or 1,
                policy=self._policy,
                on_merge=self._on_merge,
            )
            store.open()
            self._stores[name] = store
            return store

    def delete(self, name: str, *, expect_exists: bool = False) -> bool:
        """Remove `name`; whether it existed."""
        check_name(name)
        with self._lock:
            store = self._stores.pop(name, None)
        if store is None:
            if expect_exists:
                raise IndexNotFoundError(f"index {name!r} does not exist")
            return False
        store.destroy()
        return True

    def snapshot_dir(self) -> Path:
        path = self.root / SNAPSHOTS_DIR / uuid.uuid4().hex
        path.mkdir(parents=True)
        return path

    def clear_snapshots(self) -> None:
        shutil.rmtree(self.root / SNAPSHOTS_DIR, ignore_errors=True)

    def close(self) -> None:
        for store in self.stores():
            if store.ready:
                store.checkpoint()
                store.close()
