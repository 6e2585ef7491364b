"""Process logging from ``settings.logging``, with secrets redacted from every record.

Format (DESIGN.md §5): ``%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s``.
Redaction works at two points: a log-record factory rewrites every message before any handler
sees it (also handlers that uvicorn or sentry install later), and our formatter redacts the
final text, which covers tracebacks.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from acoustid_stack.config import Settings
from acoustid_stack.config.settings import MASK

LOG_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s"

# Credentials that may show up without being a configured value (a DSN or conninfo built by a
# library): URL userinfo passwords and libpq `password=` pairs.
_URL_PASSWORD = re.compile(r"(?P<keep>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@", re.IGNORECASE)
_CONNINFO_PASSWORD = re.compile(r"(?P<keep>\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)")


class SecretRedactor:
    """Replaces known secret values and credential-shaped text by ***."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret that contains another is masked whole.
        ordered = sorted({secret for secret in secrets if secret}, key=len, reverse=True)
        self._secrets = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def redact(self, text: str) -> str:
        if self._secrets is not None:
            text = self._secrets.sub(MASK, text)
        text = _URL_PASSWORD.sub(rf"\g<keep>{MASK}@", text)
        return _CONNINFO_PASSWORD.sub(rf"\g<keep>{MASK}", text)


class RedactingFormatter(logging.Formatter):
    """The standard formatter, with the whole output (message and traceback) redacted."""

    def __init__(self, redactor: SecretRedactor) -> None:
        super().__init__(LOG_FORMAT)
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor.redact(super().format(record))


class _RedactingRecordFactory:
    def __init__(self, wrapped: Any, redactor: SecretRedactor) -> None:
        self.wrapped = wrapped
        self.redactor = redactor

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = self.wrapped(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is reported by the handler, not here
            return record
        redacted = self.redactor.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return record


def configure_logging(settings: Settings, *, stream: TextIO | None = None) -> None:
    """Send logs to ``stream`` (stderr) at the configured levels; never emit a secret.

    Safe to call again (tests, reloads): it replaces what an earlier call installed.
    """
    redactor = SecretRedactor(settings.secret_values())
    factory = logging.getLogRecordFactory()
    if isinstance(factory, _RedactingRecordFactory):
        factory = factory.wrapped
    logging.setLogRecordFactory(_RedactingRecordFactory(factory, redactor))

    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h.formatter, RedactingFormatter)]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(RedactingFormatter(redactor))
    root.addHandler(handler)
    root.setLevel(settings.logging.level)
    for logger_name, level in settings.logging.levels.items():
        logging.getLogger(logger_name).setLevel(level)
