"""Rows the website's pages count: a new account with an application of its own."""

from __future__ import annotations

import secrets

from sqlalchemy import Connection

from acoustid_stack.db.schema import app as app_db


def new_application(conn: Connection, name: str) -> tuple[int, int]:
    """(account id, application id) of a new account `name` and its application."""
    account_id = conn.scalar(
        app_db.account.insert()
        .values(name=name, apikey=secrets.token_hex(8))
        .returning(app_db.account.c.id)
    )
    app_id = conn.scalar(
        app_db.application.insert()
        .values(name=name, version="1", apikey=secrets.token_hex(8), account_id=account_id)
        .returning(app_db.application.c.id)
    )
    assert account_id is not None
    assert app_id is not None
    return int(account_id), int(app_id)
