"""Checks of rendered web pages shared by the website and api tests: headless Chromium
(overflow at a width, screenshots) and an accessibility check of the HTML and CSS."""

from web_support.accessibility import accessibility_problems, contrast
from web_support.browser import Browser, Rendering, chromium

__all__ = ["Browser", "Rendering", "accessibility_problems", "chromium", "contrast"]
