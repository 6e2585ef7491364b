"""The real chromaprint codec (Debian `libchromaprint1`) through ctypes: the oracle our codec
is checked against in tests, and the baseline bench/fingerprint_bench.py measures against.

Never imported by the application: production has no C dependency.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Sequence
from functools import cache

import numpy as np
from numpy.typing import NDArray

LIBRARY_NAMES = ("libchromaprint.so.1", "chromaprint")


@cache
def load() -> ctypes.CDLL:
    """The loaded library; raises OSError naming the Debian package when it is missing."""
    for name in LIBRARY_NAMES:
        path = ctypes.util.find_library(name) if "." not in name else name
        if path is None:
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        lib.chromaprint_encode_fingerprint.argtypes = [
            ctypes.POINTER(ctypes.c_uint32),
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.POINTER(ctypes.c_int),
            ctypes.c_int,
        ]
        lib.chromaprint_decode_fingerprint.argtypes = [
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.POINTER(ctypes.POINTER(ctypes.c_uint32)),
            ctypes.POINTER(ctypes.c_int),
            ctypes.POINTER(ctypes.c_int),
            ctypes.c_int,
        ]
        lib.chromaprint_dealloc.argtypes = [ctypes.c_void_p]
        return lib
    raise OSError("libchromaprint.so.1 not found; install it: apt-get install libchromaprint1")


def encode(hashes: Sequence[int] | NDArray[np.uint32], algorithm: int) -> bytes:
    """`chromaprint_encode_fingerprint(..., base64=1)`: the compressed string as bytes."""
    lib = load()
    array = np.ascontiguousarray(hashes, dtype=np.uint32)
    out = ctypes.c_char_p()
    out_size = ctypes.c_int()
    ok = lib.chromaprint_encode_fingerprint(
        array.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32)),
        len(array),
        algorithm,
        ctypes.byref(out),
        ctypes.byref(out_size),
        1,
    )
    assert ok == 1
    try:
        return ctypes.string_at(out, out_size.value)
    finally:
        lib.chromaprint_dealloc(out)


def decode(data: bytes) -> tuple[int, NDArray[np.uint32]] | None:
    """`chromaprint_decode_fingerprint(..., base64=1)`: (algorithm, hashes), None on failure."""
    lib = load()
    out = ctypes.POINTER(ctypes.c_uint32)()
    size = ctypes.c_int()
    algorithm = ctypes.c_int()
    ok = lib.chromaprint_decode_fingerprint(
        data, len(data), ctypes.byref(out), ctypes.byref(size), ctypes.byref(algorithm), 1
    )
    if ok != 1:
        return None
    try:
        hashes = np.ctypeslib.as_array(out, shape=(size.value,)).copy() if size.value else None
        return algorithm.value, hashes if hashes is not None else np.zeros(0, np.uint32)
    finally:
        lib.chromaprint_dealloc(out)
