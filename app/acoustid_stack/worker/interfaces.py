"""What the importer reports per submission."""

from __future__ import annotations

import enum


class ImportOutcome(enum.Enum):
    """What happened to one submission; every outcome except BUSY is final (ack)."""

    IMPORTED = "imported"
    REJECTED = "rejected"  # too few distinct hashes, or nothing to link the fingerprint to
    ALREADY_HANDLED = "already_handled"  # a redelivery: the first delivery did the work
    MISSING = "missing"  # no such submission row (deleted, or another installation's id)
    BUSY = "busy"  # another worker holds a lock it needs: try again later (nak)
