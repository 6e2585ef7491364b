"""End-to-end: real processes (index, api under uvicorn) on this session's resources."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from acoustid_stack.config import Settings, load_settings
from acoustid_stack.db import migrate
from api_support import Catalog, Keys, api_environ, api_server, index_server


@pytest.fixture(scope="module")
def stack(
    test_environ: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Settings, Catalog, Keys]]:
    """(api base URL, settings, catalog writer, keys) of a running index + api."""
    work = tmp_path_factory.mktemp("e2e")
    with index_server(work / "index") as index_url:
        environ = api_environ(test_environ, index_url, work / "shutdown")
        settings = load_settings(path=None, environ=environ)
        for _ in migrate.upgrade(settings.database):
            pass
        with api_server(work / "api", environ) as (url, _):
            yield url, settings, Catalog(settings, index_url), Keys(settings)
