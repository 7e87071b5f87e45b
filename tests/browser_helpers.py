"""A headless Debian Chromium page driven by Playwright, for tests that look at a static page
(the preprocessing index, reports) at a given window width; screenshots go to
tests/artifacts/browser/ (gitignored). The launch flags are the web-app tests' own."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from test_browser import ARTIFACTS, CHROMIUM, FLAGS


@contextlib.contextmanager
def chromium_page(profile: Path, width: int, height: int = 900) -> Iterator:
    """A page in a fresh Chromium profile under `profile`; skips without Chromium/Playwright."""
    if not CHROMIUM.is_file():
        pytest.skip("Debian chromium is not installed (scripts/ci_services.sh installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            user_data_dir=str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": width, "height": height},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def horizontal_overflow(page) -> int:
    """By how many CSS pixels the page is wider than the window (0: it fits)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def screenshot(page, name: str) -> Path:
    """A full-page screenshot into tests/artifacts/browser/NAME.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
