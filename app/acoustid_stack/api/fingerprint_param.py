"""The `fingerprint` parameter of `/v2/lookup` and `/v2/submit`: decoded, at most
MAX_FINGERPRINT_HASHES hashes (error 3), off the event loop when large.

A 1 MiB body can carry ~2 million hashes: half a second of decoding and an ~8 MB row, during
which an event-loop decode would also stall every other request, probes included.
"""

from __future__ import annotations

import asyncio
from typing import Final

from acoustid_stack.api import errors
from acoustid_stack.fingerprint import InvalidFingerprint, decode_api_fingerprint
from acoustid_stack.fingerprint.hashes import Int32Array

#: chromaprint yields ~8.08 hashes per second of audio (11025 Hz, a hash every 1365 samples):
#: 60,000 is 2 h 4 min, longer than any real audio file fingerprinted whole.
MAX_FINGERPRINT_HASHES: Final = 60_000
#: Longer strings (~10 minutes of audio and more) are decoded in a worker thread; shorter ones,
#: nearly every lookup, decode in microseconds, less than the thread hop would cost.
THREAD_DECODE_CHARS: Final = 16 * 1024


async def decode_fingerprint_param(text: str) -> Int32Array:
    """The hashes of a fingerprint parameter; ApiError 3 when it is invalid or too long."""
    try:
        if len(text) <= THREAD_DECODE_CHARS:
            return decode_api_fingerprint(text, max_hashes=MAX_FINGERPRINT_HASHES)
        return await asyncio.to_thread(
            decode_api_fingerprint, text, max_hashes=MAX_FINGERPRINT_HASHES
        )
    except InvalidFingerprint as exc:
        raise errors.invalid_fingerprint() from exc
