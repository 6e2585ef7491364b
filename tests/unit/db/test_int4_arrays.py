from __future__ import annotations

import struct

import numpy as np
import pytest

from acoustid_stack.db.int4_arrays import INT4_OID, from_binary, to_binary


def test_hashes_survive_the_binary_array_format() -> None:
    hashes = np.array([0, 1, -1, 2**31 - 1, -(2**31)], dtype=np.int32)
    data = to_binary(hashes)
    assert data[:20] == struct.pack("!iiiii", 1, 0, INT4_OID, 5, 1)
    decoded = from_binary(data)
    assert decoded.dtype == np.int32
    assert decoded.tolist() == hashes.tolist()


def test_an_empty_array_has_no_dimensions() -> None:
    assert to_binary([]) == struct.pack("!iii", 0, 0, INT4_OID)
    assert from_binary(to_binary([])).tolist() == []


def test_arrays_with_nulls_or_two_dimensions_are_refused() -> None:
    with_null = struct.pack("!iiiii", 1, 1, INT4_OID, 1, 1) + struct.pack("!i", -1)
    two_dimensions = struct.pack("!iiiiiii", 2, 0, INT4_OID, 1, 1, 1, 1) + struct.pack("!ii", 4, 7)
    for data in (with_null, two_dimensions):
        with pytest.raises(ValueError, match="one-dimensional"):
            from_binary(data)
