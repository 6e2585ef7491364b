"""API keys (reference §1.4): application keys (`client`) and user keys (`user`).

Application keys are read on nearly every request, so found keys are cached in-process for
60 s (at most 1000): disabling an application takes up to a minute to bite, as upstream.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import secrets
import string
from collections.abc import Callable
from typing import Final

from cachetools import TTLCache
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from acoustid_stack.api import errors
from acoustid_stack.api.params import Params
from acoustid_stack.db.schema.app import account, application

CACHE_TTL_SECONDS: Final = 60.0
CACHE_SIZE: Final = 1000
#: Upstream serves its rotating demo key as application 2.
DEMO_APPLICATION_ID: Final = 2
DEMO_KEY_DAYS: Final = 7
API_KEY_LENGTH: Final = 10
_KEY_ALPHABET: Final = string.ascii_letters + string.digits


class ApiKeys:
    """Resolves `client` to an application id and `user` to an account id."""

    def __init__(
        self,
        *,
        app_db: AsyncEngine,
        website_secret: str | None,
        today: Callable[[], datetime.date] = datetime.date.today,
    ) -> None:
        self._db = app_db
        self._secret = website_secret
        self._today = today
        self._applications: TTLCache[str, int] = TTLCache(CACHE_SIZE, CACHE_TTL_SECONDS)

    async def application_id(self, params: Params) -> int:
        """The active application whose key is `client`: error 2 if absent, 4 if unknown."""
        apikey = params.required("client")
        cached = self._applications.get(apikey)
        if cached is not None:
            return cached
        async with self._db.connect() as connection:
            found = await connection.scalar(
                select(application.c.id).where(
                    application.c.apikey == apikey, application.c.active.is_(True)
                )
            )
        if found is None and self._is_demo_key(apikey):
            found = DEMO_APPLICATION_ID
        if found is None:
            raise errors.invalid_apikey()
        self._applications[apikey] = found
        return int(found)

    async def account_id(self, params: Params) -> int:
        """The account whose key is `user`: error 2 if absent, 6 if unknown. Not cached: only
        submissions and user look-ups need it, and a new account must work at once."""
        apikey = params.required("user")
        async with self._db.connect() as connection:
            found = await connection.scalar(select(account.c.id).where(account.c.apikey == apikey))
        if found is None:
            raise errors.invalid_user_apikey()
        return int(found)

    def _is_demo_key(self, apikey: str) -> bool:
        if not self._secret or len(apikey) != 11 or apikey[-2] != "A":
            return False
        first = self._today()
        return any(
            hmac.compare_digest(apikey, demo_api_key(self._secret, first + datetime.timedelta(n)))
            for n in range(DEMO_KEY_DAYS)
        )


def demo_api_key(secret: str, day: datetime.date) -> str:
    """Upstream's rotating demo key of one day (HMAC-MD5 of the day number, 11 characters)."""
    digest = hmac.new(
        f"{secret}:demo-client-api-key".encode(), f"{day.toordinal():x}".encode(), hashlib.md5
    ).digest()
    key = base64.urlsafe_b64encode(digest[:8]).decode("ascii").rstrip("=")
    return key[:-2] + "A" + key[-1]


def new_api_key() -> str:
    """A fresh 10-character key of letters and digits (upstream's alphabet minus `/+=`)."""
    return "".join(secrets.choice(_KEY_ALPHABET) for _ in range(API_KEY_LENGTH))
