"""The accessibility check the page tests rely on finds what it claims to find."""

from __future__ import annotations

import pytest

from web_support import accessibility_problems, contrast

GOOD = """<!doctype html><html lang="en"><head><title>Ok</title>
<style>body { color: #1a1a1a; background: #ffffff; } .note { color: #595959; }</style></head>
<body><main><h1>Title</h1><h2>Part</h2><form><label for="n">Name</label><input id="n" name="n">
<button type="submit">Send</button></form><img src="x.png" alt="A cat">
<svg role="img" aria-labelledby="t"><title id="t">Chart</title>
<rect fill="#1f5f99"/><text fill="#1a1a1a">1</text></svg><a href="/">Home</a>
</main></body></html>"""


def test_a_page_doing_everything_right_has_no_problems() -> None:
    assert accessibility_problems(GOOD) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (('lang="en"', ""), "no lang attribute"),
        (("<title>Ok</title>", ""), "no <title>"),
        (("<h2>Part</h2>", "<h3>Part</h3>"), "heading level skipped: h1 then h3"),
        (("<h1>Title</h1>", "<h2>Title</h2>"), "needs one h1"),
        (('<label for="n">Name</label>', ""), "input n has no label"),
        ((' alt="A cat"', ""), "image x.png has no alt text"),
        (('role="img" ', ""), "svg ? has no role=img"),
        ((">Home</a>", "></a>"), "a / has no text"),
        (("color: #595959", "color: #999999"), "CSS .note: #999999 on #ffffff is 2.85:1"),
        (('<rect fill="#1f5f99"/>', '<rect fill="#bbbbbb"/>'), "svg rect fill: #bbbbbb"),
        (("color: #595959", "color: rgb(1, 2, 3)"), "cannot check the contrast"),
    ],
)
def test_each_kind_of_problem_is_found(change: tuple[str, str], problem: str) -> None:
    old, new = change
    assert old in GOOD
    found = accessibility_problems(GOOD.replace(old, new))

    assert any(problem in line for line in found), found


def test_contrast_follows_wcag() -> None:
    assert contrast("#000", "#fff") == pytest.approx(21.0)
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)
