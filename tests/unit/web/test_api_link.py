"""Where the website's "API documentation" link points."""

from __future__ import annotations

import pytest

from acoustid_stack.config import load_settings
from acoustid_stack.web.app import api_url


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "http://127.0.0.1:5000"),
        ({"ACOUSTID_API_HOST": "10.0.0.7", "ACOUSTID_API_PORT": "8000"}, "http://10.0.0.7:8000"),
        ({"ACOUSTID_API_HOST": "0.0.0.0"}, "http://127.0.0.1:5000"),
        ({"ACOUSTID_API_HOST": "::"}, "http://[::1]:5000"),
        ({"ACOUSTID_WEB_API_URL": "https://api.example.org/"}, "https://api.example.org"),
    ],
)
def test_the_api_link_is_the_configured_url_else_where_the_api_listens(
    environ: dict[str, str], expected: str
) -> None:
    assert api_url(load_settings(path=None, environ=environ)) == expected
