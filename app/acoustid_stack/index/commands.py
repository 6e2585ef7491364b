"""`acoustid-stack index …`: check, restore a snapshot, rebuild from the database, reshard."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click
import httpx
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from acoustid_stack.config.context import settings_from_context
from acoustid_stack.errors import UserError
from acoustid_stack.index.check import check_index
from acoustid_stack.index.client import HashRing, ShardedIndexClient
from acoustid_stack.index.durable import fsync_dir, fsync_tree, make_dirs
from acoustid_stack.index.interfaces import Delete, FpindexError, Insert
from acoustid_stack.index.registry import check_name
from acoustid_stack.index.segment import SegmentFileError
from acoustid_stack.index.snapshots import download_snapshot
from acoustid_stack.index.store import MANIFEST, REPAIR_HINT, IndexStore, verify_index_dir

BATCH = 1000
#: seconds for one shard to apply a batch of a rebuild (as reshard's)
UPDATE_TIMEOUT = 60.0


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=False,
    )


@click.group()
def index() -> None:
    """Operate the fingerprint index: check, restore, rebuild, reshard."""


# ---- check --------------------------------------------------------------------------


@index.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="An index directory, or the data directory of the index server (checks each index).",
)
def check(directory: Path) -> None:
    """Verify manifest, segment checksums and WAL records; change nothing.

    Prints one line per problem and exits 1 if there is any. Run it with the server
    stopped: a running server's merges remove files the check may be about to read.
    """
    if (directory / MANIFEST).exists():
        paths = [directory]
    else:
        paths = [p for p in sorted(directory.iterdir()) if (p / MANIFEST).exists()]
    if not paths:
        raise UserError(f"{directory} holds no index (no {MANIFEST} in it or a sub-directory)")
    results = [check_index(path) for path in paths]
    problems = [line for result in results for line in result.problems]
    for line in problems:
        click.echo(line)
    if problems:
        raise UserError(f"{len(problems)} problem(s) under {directory}; {REPAIR_HINT}")
    click.echo("ok: " + "; ".join(result.summary() for result in results))


# ---- restore ------------------------------------------------------------------------


@index.command()
@click.argument("snapshot", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--dir",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Data directory of the index server (the --dir of `run index`).",
)
@click.option("--name", default="fingerprints", show_default=True, help="Index name to restore.")
@click.option("--force", is_flag=True, help="Replace an existing index of that name.")
def restore(snapshot: str, data_dir: Path, name: str, force: bool) -> None:
    """Turn a snapshot (tar from GET /<index>/_snapshot, or - for stdin) into an index.

    Run it while the index server is stopped; start the server afterwards.
    """
    try:
        check_name(name)
    except FpindexError as exc:
        raise UserError(str(exc)) from exc
    target = data_dir / name
    if target.exists() and not force:
        raise UserError(f"{target} exists; stop the server and pass --force to replace it")
    make_dirs(data_dir)
    staging = Path(tempfile.mkdtemp(prefix=f".restore-{name}-", dir=data_dir))
    try:
        with _open_snapshot(snapshot) as stream:
            _extract(stream, staging)
        manifest = _verify(staging)
        # the server acknowledges writes on top of these files: a power loss must keep them
        fsync_tree(staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
        fsync_dir(data_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    docs = sum(int(entry["docs"]) for entry in manifest["segments"])
    click.echo(
        f"restored index {name!r} at version {manifest['version']} "
        f"({len(manifest['segments'])} segments, {docs} documents) into {target}"
    )


@contextlib.contextmanager
def _open_snapshot(source: str) -> Iterator[IO[bytes]]:
    if source == "-":
        yield sys.stdin.buffer
        return
    try:
        stream = Path(source).open("rb")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise UserError(f"cannot read snapshot {source}: {exc.strerror}") from exc
    with stream:
        yield stream


def _extract(stream: IO[bytes], destination: Path) -> None:
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as archive, _progress() as progress:
            task = progress.add_task("extracting", total=None)
            for member in archive:
                # the "data" filter refuses absolute paths, links and devices
                archive.extract(member, destination, filter="data")
                progress.advance(task)
    except (tarfile.TarError, OSError) as exc:
        raise UserError(f"the snapshot is not a readable tar stream: {exc}") from exc


def _verify(directory: Path) -> dict[str, Any]:
    try:
        return verify_index_dir(directory)
    except SegmentFileError as exc:
        raise UserError(f"the snapshot is incomplete or damaged: {exc}") from exc


# ---- rebuild ------------------------------------------------------------------------


@index.command()
@click.option("--batch", type=click.IntRange(1, 100_000), default=BATCH, show_default=True)
@click.pass_context
def rebuild(ctx: click.Context, batch: int) -> None:
    """Repopulate the index from the fingerprint database (ids + extract_query).

    Reads `fingerprint` with a server-side cursor and inserts into the shards of
    [index] shards; existing documents are replaced, so it can be re-run.
    """
    settings = settings_from_context(ctx)
    asyncio.run(_rebuild(settings, batch))


async def _rebuild(settings: Any, batch: int) -> None:
    import psycopg  # noqa: PLC0415 - only this command needs the database driver

    from acoustid_stack.db.int4_arrays import (  # noqa: PLC0415
        INT4_ARRAY_OID,
        Int4ArrayLoader,
    )
    from acoustid_stack.fingerprint.query import extract_query  # noqa: PLC0415

    target = settings.database.get("fingerprint", readonly=True)
    # [index] timeout is a search's budget; a batch of 1,000 inserts (fsynced in the WAL)
    # on a busy shard takes longer, and a timed-out update would stop the rebuild
    client = ShardedIndexClient(
        shards=settings.index.shards,
        index=settings.index.name,
        timeout=max(settings.index.timeout, UPDATE_TIMEOUT),
    )
    sending: asyncio.Task[None] | None = None
    try:
        await client.ensure_index()
        async with await psycopg.AsyncConnection.connect(target.conninfo()) as conn:
            # int4[] as NumPy arrays straight from the binary rows (text arrays cost a
            # Python int per hash: most of the command's CPU)
            conn.adapters.register_loader(INT4_ARRAY_OID, Int4ArrayLoader)
            total = (
                await (await conn.execute("SELECT count(*) FROM fingerprint")).fetchone() or [0]
            )[0]
            with _progress() as progress:
                task = progress.add_task("rebuilding index", total=total)
                async with conn.cursor(name="index_rebuild", binary=True) as cursor:
                    await cursor.execute("SELECT id, fingerprint FROM fingerprint ORDER BY id")
                    while rows := await cursor.fetchmany(batch):
                        changes = [
                            Insert(int(row[0]), extract_query(row[1]).view(np.uint32))
                            for row in rows
                        ]
                        # one batch in flight while the next one is read and prepared
                        if sending is not None:
                            await sending
                        sending = asyncio.create_task(client.update(changes))
                        progress.advance(task, len(rows))
                    if sending is not None:
                        await sending
    except psycopg.OperationalError as exc:
        raise UserError(
            f"cannot read the fingerprint database at {target.host}:{target.port}: {exc}"
        ) from exc
    except FpindexError as exc:
        raise UserError(f"index rebuild stopped: {exc}; re-run it to continue") from exc
    finally:
        if sending is not None and not sending.done():
            sending.cancel()
            with contextlib.suppress(BaseException):
                await sending
        await client.close()


# ---- reshard ------------------------------------------------------------------------


@index.command()
@click.option("--from", "old", required=True, help="Current shard URLs, comma separated.")
@click.option("--to", "new", required=True, help="New shard URLs, comma separated.")
@click.option("--name", default="fingerprints", show_default=True)
def reshard(old: str, new: str, name: str) -> None:
    """Move the documents whose owner changes from the --from ring to the --to ring.

    Each old shard's snapshot is read and the documents the new ring places elsewhere
    are copied to their new owner, then deleted from the old one: searches stay
    complete throughout. Pause index writers while it runs (a write racing the copy
    could be overwritten by the older copy), then switch [index] shards to --to.
    """
    old_shards = [s.strip().rstrip("/") for s in old.split(",") if s.strip()]
    new_shards = [s.strip().rstrip("/") for s in new.split(",") if s.strip()]
    if not old_shards or not new_shards:
        raise UserError("--from and --to each need at least one shard URL")
    asyncio.run(_reshard(old_shards, new_shards, name))


async def _reshard(old_shards: list[str], new_shards: list[str], name: str) -> None:
    new_ring = HashRing(new_shards)
    target = ShardedIndexClient(shards=new_shards, index=name, timeout=UPDATE_TIMEOUT)
    moved = 0
    try:
        await target.ensure_index()
        for shard in old_shards:
            source = ShardedIndexClient(shards=[shard], index=name, timeout=UPDATE_TIMEOUT)
            try:
                with tempfile.TemporaryDirectory(prefix="reshard-") as tmp:
                    directory = Path(tmp) / name
                    await _download_snapshot(shard, name, directory)
                    store = IndexStore(directory)
                    store.open()
                    for docs in _documents_leaving(store, new_ring, shard):
                        await target.update([Insert(i, h) for i, h in docs])
                        await source.update([Delete(i) for i, _ in docs])
                        moved += len(docs)
                    store.close()
            finally:
                await source.close()
    except (FpindexError, httpx.HTTPError) as exc:
        raise UserError(f"reshard stopped after {moved} documents: {exc}; re-run it") from exc
    finally:
        await target.close()
    click.echo(f"moved {moved} documents; now set [index] shards = {','.join(new_shards)}")


async def _download_snapshot(shard: str, name: str, directory: Path) -> None:
    directory.mkdir(parents=True)
    archive_path = directory.parent / "snapshot.tar"
    await download_snapshot(shard, name, archive_path)
    with archive_path.open("rb") as f:
        _extract(f, directory)
    _verify(directory)


def _documents_leaving(
    store: IndexStore, ring: HashRing, shard: str
) -> Iterator[list[tuple[int, np.ndarray]]]:
    """Batches of (id, terms) of live documents that `ring` places on another shard."""
    here = ring.shards.index(shard) if shard in ring.shards else -1
    with _progress() as progress:
        for segment in store.segments():
            owners = ring.owner_indexes(segment.docs)
            leaving = (owners != here) & ~segment.deleted
            task = progress.add_task(f"{shard} segment", total=int(leaving.sum()))
            if not leaving.any():
                continue
            terms, ords = segment.decode()
            keep = leaving[ords]
            terms, ords = terms[keep], ords[keep]
            order = np.argsort(ords, kind="stable")
            terms, ords = terms[order], ords[order]
            ordinals, starts = np.unique(ords, return_index=True)
            groups = dict(zip(ordinals.tolist(), np.split(terms, starts[1:]), strict=True))
            empty = np.empty(0, dtype=np.uint32)
            batch: list[tuple[int, np.ndarray]] = []
            for ordinal in np.flatnonzero(leaving).tolist():
                group = groups.get(ordinal, empty)
                batch.append((int(segment.docs[ordinal]), group))
                if len(batch) == BATCH:
                    yield batch
                    progress.advance(task, len(batch))
                    batch = []
            if batch:
                yield batch
                progress.advance(task, len(batch))
