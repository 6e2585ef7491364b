#!/usr/bin/env python3
"""Container health probe: exit 0 when every URL answers 2xx within the timeout, else 1.

The images carry no curl or wget; this standard-library probe is what HEALTHCHECK and
the compose healthchecks run (`acoustid-healthcheck URL [URL ...]`).
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 4.0


def healthy(url: str) -> bool:
    """True when `url` answers a 2xx status; a refused connection or an error status is False."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError):
        return False


def main(urls: list[str]) -> int:
    if not urls:
        print("usage: acoustid-healthcheck URL [URL ...]", file=sys.stderr)
        return 2
    failed = [url for url in urls if not healthy(url)]
    for url in failed:
        print(f"unhealthy: {url}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
