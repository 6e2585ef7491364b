"""`/v2/track/list_by_mbid`, `/v2/track/list_by_puid` and `/v2/fingerprint` (§1.8).

None of them needs an application key; they are rate limited by IP and globally.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from acoustid_stack.api import errors
from acoustid_stack.api.catalog import Catalog
from acoustid_stack.api.endpoint import Client, NoKey
from acoustid_stack.api.params import Params, parse_int, parse_uuid


@dataclass(frozen=True)
class ListByMbidCall:
    mbids: list[uuid.UUID]
    batch: bool
    include_disabled: bool
    application_id: int | None = None


class ListByMbidHandler:
    def __init__(self, *, catalog: Catalog) -> None:
        self._catalog = catalog

    async def parse(self, params: Params, client: Client) -> ListByMbidCall:
        values = [value for value in params.getlist("mbid") if value]
        if not values:
            raise errors.missing_parameter("mbid")
        mbids = [parse_uuid("mbid", value) for value in values]
        return ListByMbidCall(mbids, params.flag("batch"), params.flag("disabled"))

    async def run(self, call: ListByMbidCall) -> Mapping[str, Any]:
        wanted = call.mbids if call.batch else call.mbids[:1]
        found = await self._catalog.tracks_by_mbid(wanted, include_disabled=call.include_disabled)

        def tracks(mbid: uuid.UUID) -> list[dict[str, Any]]:
            return [
                {"id": str(gid), "disabled": True} if disabled else {"id": str(gid)}
                for gid, disabled in found.get(mbid, [])
            ]

        if not call.batch:
            return {"tracks": tracks(wanted[0])}
        return {"mbids": [{"mbid": str(mbid), "tracks": tracks(mbid)} for mbid in wanted]}


class ListByPuidHandler:
    """Upstream answers every PUID with no tracks (MusicIP PUIDs are long dead)."""

    async def parse(self, params: Params, client: Client) -> NoKey:
        parse_uuid("puid", params.required("puid"))
        return NoKey()

    async def run(self, call: NoKey) -> Mapping[str, Any]:
        return {"tracks": []}


@dataclass(frozen=True)
class FingerprintCall:
    fingerprint_id: int
    application_id: int | None = None


class FingerprintHandler:
    def __init__(self, *, catalog: Catalog) -> None:
        self._catalog = catalog

    async def parse(self, params: Params, client: Client) -> FingerprintCall:
        fingerprint_id = parse_int(params.get("id"))
        if fingerprint_id is None:
            raise errors.missing_parameter("id")
        return FingerprintCall(fingerprint_id)

    async def run(self, call: FingerprintCall) -> Mapping[str, Any]:
        # ids are int4 in the database; anything outside cannot exist
        found = None
        if -(2**31) <= call.fingerprint_id < 2**31:
            found = await self._catalog.fingerprint(call.fingerprint_id)
        if found is None:
            raise errors.fingerprint_not_found()
        return {"fingerprint": {"id": found.id, "hashes": found.hashes, "duration": found.length}}
