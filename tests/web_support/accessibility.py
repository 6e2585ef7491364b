"""An accessibility check of a rendered page, in Python on its HTML and its own CSS.

It checks what a page of this project can get wrong and a parser can see: the document's
language and title, one h1 and no skipped heading level, a label for every form field, an
alt text for every image and a name for every SVG, text for every link and button, and the
WCAG contrast of every colour the page's stylesheet and SVGs set against the page background
(4.5:1 for text, 3:1 for graphics). Colours other than hex and a few names are reported as
unchecked problems rather than passed.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

TEXT_CONTRAST = 4.5
GRAPHIC_CONTRAST = 3.0
_NAMED = {"white": "#ffffff", "black": "#000000"}
_FIELDS = {"input", "select", "textarea"}
_NO_LABEL_INPUTS = {"hidden", "submit", "button", "reset", "image"}
_VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "wbr",
}


def relative_luminance(colour: str) -> float:
    """WCAG 2 relative luminance of `#rgb`, `#rrggbb` or a known colour name."""
    value = _NAMED.get(colour.lower(), colour.lower())
    if not re.fullmatch(r"#([0-9a-f]{3}|[0-9a-f]{6})", value):
        raise ValueError(f"cannot check the contrast of colour {colour!r}")
    digits = value[1:]
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    channels = [int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    lighter, darker = sorted(
        (relative_luminance(foreground), relative_luminance(background)), reverse=True
    )
    return (lighter + 0.05) / (darker + 0.05)


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lang = ""
        self.title = ""
        self.headings: list[int] = []
        self.fields: list[tuple[str, dict[str, str]]] = []
        self.label_for: set[str] = set()
        self.ids: set[str] = set()
        self.problems: list[str] = []
        self.styles: list[str] = []
        self.svg_colours: list[tuple[str, str, str]] = []  # (element, attribute, colour)
        self.svg_names: list[tuple[str, str, str]] = []  # (id, role, aria-labelledby)
        self._open: list[tuple[str, dict[str, str]]] = []
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = self._inspect(tag, {k: v or "" for k, v in attrs})
        if tag not in _VOID:
            self._open.append((tag, a))
            self._text.append("")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._inspect(tag, {k: v or "" for k, v in attrs})

    def _inspect(self, tag: str, a: dict[str, str]) -> dict[str, str]:
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "html":
            self.lang = a.get("lang", "")
        elif re.fullmatch(r"h[1-6]", tag):
            self.headings.append(int(tag[1]))
        elif tag == "label" and a.get("for"):
            self.label_for.add(a["for"])
        elif tag in _FIELDS and a.get("type", "text") not in _NO_LABEL_INPUTS:
            if not any(name == "label" for name, _ in self._open):
                self.fields.append((tag, a))
        elif tag == "img" and "alt" not in a:
            self.problems.append(f"image {a.get('src', '?')} has no alt text")
        elif tag == "svg" and a.get("aria-hidden") != "true":
            self.svg_names.append(
                (a.get("id", "?"), a.get("role", ""), a.get("aria-labelledby", ""))
            )
        for attribute in ("fill", "stroke"):
            if a.get(attribute, "none") != "none":
                self.svg_colours.append((tag, attribute, a[attribute]))
        return a

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            name, a = self._open.pop()
            text = self._text.pop().strip()
            if self._text:
                self._text[-1] += " " + text
            if name == "title" and not self.title and not any(n == "svg" for n, _ in self._open):
                self.title = text
            if name in {"a", "button"} and not (text or a.get("aria-label")):
                self.problems.append(f"{name} {a.get('href', '')} has no text")
            if name == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._open and self._open[-1][0] == "style":
            self.styles.append(data)
        if self._text:
            self._text[-1] += data


def _css_rules(css: str) -> list[tuple[str, dict[str, str]]]:
    rules = []
    for selector, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        declarations = {}
        for declaration in body.split(";"):
            if ":" in declaration:
                name, value = declaration.split(":", 1)
                declarations[name.strip().lower()] = value.strip()
        rules.append((selector.strip(), declarations))
    return rules


def _colour_problems(page: _Page) -> list[str]:
    rules = _css_rules("\n".join(page.styles))
    background = "#ffffff"
    for selector, declarations in rules:
        if "body" in [s.strip() for s in selector.split(",")]:
            background = declarations.get(
                "background-color", declarations.get("background", background)
            )
    problems = []
    checks = [
        (
            f"CSS {selector}",
            d["color"],
            d.get("background-color", d.get("background", background)),
            TEXT_CONTRAST,
        )
        for selector, d in rules
        if "color" in d
    ]
    checks += [
        (
            f"svg {element} {attribute}",
            colour,
            background,
            TEXT_CONTRAST if element == "text" else GRAPHIC_CONTRAST,
        )
        for element, attribute, colour in page.svg_colours
    ]
    for what, foreground, behind, needed in checks:
        try:
            ratio = contrast(foreground, behind)
        except ValueError as exc:
            problems.append(f"{what}: {exc}")
            continue
        if ratio < needed:
            problems.append(f"{what}: {foreground} on {behind} is {ratio:.2f}:1, below {needed}:1")
    return problems


def accessibility_problems(html: str) -> list[str]:
    """What keeps `html` from being read by everyone; empty when the page passes."""
    page = _Page()
    page.feed(html)
    page.close()
    problems = list(page.problems)
    if not page.lang:
        problems.append("<html> has no lang attribute")
    if not page.title:
        problems.append("the page has no <title>")
    if page.headings.count(1) != 1 or (page.headings and page.headings[0] != 1):
        problems.append(f"the page needs one h1, first; its headings: {page.headings}")
    for before, after in zip(page.headings, page.headings[1:], strict=False):
        if after > before + 1:
            problems.append(f"heading level skipped: h{before} then h{after}")
    for tag, attrs in page.fields:
        if not (attrs.get("id") in page.label_for or attrs.get("aria-label")):
            problems.append(f"{tag} {attrs.get('name', '?')} has no label")
    for svg, role, labelled_by in page.svg_names:
        if role != "img" or not labelled_by or not set(labelled_by.split()) <= page.ids:
            problems.append(f"svg {svg} has no role=img with a name (aria-labelledby)")
    problems += _colour_problems(page)
    return problems
