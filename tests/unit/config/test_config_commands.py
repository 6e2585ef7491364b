from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from acoustid_stack.cli import main

WriteConfig = Callable[[str], str]

SECRETS = {
    "ACOUSTID_DATABASE_PASSWORD": "db-pw-4711",
    "ACOUSTID_REDIS_PASSWORD": "redis-pw-4711",
    "ACOUSTID_WEBSITE_SECRET": "web-secret-4711",
    "ACOUSTID_SENTRY_DSN": "https://key4711@sentry.example/1",
    "ACOUSTID_NATS_SERVERS": "nats://bob:nats-pw-4711@127.0.0.1:4222",
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in list(os.environ):
        if var.startswith("ACOUSTID_"):
            monkeypatch.delenv(var)
    return monkeypatch


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `acoustid-stack ARGV` (main exits only on errors)."""
    try:
        main(argv)
        code = 0
    except SystemExit as exit_info:
        code = int(exit_info.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_config_check_masks_secrets_and_names_sources(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], write_config: WriteConfig
) -> None:
    for var, value in SECRETS.items():
        clean_env.setenv(var, value)
    path = write_config("[redis]\nhost = redis.internal\n")
    code, out, _ = run(["--config", path, "config", "check"], capsys)
    assert code == 0
    assert "4711" not in out.replace("nats://bob:***@", "")
    assert "password = ***  # ACOUSTID_DATABASE_PASSWORD" in out
    assert "dsn = ***  # ACOUSTID_SENTRY_DSN" in out
    assert "servers = nats://bob:***@127.0.0.1:4222  # ACOUSTID_NATS_SERVERS" in out
    assert f"host = redis.internal  # {path} [redis]" in out
    assert "port = 6379  # default" in out
    assert f"# config file: {path}" in out


def test_config_check_json_lists_value_and_source_of_every_key(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("file-secret-4711\n")
    clean_env.setenv("ACOUSTID_CLUSTER_SECRET_FILE", str(secret))
    code, out, _ = run(["config", "check", "--format", "json"], capsys)
    assert code == 0
    assert "4711" not in out
    keys = json.loads(out)["keys"]
    assert keys["cluster.secret"] == {
        "value": "***",
        "source": f"{secret} via ACOUSTID_CLUSTER_SECRET_FILE",
    }
    assert keys["redis.sentinels"] == {"value": [], "source": "default"}


def test_config_check_fails_with_one_line_naming_key_and_source(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("ACOUSTID_DATABASE_FINGERPRINT_PORT", "abc")
    code, out, err = run(["config", "check"], capsys)
    assert code == 1
    assert out == ""
    assert err == (
        "error: database.fingerprint.port: 'abc' is not an integer "
        "(from ACOUSTID_DATABASE_FINGERPRINT_PORT)\n"
    )


def test_config_check_reads_acoustid_config(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], write_config: WriteConfig
) -> None:
    clean_env.setenv("ACOUSTID_CONFIG", write_config("[index]\nname = via-env\n"))
    code, out, _ = run(["config", "check"], capsys)
    assert code == 0
    assert "name = via-env" in out
