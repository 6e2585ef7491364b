"""Database errors that a row's data causes, rather than the server or the connection.

A batch failing with one of them fails again at every retry, however long one waits: its
writer isolates the rows at fault (halving the batch, or row by row) so that the others get
through, and drops or parks only those.
"""

from __future__ import annotations

import psycopg
import psycopg.errors
import sqlalchemy.exc

# data exception (class 22: a value out of range, a NUL character, …), integrity constraint
# violation (23), and 54000: a value too large for its index entry or row
_CAUSES = (psycopg.DataError, psycopg.IntegrityError, psycopg.errors.ProgramLimitExceeded)


def is_row_error(exc: BaseException) -> bool:
    """True when `exc` (psycopg's, or SQLAlchemy's wrapping of it) is caused by row data."""
    cause = exc.orig if isinstance(exc, sqlalchemy.exc.DBAPIError) else exc
    return isinstance(cause, _CAUSES)
