"""Connecting to one of the three databases, and saying clearly why it failed."""

from __future__ import annotations

import re

from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool

from acoustid_stack.config import DatabaseName, DatabaseSettings
from acoustid_stack.errors import UserError


def admin_engine(target: DatabaseSettings) -> Engine:
    """An engine for schema work: no pool, since each command opens one connection."""
    return create_engine(target.sqlalchemy_url(), poolclass=NullPool)


# libpq: 'connection failed: connection to server at "h", port 5 failed: FATAL:  reason'
# followed by hint lines; the reason is what follows the last "failed:" of the first line.
_LIBPQ_REASON = re.compile(r".*failed:\s*(?:FATAL:\s*)?(?P<reason>.*)")


def connection_error(database: DatabaseName, target: DatabaseSettings, exc: Exception) -> UserError:
    """One line naming the server and the setting that fixes it, from a connect failure."""
    first_line = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""])[0]
    match = _LIBPQ_REASON.match(first_line)
    reason = (match.group("reason") if match else first_line).strip().rstrip(".")
    prefix = f"ACOUSTID_DATABASE_{database.upper()}"
    if "authentication" in reason or "password" in reason or "role" in reason:
        advice = f"set ACOUSTID_DATABASE_USER / ACOUSTID_DATABASE_PASSWORD (or {prefix}_USER …)"
    else:
        advice = (
            f"start PostgreSQL there or set ACOUSTID_DATABASE_HOST / ACOUSTID_DATABASE_PORT "
            f"(or {prefix}_HOST / {prefix}_PORT)"
        )
    return UserError(
        f"cannot connect to PostgreSQL at {target.host}:{target.port} "
        f"(database {database}: {target.name!r} as {target.user!r}): {reason}; {advice}"
    )
