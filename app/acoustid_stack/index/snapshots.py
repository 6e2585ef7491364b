"""Copies of a shard's snapshot, fetched over HTTP by `backup run`, `index reshard` and cron.

`GET /<index>/_snapshot` streams a tar of a consistent checkpoint: the manifest first, then
the segment files it names. A copy is written one way only: into a hidden file beside the
target, checked, fsynced, then renamed, so the target is the complete archive or is not
there (and a copy of the same name from before stays whole).
"""

from __future__ import annotations

import asyncio
import json
import os
import tarfile
from pathlib import Path

import httpx

from acoustid_stack.index.durable import fsync_dir
from acoustid_stack.index.interfaces import FpindexError
from acoustid_stack.index.store import MANIFEST, manifest_files

#: A large shard streams for minutes; only connecting has to be quick.
SNAPSHOT_TIMEOUT = httpx.Timeout(600, connect=5)
PARTIAL_SUFFIX = ".partial"
_CHUNK = 1 << 20


def partial_path(destination: Path) -> Path:
    """Where the copy for `destination` is written before it is renamed into place."""
    return destination.with_name(f".{destination.name}{PARTIAL_SUFFIX}")


async def download_snapshot(shard: str, index: str, destination: Path) -> int:
    """Copy the snapshot of `index` on `shard` (a base URL) to `destination`; its size.

    Raises FpindexError when the shard refuses or breaks off, or the archive lacks a file
    its manifest names; `destination` is then untouched. Local disk errors are OSError.
    """
    url = f"{shard.rstrip('/')}/{index}/_snapshot"
    partial = partial_path(destination)
    try:
        async with (
            httpx.AsyncClient(timeout=SNAPSHOT_TIMEOUT) as http,
            http.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise FpindexError(f"snapshot of {url}: HTTP {response.status_code}")
            with partial.open("wb") as out:
                async for chunk in response.aiter_bytes(_CHUNK):
                    out.write(chunk)
                out.flush()
                await asyncio.to_thread(os.fsync, out.fileno())
        check_archive(partial, url)
        partial.replace(destination)
        fsync_dir(destination.parent)
    except httpx.HTTPError as exc:
        raise FpindexError(f"snapshot of {url} failed: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return destination.stat().st_size


def check_archive(path: Path, source: str) -> None:
    """Raise FpindexError unless every file the manifest names is in the archive, whole
    (tarfile reports a member cut short). Cheap: checksums are checked where a copy is
    used (`index restore`, `backup verify`). `source` names the archive in the message."""
    try:
        with tarfile.open(path, "r:") as archive:
            members = archive.getnames()
            manifest_file = archive.extractfile(MANIFEST) if MANIFEST in members else None
            if manifest_file is None:
                raise FpindexError(f"snapshot of {source} has no {MANIFEST}")
            missing = set(manifest_files(json.load(manifest_file))) - set(members)
    except (tarfile.TarError, OSError, ValueError, KeyError, TypeError) as exc:
        raise FpindexError(f"snapshot of {source} is not a complete archive: {exc}") from exc
    if missing:
        raise FpindexError(f"snapshot of {source} lacks {', '.join(sorted(missing))}")
