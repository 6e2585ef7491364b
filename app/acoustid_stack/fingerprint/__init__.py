"""Fingerprint core: the compressed string codec, query extraction and scoring.

- `codec`: `decode_fingerprint` / `encode_fingerprint` (byte-compatible with chromaprint),
  `decode_api_fingerprint` (the API's validation, signed int32 hashes), `InvalidFingerprint`.
- `query`: `extract_query` (index terms, upstream `acoustid_extract_query`).
- `compare`: `compare2` and the batched `score_candidates` (upstream `acoustid_compare2`).
"""

from acoustid_stack.fingerprint.codec import (
    DEFAULT_ALGORITHM,
    Fingerprint,
    InvalidFingerprint,
    decode_api_fingerprint,
    decode_fingerprint,
    encode_fingerprint,
)
from acoustid_stack.fingerprint.compare import compare2, score_candidates
from acoustid_stack.fingerprint.query import extract_query

__all__ = [
    "DEFAULT_ALGORITHM",
    "Fingerprint",
    "InvalidFingerprint",
    "compare2",
    "decode_api_fingerprint",
    "decode_fingerprint",
    "encode_fingerprint",
    "extract_query",
    "score_candidates",
]
