"""Writes index directories in format 1 (FPSEG001 segments), as servers before issue 15 did.

The encoder is the one those servers ran (it left the application with that format), so
the tests can check that a new server reads what old ones wrote.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

_HEADER = struct.Struct("<8sI")
_ALIGN = 64


def write_segment(
    path: Path, *, segment_id: int, docs: np.ndarray, terms: np.ndarray, ords: np.ndarray
) -> None:
    """An FPSEG001 file of postings sorted by (term, ordinal)."""
    ord_bits = max(1, (len(docs) - 1).bit_length())
    low_bits = 32 - ord_bits
    counts = np.bincount(terms >> np.uint32(low_bits), minlength=1 << ord_bits)
    offsets = np.zeros((1 << ord_bits) + 1, dtype=np.uint32)
    np.cumsum(counts, out=offsets[1:])
    low_mask = np.uint32((1 << low_bits) - 1)
    packed = (((terms & low_mask) << np.uint32(ord_bits)) | ords).astype(np.uint32)
    arrays: dict[str, NDArray[Any]] = {
        "docs": docs.astype(np.uint32),
        "versions": np.ones(len(docs), dtype=np.uint64),
        "offsets": offsets,
        "postings": packed,
    }
    refs = {}
    position = 0
    for name, array in arrays.items():
        refs[name] = {
            "offset": position,
            "dtype": array.dtype.str,
            "count": len(array),
            "crc32": zlib.crc32(array.tobytes()),
        }
        position = _aligned(position + array.nbytes)
    header = json.dumps({"segment_id": segment_id, "ord_bits": ord_bits, "arrays": refs}).encode()
    data_start = _aligned(_HEADER.size + len(header))
    with path.open("wb") as f:
        f.write(_HEADER.pack(b"FPSEG001", len(header)))
        f.write(header)
        for name, array in arrays.items():
            f.seek(data_start + refs[name]["offset"])
            f.write(array.tobytes())
        f.truncate(data_start + position)


def write_index(path: Path, documents: dict[int, np.ndarray]) -> None:
    """A format-1 index directory holding `documents` (id -> terms) in one segment."""
    (path / "segments").mkdir(parents=True)
    docs = np.array(sorted(documents), dtype=np.uint32)
    keys = np.unique(
        np.concatenate(
            [
                (documents[int(doc)].astype(np.uint64) << np.uint64(32)) | np.uint64(ordinal)
                for ordinal, doc in enumerate(docs)
            ]
        )
    )
    write_segment(
        path / "segments" / "segment-0000000001.fpseg",
        segment_id=1,
        docs=docs,
        terms=(keys >> np.uint64(32)).astype(np.uint32),
        ords=(keys & np.uint64(0xFFFFFFFF)).astype(np.uint32),
    )
    manifest = {
        "format": 1,
        "generation": 1,
        "version": 1,
        "metadata": {},
        "next_segment_id": 2,
        "serial": 1,
        "segments": [
            {"file": "segment-0000000001.fpseg", "deleted": None, "docs": len(docs)},
        ],
    }
    (path / "manifest.json").write_text(json.dumps(manifest))


def _aligned(position: int) -> int:
    return (position + _ALIGN - 1) // _ALIGN * _ALIGN
