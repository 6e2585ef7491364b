"""Every invalid configuration fails with one message naming the key and where it came from."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from acoustid_stack.config import ConfigError, load_settings

WriteConfig = Callable[[str], str]


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        (
            "ACOUSTID_DATABASE_FINGERPRINT_PORT",
            "abc",
            "database.fingerprint.port: 'abc' is not an integer",
        ),
        ("ACOUSTID_DATABASE_PORT", "70000", "database.port: '70000' is not in the range 1..65535"),
        (
            "ACOUSTID_SENTRY_TRACES_SAMPLE_RATE",
            "1.5",
            "sentry.traces_sample_rate: '1.5' is not in the range",
        ),
        ("ACOUSTID_INDEX_TIMEOUT", "nan", "index.timeout: 'nan' is not a finite number"),
        ("ACOUSTID_WEBSITE_DEBUG", "maybe", "website.debug: 'maybe' is not a boolean"),
        ("ACOUSTID_CLUSTER_ROLE", "primary", "cluster.role: 'primary' is not one of master, slave"),
        (
            "ACOUSTID_INDEX_SHARDS",
            "http://a:1,,http://b:2",
            "index.shards: 'http://a:1,,http://b:2' has an empty item",
        ),
        (
            "ACOUSTID_INDEX_SHARDS",
            "127.0.0.1:6081",
            "index.shards: '127.0.0.1:6081' is not a http/https URL",
        ),
        (
            "ACOUSTID_NATS_SERVERS",
            "nats://a:99999",
            "nats.servers: 'nats://a:99999' is not a valid URL",
        ),
        (
            "ACOUSTID_REDIS_SENTINELS",
            "a:1,b",
            "redis.sentinels: 'a:1,b' has 'b', which is not host:port",
        ),
        ("ACOUSTID_LOGGING_LEVEL", "loud", "logging.level: 'loud' is not one of DEBUG"),
        ("ACOUSTID_LOGGING_LEVEL_URLLIB3", "loud", "logging.level.urllib3: 'loud' is not one of"),
        (
            "ACOUSTID_RATE_LIMIT_APPLICATION_x",
            "5",
            "rate_limit.application.x: 'x' is not an integer",
        ),
        (
            "ACOUSTID_NATS_CREDS_FILE",
            "/nonexistent/x.creds",
            "nats.creds_file: '/nonexistent/x.creds' is not a readable file",
        ),
        ("ACOUSTID_API_PORT", " ", "api.port: value is empty"),
    ],
)
def test_bad_env_value_names_key_and_variable(var: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(environ={var: value})
    assert str(error.value).startswith(message)
    assert f"(from {var})" in str(error.value)


def test_bad_file_value_names_key_file_and_section(write_config: WriteConfig) -> None:
    path = write_config("[database.ingest.ro]\npool_size = lots\n")
    with pytest.raises(ConfigError) as error:
        load_settings(path, environ={})
    assert str(error.value) == (
        f"database.ingest.ro.pool_size: 'lots' is not an integer (from {path} [database.ingest.ro])"
    )


def test_bad_secret_is_never_echoed(write_config: WriteConfig) -> None:
    path = write_config("[sentry]\ndsn = not-a-url-but-secret\n")
    with pytest.raises(ConfigError) as error:
        load_settings(path, environ={})
    assert "not-a-url-but-secret" not in str(error.value)
    assert str(error.value).startswith("sentry.dsn: the secret value is not a http/https URL")


def test_unknown_key_in_known_section_is_an_error_with_a_suggestion(
    write_config: WriteConfig,
) -> None:
    path = write_config("[redis]\nsentinel_mater = x\n")
    with pytest.raises(
        ConfigError, match=r"redis.sentinel_mater: unknown key \(from .*\[redis\]\)"
    ) as error:
        load_settings(path, environ={})
    assert "did you mean sentinel_master?" in str(error.value)


def test_unknown_section_is_an_error_suggesting_the_new_spelling(write_config: WriteConfig) -> None:
    path = write_config("[database:app]\nhost = x\n")
    with pytest.raises(
        ConfigError, match=r"\[database:app\] in .* is not a known section"
    ) as error:
        load_settings(path, environ={})
    assert "did you mean database.app?" in str(error.value)


def test_unknown_variable_of_a_known_section_is_an_error() -> None:
    with pytest.raises(ConfigError, match="ACOUSTID_DATABASE_HOTS is not a configuration variable"):
        load_settings(environ={"ACOUSTID_DATABASE_HOTS": "x"})


def test_variables_outside_config_sections_are_ignored() -> None:
    environ = {"ACOUSTID_TEST_POSTGRES_URL": "postgresql://x", "ACOUSTID_CONFIG": ""}
    assert load_settings(environ=environ).redis.port == 6379


def test_per_ip_limit_has_no_env_form() -> None:
    with pytest.raises(
        ConfigError, match=r"ACOUSTID_RATE_LIMIT_IP_1_2_3_4: .* has no environment form"
    ):
        load_settings(environ={"ACOUSTID_RATE_LIMIT_IP_1_2_3_4": "5"})


def test_bad_ip_in_rate_limit_key_names_the_file(write_config: WriteConfig) -> None:
    path = write_config("[rate_limit]\nip.example.org = 5\n")
    with pytest.raises(ConfigError, match=r"rate_limit.ip.example.org: 'example.org' is not an IP"):
        load_settings(path, environ={})


def test_missing_secret_file_names_key_path_and_variable(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError) as error:
        load_settings(environ={"ACOUSTID_WEBSITE_SECRET_FILE": str(missing)})
    assert str(error.value) == (
        f"website.secret: cannot read secret file {missing}: No such file or directory "
        "(from ACOUSTID_WEBSITE_SECRET_FILE)"
    )


def test_unreadable_secret_file_is_a_clear_error(write_config: WriteConfig, tmp_path: Path) -> None:
    # A directory is unreadable as a file even for root, who ignores permission bits.
    (tmp_path / "secrets.d").mkdir()
    path = write_config("[cluster]\nsecret_file = secrets.d\n")
    with pytest.raises(
        ConfigError, match=r"cluster.secret: cannot read secret file .*secrets.d: Is a dir"
    ):
        load_settings(path, environ={})


def test_empty_secret_file_is_an_error(tmp_path: Path) -> None:
    secret = tmp_path / "empty"
    secret.write_text("\n")
    with pytest.raises(ConfigError, match=r"redis.password: secret file .* is empty"):
        load_settings(environ={"ACOUSTID_REDIS_PASSWORD_FILE": str(secret)})


def test_file_suffix_on_a_non_secret_key_is_unknown(write_config: WriteConfig) -> None:
    path = write_config("[database]\nhost_file = /etc/hostname\n")
    with pytest.raises(ConfigError, match=r"database\.host_file: unknown key"):
        load_settings(path, environ={})


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config file .*missing.conf: No such file"):
        load_settings(str(tmp_path / "missing.conf"), environ={})


def test_malformed_ini_is_a_clear_error(write_config: WriteConfig) -> None:
    path = write_config("host = before any section\n")
    with pytest.raises(ConfigError, match=r"config file .* is not valid INI"):
        load_settings(path, environ={})


def test_default_section_does_not_leak_into_others(write_config: WriteConfig) -> None:
    path = write_config("[DEFAULT]\nhost = x\n")
    with pytest.raises(ConfigError, match=r"\[DEFAULT\] .* is not a known section"):
        load_settings(path, environ={})
