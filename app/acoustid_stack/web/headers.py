"""Security headers on every answer of the website.

The pages need no script, frame, image or font, and their only style is the inline block of
base.html, so the policy allows exactly that; forms post only to this site, and no other site
may frame a page (clickjacking of the API key form).
"""

from __future__ import annotations

from typing import Final

SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
