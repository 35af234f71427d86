"""Headless Chromium for the browser tests: Debian's chromium driven by Playwright (no browser download)."""

import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest


def chromium_path() -> str:
    "The Chromium executable (`make test` installs Debian's chromium when it is missing)."
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: `make sysdeps` (part of `make test`) installs it")
    return path


@dataclass
class Errors:
    "JavaScript errors and console errors a page raised."

    page: list = field(default_factory=list)
    console: list = field(default_factory=list)

    def all(self) -> list:
        return self.page + self.console


@contextmanager
def browser_page(width: int = 1300, height: int = 900):
    "A fresh headless Chromium page and the `Errors` it collects; closed on exit."
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            errors = Errors()
            page.on("pageerror", lambda e: errors.page.append(str(e)))
            page.on("console", lambda m: errors.console.append(m.text) if m.type == "error" else None)
            yield page, errors
        finally:
            browser.close()


def plotly_figures(page) -> list[int]:
    "For each plotly figure on `page`, how many SVG shapes it drew (0 means an empty figure)."
    return page.eval_on_selector_all(
        ".js-plotly-plot", "els => els.map(e => e.querySelectorAll('.main-svg path, .main-svg text').length)"
    )
