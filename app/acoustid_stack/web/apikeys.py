"""Registering an application: an account to own it and a fresh API key."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine

from acoustid_stack.api.auth import new_api_key
from acoustid_stack.db.schema import app as app_db

MAX_FIELD = 200
CREATION_WINDOW_SECONDS = 3600

logger = logging.getLogger(__name__)


class InvalidApplication(ValueError):
    """The form is incomplete or too long; the message says which field."""


@dataclass(frozen=True)
class NewApplication:
    name: str
    version: str
    email: str | None
    website: str | None

    @classmethod
    def from_form(cls, form: dict[str, str]) -> NewApplication:
        values = {
            key: (form.get(key) or "").strip() for key in ("name", "version", "email", "website")
        }
        for key in ("name", "version"):
            if not values[key]:
                raise InvalidApplication(f"Please give the application's {key}.")
        for key, value in values.items():
            if len(value) > MAX_FIELD:
                raise InvalidApplication(f"The {key} is longer than {MAX_FIELD} characters.")
        return cls(
            values["name"], values["version"], values["email"] or None, values["website"] or None
        )


async def register_application(app: AsyncEngine, new: NewApplication) -> str:
    """Create the owning account and the application in one transaction; the API key."""
    apikey = new_api_key()
    async with app.begin() as conn:
        account_id = await conn.scalar(
            app_db.account.insert()
            .values(name=f"{new.name} (application)", apikey=new_api_key())
            .returning(app_db.account.c.id)
        )
        await conn.execute(
            app_db.application.insert().values(
                name=new.name,
                version=new.version,
                apikey=apikey,
                account_id=account_id,
                email=new.email,
                website=new.website,
            )
        )
    return apikey


async def creation_allowed(redis: Redis, *, key_prefix: str, client_ip: str, per_hour: int) -> bool:
    """Count one creation by `client_ip` in this clock hour; False past `per_hour`.

    Not the api's RateLimiter: its window is 20 s, and a limit of a few accounts an hour
    needs an hour's window. Fails open like it: a Redis outage must not close the form.
    """
    window = int(time.time() // CREATION_WINDOW_SECONDS)
    key = f"{key_prefix}web:apikey:{client_ip}:{window}"
    try:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, CREATION_WINDOW_SECONDS)
            count, _ = await pipe.execute()
    except RedisError as exc:
        logger.warning("API key creation limit skipped, Redis failed: %s", exc)
        return True
    return int(count) <= per_hour
