"""Finding stored fingerprints similar to a query: shared by `/v2/lookup` and the importer.

Index search on every shard → best ≤ 20 candidates → their hashes from the fingerprint
database inside the length window → scored with `fingerprint.score_candidates` (upstream
`acoustid_compare2`, vectorised) → matches above a minimum score, best first.
"""

from acoustid_stack.matching.candidates import Candidate, CandidateStore, DatabaseCandidates
from acoustid_stack.matching.matcher import (
    FingerprintMatch,
    Matcher,
)

__all__ = [
    "Candidate",
    "CandidateStore",
    "DatabaseCandidates",
    "FingerprintMatch",
    "Matcher",
]
