"""One SQLAlchemy Core `MetaData` per database; queries import the tables from here."""

from __future__ import annotations

from typing import Final

from sqlalchemy import MetaData

from acoustid_stack.config import DatabaseName
from acoustid_stack.db.schema import app, fingerprint, ingest

# Migration order: app first, ingest last (nothing depends on it being first, but a fixed
# order makes output and locking predictable).
DATABASE_NAMES: Final[tuple[DatabaseName, ...]] = ("app", "fingerprint", "ingest")

METADATA: Final[dict[DatabaseName, MetaData]] = {
    "app": app.metadata,
    "fingerprint": fingerprint.metadata,
    "ingest": ingest.metadata,
}
