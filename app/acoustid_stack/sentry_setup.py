"""Error reporting to Sentry from ``settings.sentry``: one initialiser for every process.

Each long-running process (api, web, worker, cron, index) calls `init_sentry` once, right after
`configure_logging`, with its own name; the name becomes the `process` tag of its events, so one
DSN serves the whole stack. What reaches Sentry: errors logged at ERROR with or without a
traceback (the logging integration: the worker's failed batch, a failed cron job, the index's
500s), exceptions that escape a web request (5xx only: 4xx and the api's 499 are the client's
business) or a process. The DSN is a secret (`dsn_file` / `ACOUSTID_SENTRY_DSN_FILE`); every
text of an event passes through the logs' redaction, so no configured secret leaves the process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from acoustid_stack import __version__
from acoustid_stack.config import Settings
from acoustid_stack.logging_setup import SecretRedactor

if TYPE_CHECKING:
    from sentry_sdk.types import Event

#: The `release` of every event: Sentry's `package@version` convention.
RELEASE = f"acoustid-stack@{__version__}"


class _EventRedactor:
    """`before_send`/`before_breadcrumb`: every text of an event (messages, exception values,
    frame variables, breadcrumbs, request data) redacted as the log formatter does. Sentry's own
    scrubber only knows variables by name (`password`, `secret`, ...); ours knows the values."""

    def __init__(self, redactor: SecretRedactor) -> None:
        self._redactor = redactor

    def event(self, event: Event, hint: dict[str, Any]) -> Event:
        return cast("Event", self._redact(event))

    def breadcrumb(self, crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        redacted: dict[str, Any] = self._redact(crumb)
        return redacted

    def _redact(self, value: Any) -> Any:
        # before_send sees the serialised event: only dicts, lists and scalars
        if isinstance(value, str):
            return self._redactor.redact(value)
        if isinstance(value, dict):
            return {key: self._redact(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._redact(item) for item in value]
        return value


def init_sentry(settings: Settings, *, process: str) -> bool:
    """Report this process's errors to `settings.sentry.dsn`, tagged `process`; False (and
    nothing done) when no DSN is configured."""
    config = settings.sentry
    if not config.dsn:
        return False
    # imported only when reporting is on: importing the SDK took 0.5 s on a loaded 2-core host
    import sentry_sdk  # noqa: PLC0415

    redact = _EventRedactor(SecretRedactor(settings.secret_values()))
    sentry_sdk.init(
        dsn=config.dsn,
        release=RELEASE,
        environment=config.environment,
        traces_sample_rate=config.traces_sample_rate,
        send_default_pii=False,
        before_send=redact.event,
        before_breadcrumb=redact.breadcrumb,
    )
    # on the global scope: every thread, task and request scope of the process inherits it
    sentry_sdk.get_global_scope().set_tag("process", process)
    return True
