from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy.engine

from acoustid_stack.config import ConfigError, load_settings
from acoustid_stack.errors import UserError

WriteConfig = Callable[[str], str]


def test_defaults_match_the_contract_without_file_or_env() -> None:
    settings = load_settings(environ={})
    fingerprint = settings.database.fingerprint
    assert (fingerprint.name, fingerprint.host, fingerprint.port, fingerprint.user) == (
        "acoustid_fingerprint",
        "127.0.0.1",
        5432,
        "acoustid",
    )
    assert fingerprint.password is None
    assert settings.redis.sentinels == []
    assert settings.redis.key_prefix == ""
    assert settings.nats.servers == ["nats://127.0.0.1:4222"]
    assert settings.nats.stream == "SUBMISSIONS"
    assert settings.index.shards == ["http://127.0.0.1:6081"]
    assert settings.index.timeout == 1.0
    rate = settings.rate_limit
    assert (rate.global_rate, rate.ip_rate, rate.application_rate) == (100.0, 4.0, 10.0)
    assert (settings.api.port, settings.web.port) == (5000, 5001)
    assert settings.cluster.role == "master"


def test_env_beats_file_beats_default(write_config: WriteConfig) -> None:
    path = write_config("[database]\nhost = file-host\nport = 6000\n")
    settings = load_settings(path, environ={"ACOUSTID_DATABASE_PORT": "7000"})
    assert settings.database.app.host == "file-host"
    assert settings.database.app.port == 7000
    assert settings.database.app.user == "acoustid"
    assert settings.effective["database.host"].source == f"{path} [database]"
    assert settings.effective["database.port"].source == "ACOUSTID_DATABASE_PORT"
    assert settings.effective["database.user"].source == "default"


def test_secret_file_beats_env_and_file_and_loses_its_trailing_newline(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    secret = tmp_path / "redis-password"
    secret.write_text("from-file\n")
    path = write_config("[redis]\npassword = in-ini\n")
    environ = {"ACOUSTID_REDIS_PASSWORD": "in-env", "ACOUSTID_REDIS_PASSWORD_FILE": str(secret)}
    settings = load_settings(path, environ=environ)
    assert settings.redis.password == "from-file"
    assert settings.effective["redis.password"].source == (
        f"{secret} via ACOUSTID_REDIS_PASSWORD_FILE"
    )


def test_ini_secret_file_is_relative_to_the_config_file(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    (tmp_path / "pg.secret").write_text("s3cret\n")
    path = write_config("[database]\npassword_file = pg.secret\n")
    settings = load_settings(path, environ={"ACOUSTID_DATABASE_PASSWORD": "env"})
    assert settings.database.ingest.password == "s3cret"


def test_config_path_comes_from_acoustid_config_when_not_given(write_config: WriteConfig) -> None:
    path = write_config("[index]\nname = other\n")
    assert load_settings(environ={"ACOUSTID_CONFIG": path}).index.name == "other"


def test_per_database_sections_override_the_shared_one(write_config: WriteConfig) -> None:
    path = write_config(
        "[database]\nhost = shared\npassword = pw\n[database.fingerprint]\nhost = fp-host\n"
    )
    settings = load_settings(path, environ={"ACOUSTID_DATABASE_INGEST_NAME": "ingest_x"})
    assert settings.database.app.host == "shared"
    assert settings.database.fingerprint.host == "fp-host"
    assert settings.database.fingerprint.password == "pw"
    assert settings.database.ingest.name == "ingest_x"


def test_read_only_replica_falls_back_to_its_read_write_database(
    write_config: WriteConfig,
) -> None:
    path = write_config("[database.fingerprint]\nhost = primary\nname = fp\n")
    settings = load_settings(path, environ={"ACOUSTID_DATABASE_FINGERPRINT_RO_HOST": "replica"})
    databases = settings.database
    assert databases.app_ro == databases.app
    assert databases.get("ingest", readonly=True) == databases.ingest
    replica = databases.get("fingerprint", readonly=True)
    assert (replica.host, replica.name) == ("replica", "fp")
    assert databases.get("fingerprint").host == "primary"
    assert settings.effective["database.fingerprint.ro.name"].source.startswith(
        "inherited from database.fingerprint.name"
    )


def test_conninfo_and_sqlalchemy_url_quote_the_password() -> None:
    settings = load_settings(environ={"ACOUSTID_DATABASE_PASSWORD": "p@ss w'rd"})
    app = settings.database.app
    assert "password='p@ss w\\'rd'" in app.conninfo()
    assert app.conninfo("postgres").startswith("dbname=postgres ")
    url = sqlalchemy.engine.make_url(app.sqlalchemy_url())
    assert (url.drivername, url.password, url.host, url.database) == (
        "postgresql+psycopg",
        "p@ss w'rd",
        "127.0.0.1",
        "acoustid_app",
    )


def test_sentinels_parse_as_host_port_pairs_including_ipv6() -> None:
    environ = {"ACOUSTID_REDIS_SENTINELS": "10.0.0.1:26379, sentinel-b:26380,[::1]:26381"}
    redis = load_settings(environ=environ).redis
    assert redis.sentinels == [("10.0.0.1", 26379), ("sentinel-b", 26380), ("::1", 26381)]
    assert redis.sentinel_master == "acoustid"


def test_redis_url_carries_quoted_password_and_db() -> None:
    environ = {"ACOUSTID_REDIS_PASSWORD": "a/b:c", "ACOUSTID_REDIS_DB": "3"}
    assert load_settings(environ=environ).redis.url() == "redis://:a%2Fb%3Ac@127.0.0.1:6379/3"


def test_shard_and_server_lists_are_comma_separated(write_config: WriteConfig) -> None:
    path = write_config(
        "[index]\nshards = http://127.0.0.1:6081, http://127.0.0.1:6082\n"
        "[nats]\nservers = nats://a:4222,nats://b:4222\n"
    )
    settings = load_settings(path, environ={})
    assert settings.index.shards == ["http://127.0.0.1:6081", "http://127.0.0.1:6082"]
    assert settings.nats.servers == ["nats://a:4222", "nats://b:4222"]


def test_rate_limit_overrides_per_ip_and_application(write_config: WriteConfig) -> None:
    path = write_config("[rate_limit]\nglobal = 500\nip.192.0.2.10 = 20\napplication.42 = 50\n")
    rate = load_settings(path, environ={"ACOUSTID_RATE_LIMIT_APPLICATION_7": "1.5"}).rate_limit
    assert rate.global_rate == 500.0
    assert rate.for_ip("192.0.2.10") == 20.0
    assert rate.for_ip("192.0.2.11") == 4.0
    assert rate.for_application(42) == 50.0
    assert rate.for_application(7) == 1.5
    assert rate.for_application(8) is None


def test_logger_levels_come_from_file_and_env(write_config: WriteConfig) -> None:
    path = write_config("[logging]\nlevel = warning\nlevel.acoustid_stack.api = DEBUG\n")
    environ = {"ACOUSTID_LOGGING_LEVEL_SQLALCHEMY__ENGINE": "info"}
    logging_settings = load_settings(path, environ=environ).logging
    assert logging_settings.level == "WARNING"
    assert logging_settings.levels == {"acoustid_stack.api": "DEBUG", "sqlalchemy.engine": "INFO"}


@pytest.mark.parametrize("text", ["true", "YES", "on", "1"])
def test_booleans_accept_the_usual_spellings_of_true(text: str) -> None:
    assert load_settings(environ={"ACOUSTID_WEBSITE_DEBUG": text}).website.debug is True


def test_settings_are_immutable() -> None:
    settings = load_settings(environ={})
    with pytest.raises(AttributeError):
        settings.redis.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.logging.levels["x"] = "DEBUG"  # type: ignore[index]


def test_a_slave_without_master_url_fails_naming_the_variable_to_set() -> None:
    with pytest.raises(
        ConfigError, match=r"cluster.base_master_url is missing.*CLUSTER_BASE_MASTER"
    ):
        load_settings(environ={"ACOUSTID_CLUSTER_ROLE": "slave"})


def test_config_error_is_a_user_error() -> None:
    assert issubclass(ConfigError, UserError)


def test_masked_replaces_secrets_and_url_passwords_but_keeps_unset_ones_visible() -> None:
    environ = {
        "ACOUSTID_DATABASE_APP_PASSWORD": "pw",
        "ACOUSTID_NATS_SERVERS": "nats://u:pw@127.0.0.1:4222",
    }
    masked = load_settings(environ=environ).masked()
    assert masked["database.app"]["password"] == "***"
    assert masked["database.app.ro"]["password"] == "***"
    assert masked["database"]["password"] is None
    assert masked["nats"]["servers"] == ["nats://u:***@127.0.0.1:4222"]
    assert masked["rate_limit"]["global"] == 100.0
