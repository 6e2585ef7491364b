from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import pytest

from acoustid_stack.config import load_settings
from acoustid_stack.logging_setup import configure_logging

ENVIRON = {
    "ACOUSTID_DATABASE_PASSWORD": "db-pw-4711",
    "ACOUSTID_REDIS_PASSWORD": "redis-pw-4711",
    "ACOUSTID_NATS_SERVERS": "nats://bob:nats-pw-4711@127.0.0.1:4222",
    "ACOUSTID_LOGGING_LEVEL": "WARNING",
    "ACOUSTID_LOGGING_LEVEL_ACOUSTID_STACK__CHATTY": "DEBUG",
}


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Logging configured from ENVIRON into a buffer; the previous logging state restored after."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers), logging.getLogRecordFactory())
    chatty = logging.getLogger("acoustid_stack.chatty")
    stream = io.StringIO()
    try:
        configure_logging(load_settings(environ=ENVIRON), stream=stream)
        yield stream
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
        logging.setLogRecordFactory(saved[2])
        chatty.setLevel(logging.NOTSET)


def test_log_lines_use_the_upstream_format(log_output: io.StringIO) -> None:
    logging.getLogger("acoustid_stack.test").warning("hello %s", "world")
    line = log_output.getvalue().strip()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \[\d+\] \[WARNING\] "
        r"acoustid_stack\.test: hello world",
        line,
    )


def test_levels_come_from_root_and_per_logger_settings(log_output: io.StringIO) -> None:
    logging.getLogger("acoustid_stack.quiet").info("hidden")
    logging.getLogger("acoustid_stack.chatty").debug("shown")
    output = log_output.getvalue()
    assert "hidden" not in output
    assert "acoustid_stack.chatty: shown" in output


def test_configured_secrets_never_reach_the_log(log_output: io.StringIO) -> None:
    logger = logging.getLogger("acoustid_stack.test")
    settings = load_settings(environ=ENVIRON)
    logger.warning("connecting with %s", settings.database.app.conninfo())
    logger.warning("redis at %s", settings.redis.url())
    logger.warning("password is %r", "db-pw-4711")
    try:
        raise RuntimeError("auth failed for redis-pw-4711")
    except RuntimeError:
        logger.exception("failed")
    output = log_output.getvalue()
    assert "4711" not in output
    assert "password=***" in output
    assert "redis://:***@127.0.0.1:6379/0" in output


def test_credentials_in_urls_and_conninfo_are_redacted_even_when_not_configured(
    log_output: io.StringIO,
) -> None:
    logger = logging.getLogger("acoustid_stack.test")
    logger.warning("dsn postgresql://u:unknown-pw@h/db and host=h password='x y' port=1")
    output = log_output.getvalue()
    assert "unknown-pw" not in output
    assert "x y" not in output
    assert "postgresql://u:***@h/db" in output


def test_configuring_twice_keeps_one_handler(log_output: io.StringIO) -> None:
    before = len(logging.getLogger().handlers)
    configure_logging(load_settings(environ=ENVIRON), stream=log_output)
    assert len(logging.getLogger().handlers) == before
