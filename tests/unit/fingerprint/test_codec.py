from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acoustid_stack.fingerprint import (
    InvalidFingerprint,
    decode_api_fingerprint,
    decode_fingerprint,
    encode_fingerprint,
)
from acoustid_stack.fingerprint.audio import fpcalc

from . import libchromaprint

RANDOM_ARRAYS = 10_000
uint32s = st.integers(min_value=0, max_value=2**32 - 1)
URLSAFE = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# chromaprint's reading of base64: URL-safe alphabet, every other byte is 0 ("A")
LENIENT = bytes(
    (b"+/"[URLSAFE.index(c) - 62] if c in b"-_" else c) if c in URLSAFE else ord("A")
    for c in range(256)
)


def random_hashes(rng: np.random.Generator, length: int) -> np.ndarray:
    """Hashes whose bits are set with one random density, so sparse and dense arrays both
    occur (dense ones produce long runs of exceptions, sparse ones long gaps)."""
    bits = rng.random((length, 32)) < rng.random()
    return np.packbits(bits, axis=1, bitorder="little").view("<u4").ravel().astype(np.uint32)


def test_encode_and_decode_match_libchromaprint_on_ten_thousand_random_arrays() -> None:
    rng = np.random.default_rng(20240601)
    for case in range(RANDOM_ARRAYS):
        # lengths 0 and 1 first, then mostly short arrays and every 500th one real-sized
        length = case if case < 2 else int(rng.integers(0, 2000 if case % 500 == 0 else 64))
        hashes = random_hashes(rng, length)
        algorithm = int(rng.integers(0, 256))
        expected = libchromaprint.encode(hashes, algorithm)
        assert encode_fingerprint(hashes, algorithm).encode() == expected, hashes
        decoded = decode_fingerprint(expected)
        assert decoded.algorithm == algorithm
        assert np.array_equal(decoded.hashes, hashes)


def c_decoder_stays_in_bounds(data: bytes) -> bool:
    """False for inputs where libchromaprint 1.5 corrupts its heap: it unpacks the whole tail
    after the normal stream into a buffer sized for the exceptions it needs, so bytes beyond
    the exception stream overflow it (and abort the test process)."""
    usable = len(data) - 1 if len(data) % 4 == 1 else len(data)
    packed = base64.b64decode(data[:usable].translate(LENIENT) + b"=" * (-usable % 4))
    if len(packed) < 4:
        return True
    count = int.from_bytes(packed[1:4], "big")
    bits = np.unpackbits(np.frombuffer(packed[4:], np.uint8), bitorder="little")
    normal = bits[: bits.size // 3 * 3].reshape(-1, 3) @ np.array([1, 2, 4])
    ends = np.flatnonzero(normal == 0)
    if count == 0 or ends.size < count:
        return True  # rejected before the exception stream is read
    normal = normal[: ends[count - 1] + 1]
    exceptions = int(np.count_nonzero(normal == 7))
    tail = len(packed) - 4 - (normal.size * 3 + 7) // 8
    return exceptions == 0 or tail <= (exceptions * 5 + 7) // 8


def test_decode_accepts_and_rejects_exactly_what_libchromaprint_does_on_damaged_input() -> None:
    rng = np.random.default_rng(7)
    alphabet = np.frombuffer(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/= \x80", np.uint8
    )
    accepted = compared = 0
    for _ in range(20_000):
        if rng.random() < 0.3:
            data = bytes(rng.choice(alphabet, int(rng.integers(0, 40))))
        else:
            hashes = rng.integers(0, 2**32, int(rng.integers(0, 8)), dtype=np.uint32)
            data = libchromaprint.encode(hashes, int(rng.integers(0, 3)))
        if len(data) > 6 and rng.random() < 0.5:
            damaged = bytearray(data)
            damaged[int(rng.integers(0, len(data)))] = int(rng.choice(alphabet))
            data = bytes(damaged)
        if rng.random() < 0.3:
            data = data[: int(rng.integers(0, len(data) + 1))]
        if not c_decoder_stays_in_bounds(data):
            continue
        compared += 1
        expected = libchromaprint.decode(data)
        try:
            ours = decode_fingerprint(data)
        except InvalidFingerprint:
            assert expected is None, data
            continue
        assert expected is not None, data
        accepted += 1
        assert ours.algorithm == expected[0] & 0xFF  # C returns the byte as a signed char
        assert np.array_equal(ours.hashes, expected[1]), data
    assert compared > 15_000
    assert accepted > 5_000


def test_decode_is_lenient_like_chromaprint() -> None:
    assert encode_fingerprint([1, 2, 3]) == "AQAAA0GCAA"
    # "+", "/", "=" are not URL-safe base64: they read as 0 ("A"), like any unknown byte
    assert np.array_equal(decode_fingerprint("AQAAA0GCAA").hashes, [1, 2, 3])
    assert decode_fingerprint("AQAAA0GCAA+/=").hashes.tolist() == [1, 2, 3]
    assert decode_fingerprint(b"AQAAA0GCAA" + b"x").hashes.tolist() == [1, 2, 3]
    # positions past bit 32 wrap around and are OR-ed in, as libchromaprint on x86
    wrapped = b"AQAAATkAGQ"  # one hash, deltas 1 and 7 + 25: bit positions 1 and 33 (= 1)
    assert decode_fingerprint(wrapped).hashes.tolist() == [1]
    assert libchromaprint.decode(wrapped)[1].tolist() == [1]  # type: ignore[index]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("", "shorter than its 4-byte header"),
        ("AQAA", "shorter than its 4-byte header"),
        ("AQAAAQ", "truncated"),
        ("AQAAAAE", "says 0 hashes"),
    ],
)
def test_decode_rejects_malformed_input_with_a_reason(data: str, reason: str) -> None:
    with pytest.raises(InvalidFingerprint, match=reason):
        decode_fingerprint(data)
    assert libchromaprint.decode(data.encode()) is None


def test_decode_rejects_input_that_is_not_text_or_bytes() -> None:
    with pytest.raises(InvalidFingerprint, match="str or bytes"):
        decode_fingerprint(12345)  # type: ignore[arg-type]


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(), st.binary()))
def test_decode_raises_nothing_but_invalid_fingerprint_on_arbitrary_input(
    data: str | bytes,
) -> None:
    try:
        fingerprint = decode_fingerprint(data)
    except InvalidFingerprint:
        return
    assert fingerprint.hashes.dtype == np.uint32
    assert 0 <= fingerprint.algorithm <= 255


@settings(max_examples=300, deadline=None)
@given(st.lists(uint32s, max_size=300), st.integers(min_value=0, max_value=255))
def test_decoding_an_encoded_fingerprint_gives_back_the_hashes(
    hashes: list[int], algorithm: int
) -> None:
    decoded = decode_fingerprint(encode_fingerprint(hashes, algorithm))
    assert decoded.algorithm == algorithm
    assert decoded.hashes.tolist() == hashes


@settings(max_examples=300, deadline=None)
@given(st.lists(uint32s, max_size=300))
def test_encoding_a_decoded_fingerprint_gives_back_the_string(hashes: list[int]) -> None:
    text = libchromaprint.encode(np.array(hashes, dtype=np.uint32), 1).decode()
    assert encode_fingerprint(decode_fingerprint(text).hashes) == text


def test_encode_accepts_signed_database_values() -> None:
    signed = [-1, -(2**31), 627964279]
    unsigned = [2**32 - 1, 2**31, 627964279]
    assert encode_fingerprint(signed) == encode_fingerprint(unsigned)


@pytest.mark.parametrize(
    ("hashes", "algorithm", "message"),
    [([1], 256, "algorithm"), ([2**32], 1, r"\[-2\*\*31"), ([1.5], 1, "integers")],
)
def test_encode_rejects_values_it_cannot_represent(
    hashes: list[float], algorithm: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        encode_fingerprint(hashes, algorithm)


def test_api_validation_returns_signed_hashes() -> None:
    hashes = decode_api_fingerprint(encode_fingerprint([2**32 - 1, 5]))
    assert hashes.dtype == np.int32
    assert hashes.tolist() == [-1, 5]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (encode_fingerprint([1, 2], algorithm=2), "algorithm 2"),
        (encode_fingerprint([]), "no hashes"),
        ("not a fingerprint", "truncated|shorter|0 hashes"),
    ],
)
def test_api_validation_rejects_what_upstream_answers_with_error_3(data: str, reason: str) -> None:
    with pytest.raises(InvalidFingerprint, match=reason):
        decode_api_fingerprint(data)


def test_codec_matches_real_fpcalc_output(song: Path, song_cut: Path, other_song: Path) -> None:
    for path in (song, song_cut, other_song):
        raw = np.array(fpcalc(path, raw=True)["fingerprint"], dtype=np.uint32)
        compressed = fpcalc(path, raw=False)["fingerprint"]
        assert raw.size > 150
        assert encode_fingerprint(raw) == compressed
        assert libchromaprint.encode(raw, 1).decode() == compressed
        decoded = decode_fingerprint(compressed)
        assert decoded.algorithm == 1
        assert np.array_equal(decoded.hashes, raw)
        assert np.array_equal(libchromaprint.decode(compressed.encode())[1], raw)  # type: ignore[index]
