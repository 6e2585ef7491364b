"""Contracts of the index: errors, changes, search results, and the client Protocol.

Errors carry the HTTP status the server answers with, so handlers never guess.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

MAX_UINT32 = 0xFFFFFFFF

MetadataValue = str | int | float | bool | None


class FpindexError(Exception):
    """Base of every index error. `status` is the HTTP status the server answers with and
    `name` the error name in its body (`{"error": name}`, upstream fpindex's names); the
    message is our human detail."""

    status = 500
    name = "InternalError"


class BadRequestError(FpindexError):
    status = 400
    name = "BadRequest"


class InvalidIndexNameError(BadRequestError):
    name = "InvalidIndexName"


class InvalidFingerprintIdError(BadRequestError):
    name = "InvalidFingerprintId"


class GenerationNotAllowedError(BadRequestError):
    name = "GenerationNotAllowed"


class IndexNotFoundError(FpindexError):
    status = 404
    name = "IndexNotFound"


class DocumentNotFoundError(FpindexError):
    status = 404
    name = "FingerprintNotFound"


class ConflictError(FpindexError):
    """Optimistic concurrency failed: `expected_version` is not the index's version."""

    status = 409
    name = "VersionMismatch"


class IndexAlreadyExistsError(ConflictError):
    """`PUT /:index` with `expect_does_not_exist` on an existing index."""

    name = "IndexAlreadyExists"


class OlderIndexAlreadyExistsError(ConflictError):
    """`PUT /:index` asked for a generation older than the existing index's (upstream's
    name and rule: the request is the older one)."""

    name = "OlderIndexAlreadyExists"


class NewerIndexAlreadyExistsError(ConflictError):
    """`PUT /:index` asked for a generation newer than the existing index's."""

    name = "NewerIndexAlreadyExists"


class NotReadyError(FpindexError):
    """The index is still recovering segments and WAL."""

    status = 503
    name = "IndexNotReady"


class CorruptIndexError(NotReadyError):
    """The index's files are damaged: it serves nothing until restored or rebuilt."""


class SearchTimeoutError(FpindexError):
    """A search did not finish within its timeout (waiting for a search thread included);
    it answers nothing rather than the segments it had time for."""

    status = 503
    name = "SearchTimeout"


class UnsupportedMediaTypeError(FpindexError):
    status = 415
    name = "UnsupportedMediaType"


class ShardUnavailableError(FpindexError):
    """A shard that owns the ids being written, or that a complete search needs, did not
    answer: the caller must retry."""

    status = 503


@dataclass(frozen=True)
class Insert:
    """Insert or replace document `id` with the set of `hashes` (query terms)."""

    id: int
    hashes: NDArray[np.uint32]


@dataclass(frozen=True)
class Delete:
    id: int


Change = Insert | Delete


@dataclass(frozen=True)
class SearchHit:
    """`score` is the number of distinct query hashes present in document `id`."""

    id: int
    score: int


@dataclass(frozen=True)
class SearchOptions:
    """Search parameters as the fpindex API defines them (timeout in seconds here)."""

    limit: int = 40
    timeout: float = 0.5
    min_score: int | None = None  # None: ceil(len(query) / 20)
    score_pct: int = 10


@dataclass(frozen=True)
class UpdateResult:
    version: int


@dataclass
class IndexInfo:
    version: int
    metadata: dict[str, MetadataValue] = field(default_factory=dict)
    num_docs: int = 0
    num_segments: int = 0
    min_doc_id: int = 0
    max_doc_id: int = 0


class FingerprintIndex(Protocol):
    """What the api and worker need from an index: ours (sharded) or an upstream fpindex."""

    async def search(
        self, query: Sequence[int], options: SearchOptions | None = None
    ) -> list[SearchHit]: ...

    async def search_many(
        self,
        queries: Sequence[Sequence[int]],
        options: SearchOptions | None = None,
        *,
        require_all: bool = False,
    ) -> list[list[SearchHit]]:
        """Hits per query; a shard that does not answer is left out, or with `require_all`
        raises ShardUnavailableError (an import must not miss a match, a lookup may)."""
        ...

    async def update(
        self,
        changes: Sequence[Change],
        *,
        metadata: Mapping[str, MetadataValue] | None = None,
    ) -> None: ...

    async def insert(self, doc_id: int, hashes: Sequence[int]) -> None: ...

    async def delete(self, doc_id: int) -> None: ...

    async def close(self) -> None: ...
