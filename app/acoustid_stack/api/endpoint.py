"""The request cycle every v2 endpoint shares, in upstream's order (reference §1.2):
format → parameters and key checks → rate limit → handler → rendering, with metrics.

Handlers only parse and answer; errors they raise as ApiError become the error envelope,
anything else becomes error 5 (logged, counted, sent to Sentry when configured).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import sentry_sdk
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response

from acoustid_stack.api import errors
from acoustid_stack.api.errors import ApiError
from acoustid_stack.api.metrics import ApiMetrics
from acoustid_stack.api.params import MalformedBody, Params, read_params
from acoustid_stack.api.ratelimit import RateLimiter
from acoustid_stack.api.render import JSON_FORMAT, OutputFormat, render_error, render_ok
from acoustid_stack.proxies import TrustedProxies

logger = logging.getLogger(__name__)

CLIENT_CLOSED_REQUEST = 499


@dataclass(frozen=True)
class Client:
    """Who is asking. `ip` is the peer, or with trusted proxies in front the address they
    forwarded (`proxies.py`); upstream's ProxyFix believed any X-Forwarded-For."""

    ip: str
    user_agent: str
    #: HTTPS as the client sees it (X-Forwarded-Proto counts from trusted proxies only)
    secure: bool = False


class Call(Protocol):
    """A parsed request; `application_id` picks the rate-limit bucket (None: IP only)."""

    @property
    def application_id(self) -> int | None: ...


CallT = TypeVar("CallT", bound=Call)


class Handler(Protocol, Generic[CallT]):
    async def parse(self, params: Params, client: Client) -> CallT:
        """Validate parameters and keys; raise ApiError."""
        ...

    async def run(self, call: CallT) -> Mapping[str, Any]:
        """The response data (without "status"); raise ApiError."""
        ...


@dataclass(frozen=True)
class NoKey:
    """The parsed request of endpoints that need no application key."""

    application_id: int | None = None


class EndpointRunner:
    def __init__(
        self,
        *,
        limiter: RateLimiter,
        metrics: ApiMetrics,
        cluster_secret: str | None,
        proxies: TrustedProxies,
    ) -> None:
        self._limiter = limiter
        self._metrics = metrics
        self._cluster_secret = cluster_secret
        self._proxies = proxies

    def endpoint(
        self, name: str, handler: Handler[Any]
    ) -> Callable[[Request], Awaitable[Response]]:
        """A Starlette endpoint running `handler`; `name` labels its metrics."""

        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            response = await self._respond(request, handler)
            self._metrics.requests.labels(name, request.method, str(response.status_code)).inc()
            self._metrics.request_duration.labels(name, request.method).observe(
                time.perf_counter() - started
            )
            return response

        return endpoint

    async def _respond(self, request: Request, handler: Handler[Any]) -> Response:
        output: OutputFormat | None = None  # until the parameters are read: the query string's
        try:
            params = await read_params(request)
            output = OutputFormat.parse(params.get("format"), params.get("jsoncallback"))
            client = self._client_of(request)
            call = await handler.parse(params, client)
            if not self._is_cluster_peer(params):
                await self._limiter.check(client_ip=client.ip, application_id=call.application_id)
            return render_ok(await handler.run(call), output)
        except ApiError as error:
            self._metrics.handled_errors.labels(str(int(error.code))).inc()
            return render_error(error, output or _query_format(request))
        except MalformedBody as exc:
            return PlainTextResponse(f"Bad request: {exc}", 400)
        except ClientDisconnect:
            # Nobody reads this answer; 499 (nginx's "client closed request") keeps a client
            # that hung up out of the 500s, the error log and Sentry.
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        except Exception:
            logger.exception("unhandled error in %s", request.url.path)
            sentry_sdk.capture_exception()
            self._metrics.unhandled_errors.inc()
            internal = errors.internal()
            self._metrics.handled_errors.labels(str(int(internal.code))).inc()
            return render_error(internal, output or _query_format(request))

    def _is_cluster_peer(self, params: Params) -> bool:
        # Upstream's replicas and acoustid.biz skip rate limits with the shared secret.
        secret = params.get("secret")
        return bool(
            self._cluster_secret and secret and hmac.compare_digest(secret, self._cluster_secret)
        )

    def _client_of(self, request: Request) -> Client:
        peer = request.client.host if request.client else ""
        proto = request.headers.get("x-forwarded-proto", "").strip().lower()
        forwarded_https = proto == "https" and self._proxies.trusts(peer)
        return Client(
            ip=self._proxies.client_of(request),
            user_agent=request.headers.get("user-agent", ""),
            secure=request.scope.get("scheme") == "https" or forwarded_https,
        )


def _query_format(request: Request) -> OutputFormat:
    """The format named in the query string, for errors raised before the body is read."""
    try:
        return OutputFormat.parse(
            request.query_params.get("format"), request.query_params.get("jsoncallback")
        )
    except ApiError:
        return JSON_FORMAT
