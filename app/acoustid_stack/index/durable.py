"""Making a created, renamed or removed name survive a power loss, not only a kill -9.

fsync of a file persists its bytes, not the directory entry that names it: until the
directory itself is fsynced, a new or renamed file may be missing after the machine
loses power.
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Persist the entries of `directory` (files created, renamed or removed in it)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(directory: Path) -> None:
    """Persist every file under `directory`, bytes and names, and `directory` itself."""
    for root, _, files in os.walk(directory, topdown=False):
        for name in files:
            fd = os.open(Path(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(root))


def make_dirs(directory: Path) -> None:
    """`mkdir -p` whose every new level is persisted in its parent."""
    missing = [p for p in (directory, *directory.parents) if not p.exists()]
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
        fsync_dir(path.parent)
