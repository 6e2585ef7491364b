"""Property tests of the posting and directory codecs of file segments."""

from __future__ import annotations

from typing import Any

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


uint32s = st.integers(0, 2**32 - 1)
runs_of_values = st.lists(
    st.lists(st.sampled_from([0, 2**32 - 1]) | uint32s, max_size=40).map(sorted), max_size=12
)


def encoded_runs(
    runs: list[list[int]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(words, tags, starts, counts, byte offsets) of sorted runs, delta-coded as a segment
    stores its buckets."""
    deltas = np.array(
        [d for run in runs for d in np.diff(np.array(run, dtype=np.int64), prepend=0)],
        dtype=np.uint32,
    )
    lengths = codec.varint_lengths(deltas)
    data = codec.varint_encode(deltas, lengths)
    data = np.concatenate([data, np.zeros(codec.varint_padding(len(data)), np.uint8)])
    counts = np.array([len(run) for run in runs], dtype=np.int64)
    starts = np.cumsum(counts) - counts
    ends = np.cumsum(lengths.astype(np.int64))
    offsets = np.array([ends[s - 1] if s else 0 for s in starts], dtype=np.int64)
    return data.view("<u4"), codec.pack_lengths(lengths), starts, counts, offsets


@given(runs_of_values, st.randoms())
def test_delta_varint_runs_decode_to_their_values(runs: list[list[int]], random: Any) -> None:
    words, tags, starts, counts, offsets = encoded_runs(runs)
    decoded = codec.delta_decode(words, tags, starts, counts, offsets)
    assert decoded.tolist() == [v for run in runs for v in run]
    # any runs, in any order, as a search asks for the buckets of its terms
    picked = [random.randrange(len(runs)) for _ in range(5)] if runs else []
    decoded = codec.delta_decode(words, tags, starts[picked], counts[picked], offsets[picked])
    assert decoded.tolist() == [v for i in picked for v in runs[i]]


def test_varint_lengths_at_the_byte_edges() -> None:
    values = np.array([0, 255, 256, 2**16 - 1, 2**16, 2**24 - 1, 2**24, 2**32 - 1], np.uint32)
    assert codec.varint_lengths(values).tolist() == [1, 1, 2, 2, 3, 3, 4, 4]
