"""Property tests of the posting and directory codecs of file segments."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from acoustid_stack.index import codec

widths = st.integers(min_value=1, max_value=4)


@st.composite
def values_of_a_width(draw: st.DrawFn) -> tuple[int, list[int]]:
    width = draw(widths)
    top = (1 << (8 * width)) - 1
    values = draw(st.lists(st.sampled_from([0, top]) | st.integers(0, top), max_size=200))
    return width, values


@given(values_of_a_width())
def test_fixed_width_values_round_trip(case: tuple[int, list[int]]) -> None:
    width, values = case
    array = np.array(values, dtype=np.uint32)
    data = codec.encode(array, width)
    assert len(data) == width * len(values)
    assert codec.decode(data, width).tolist() == values
    positions = np.arange(len(values))[::-1]
    assert codec.take(data, width, positions).tolist() == values[::-1]
    if values:
        assert codec.decode(data, width, 1, len(values)).tolist() == values[1:]


def test_edge_values_keep_every_bit() -> None:
    edges = np.array([0, 1, 2**24 - 1, 2**31, 2**32 - 1], dtype=np.uint32)
    assert codec.take(codec.encode(edges, 4), 4, np.arange(5)).tolist() == edges.tolist()
    assert codec.width_for(0) == 1
    assert codec.width_for(24) == 3
    assert codec.width_for(25) == 4


@given(st.lists(st.integers(0, 70000), max_size=700))
def test_directory_gives_every_bucket_start(counts: list[int]) -> None:
    array = np.array(counts, dtype=np.uint32)
    base, rel = codec.encode_directory(array)
    starts = np.concatenate(([0], np.cumsum(array, dtype=np.int64)))
    buckets = np.arange(len(counts) + 1)
    assert codec.directory_starts(base, rel, buckets).tolist() == starts.tolist()
    # monotone input: uint16 offsets unless a block holds 2^16 postings
    blocks = [sum(counts[i : i + codec.BLOCK]) for i in range(0, len(counts), codec.BLOCK)]
    assert (rel.dtype == np.uint16) == (max(blocks, default=0) < 2**16)
