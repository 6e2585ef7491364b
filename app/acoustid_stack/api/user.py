"""`/v2/user/lookup` and `/v2/user/create_anonymous` (§1.8)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from acoustid_stack.api.auth import ApiKeys, new_api_key
from acoustid_stack.api.endpoint import Client
from acoustid_stack.api.params import Params
from acoustid_stack.db import text_limits
from acoustid_stack.db.schema.app import account


@dataclass(frozen=True)
class UserLookupCall:
    account_id: int
    application_id: int | None = None


class UserLookupHandler:
    def __init__(self, *, keys: ApiKeys, app_db: AsyncEngine) -> None:
        self._keys = keys
        self._db = app_db

    async def parse(self, params: Params, client: Client) -> UserLookupCall:
        return UserLookupCall(await self._keys.account_id(params))

    async def run(self, call: UserLookupCall) -> Mapping[str, Any]:
        async with self._db.connect() as connection:
            apikey = await connection.scalar(
                select(account.c.apikey).where(account.c.id == call.account_id)
            )
        return {"user": {"apikey": apikey}}


@dataclass(frozen=True)
class CreateAnonymousCall:
    application_id: int
    application_version: str | None
    ip: str


class CreateAnonymousHandler:
    def __init__(self, *, keys: ApiKeys, app_db: AsyncEngine) -> None:
        self._keys = keys
        self._db = app_db

    async def parse(self, params: Params, client: Client) -> CreateAnonymousCall:
        application_id = await self._keys.application_id(params)
        version = params.label("clientversion", text_limits.CLIENT_VERSION)
        return CreateAnonymousCall(application_id, version, client.ip)

    async def run(self, call: CreateAnonymousCall) -> Mapping[str, Any]:
        apikey = new_api_key()
        async with self._db.begin() as connection:
            await connection.execute(
                insert(account).values(
                    name="Anonymous",
                    apikey=apikey,
                    anonymous=True,
                    application_id=call.application_id,
                    application_version=call.application_version,
                    created_from=_inet_or_none(call.ip),
                )
            )
        return {"user": {"apikey": apikey}}


def _inet_or_none(address: str) -> str | None:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None
