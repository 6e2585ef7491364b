"""First-run data of a local stack: an account and an application whose API key `up` prints."""

from __future__ import annotations

import psycopg

from acoustid_stack.api.auth import new_api_key
from acoustid_stack.config import Settings

LOCAL_APPLICATION = "acoustid-stack local"


def ensure_local_application(settings: Settings) -> tuple[str, str]:
    """The (client API key, user API key) of the local application, created on first run."""
    with psycopg.connect(settings.database.app.conninfo()) as conn:
        # one `up` at a time holds the data folder, but a system PostgreSQL may be shared
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('acoustid-stack local bootstrap'))")
        row = conn.execute(
            "SELECT application.apikey, account.apikey FROM application "
            "JOIN account ON account.id = application.account_id WHERE application.name = %s",
            (LOCAL_APPLICATION,),
        ).fetchone()
        if row is not None:
            return str(row[0]), str(row[1])
        user_key, client_key = new_api_key(), new_api_key()
        account = conn.execute(
            "INSERT INTO account (name, apikey) VALUES (%s, %s) RETURNING id",
            ("local operator", user_key),
        ).fetchone()
        assert account is not None
        conn.execute(
            "INSERT INTO application (name, version, apikey, account_id) VALUES (%s, %s, %s, %s)",
            (LOCAL_APPLICATION, "1", client_key, account[0]),
        )
        return client_key, user_key
