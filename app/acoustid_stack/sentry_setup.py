"""Error reporting to Sentry from ``settings.sentry``: one initialiser for every process.

Each long-running process (api, web, worker, cron, index) calls `init_sentry` once, right after
`configure_logging`, with its own name; the name becomes the `process` tag of its events, so one
DSN serves the whole stack. What reaches Sentry: errors logged at ERROR with or without a
traceback (the logging integration: the worker's failed batch, a failed cron job, the index's
500s), exceptions that escape a web request (5xx only: 4xx and the api's 499 are the client's
business) or a process. The DSN is a secret (`dsn_file` / `ACOUSTID_SENTRY_DSN_FILE`); events
pass through the same redaction as the logs, so they never carry a configured secret.
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
    """`before_send`/`before_breadcrumb`: redacts the texts an event carries (messages,
    exception values, breadcrumbs) as the log formatter does."""

    def __init__(self, redactor: SecretRedactor) -> None:
        self._redactor = redactor

    def event(self, event: Event, hint: dict[str, Any]) -> Event:
        self._redact_event(cast(dict[str, Any], event))
        return event

    def _redact_event(self, event: dict[str, Any]) -> None:
        for exception in event.get("exception", {}).get("values", []):
            self._redact_key(exception, "value")
        self._redact_key(event, "message")
        logentry = event.get("logentry")
        if isinstance(logentry, dict):
            self._redact_key(logentry, "message")
            self._redact_key(logentry, "formatted")
        for crumb in event.get("breadcrumbs", {}).get("values", []):
            self._redact_key(crumb, "message")

    def breadcrumb(self, crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        self._redact_key(crumb, "message")
        return crumb

    def _redact_key(self, holder: dict[str, Any], key: str) -> None:
        text = holder.get(key)
        if isinstance(text, str):
            holder[key] = self._redactor.redact(text)


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
