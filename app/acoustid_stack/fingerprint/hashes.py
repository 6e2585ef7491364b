"""Hash arrays: one fingerprint is a sequence of 32-bit sub-fingerprints ("hashes").

Chromaprint thinks of them as unsigned (`uint32`), PostgreSQL stores them as signed `int4`;
the bits are the same. Every function of this package accepts either view and works on the
bits; results are returned in the view their docstring names.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

UInt32Array = NDArray[np.uint32]
Int32Array = NDArray[np.int32]

_INT32_MIN = -(2**31)
_UINT32_END = 2**32


def as_uint32(hashes: ArrayLike) -> UInt32Array:
    """The hashes as a 1-D `uint32` array (the same bits as the input).

    Accepts any 1-D sequence or array of integers in [-2**31, 2**32), so signed database values
    and unsigned chromaprint values both work. Raises ValueError for anything else.
    """
    array = np.asarray(hashes)
    if array.ndim != 1:
        raise ValueError(f"hashes must be a 1-D sequence of integers, got shape {array.shape}")
    if array.dtype in (np.uint32, np.int32):
        return np.ascontiguousarray(array).view(np.uint32)
    if array.size == 0:
        return np.zeros(0, dtype=np.uint32)
    if array.dtype.kind not in "iu":
        raise ValueError(f"hashes must be integers, got {array.dtype}")
    wide = array.astype(np.int64) if array.dtype != np.uint64 else array
    if wide.min() < _INT32_MIN or wide.max() >= _UINT32_END:
        raise ValueError("hashes must lie in [-2**31, 2**32)")
    return (wide & 0xFFFFFFFF).astype(np.uint32)


def as_int32(hashes: ArrayLike) -> Int32Array:
    """The hashes as a 1-D signed `int32` array, the view PostgreSQL's `int4[]` holds."""
    return as_uint32(hashes).view(np.int32)
