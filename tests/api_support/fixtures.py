"""The api fixtures (migrated databases, a real index server, keys, the in-process app) as a
module, so that every suite testing the api (integration/api, security) shares one copy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from acoustid_stack.api.app import create_app
from acoustid_stack.api.metrics import ApiMetrics
from acoustid_stack.config import Settings, load_settings
from acoustid_stack.db import migrate
from api_support import Catalog, Keys, api_environ, index_server


@pytest.fixture(scope="session")
def migrated(test_settings: Settings) -> Settings:
    for _ in migrate.upgrade(test_settings.database):
        pass
    return test_settings


@pytest.fixture(scope="session")
def index_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with index_server(tmp_path_factory.mktemp("index")) as url:
        yield url


@pytest.fixture(scope="session")
def api_env(
    migrated: Settings,
    test_environ: dict[str, str],
    index_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    return api_environ(test_environ, index_url, tmp_path_factory.mktemp("api") / "shutdown")


@pytest.fixture(scope="session")
def api_settings(api_env: dict[str, str]) -> Settings:
    return load_settings(path=None, environ=api_env)


def make_client(settings: Settings, peer: str = "127.0.0.1") -> TestClient:
    """The real ASGI app in-process; its services behind it are the real ones. Requests come
    from `peer` (by default the trusted proxy of `api_environ`)."""
    return TestClient(
        create_app(settings, metrics=ApiMetrics()),
        raise_server_exceptions=False,
        client=(peer, 50000),
    )


@pytest.fixture(scope="module")
def client(api_settings: Settings) -> Iterator[TestClient]:
    with make_client(api_settings) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def keys(api_settings: Settings) -> Keys:
    return Keys(api_settings)


@pytest.fixture(scope="session")
def catalog(api_settings: Settings, index_url: str) -> Catalog:
    return Catalog(api_settings, index_url)
