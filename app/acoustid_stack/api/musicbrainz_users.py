"""`/v2/user/create_musicbrainz`: the API key of the account of a MusicBrainz user (§1.8).

Upstream verifies the OAuth2 access token with `https://musicbrainz.org/oauth2/userinfo`
and answers the key of the account linked to its `sub`, creating it on first use. This
deployment sends no traffic beyond its own services, so no token can be verified: after
the HTTPS check (error 16) every token is refused as unverifiable (error 15). Accepting
them needs a verifier that may reach MusicBrainz and an account column for its `sub`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from acoustid_stack.api import errors
from acoustid_stack.api.endpoint import Client
from acoustid_stack.api.params import Params


@dataclass(frozen=True)
class CreateMusicBrainzCall:
    access_token: str
    application_id: int | None = None


class CreateMusicBrainzHandler:
    async def parse(self, params: Params, client: Client) -> CreateMusicBrainzCall:
        """Error 16 over plain HTTP (the token must not travel in clear), 2 without a token."""
        if not client.secure:
            raise errors.insecure_request()
        return CreateMusicBrainzCall(params.required("access_token"))

    async def run(self, call: CreateMusicBrainzCall) -> Mapping[str, Any]:
        raise errors.invalid_musicbrainz_access_token()
