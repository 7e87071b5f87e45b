"""End to end in a real browser: Debian's headless Chromium driven by Playwright against a real
`thyrocad serve` process. Screenshots go to tests/artifacts/browser/ (gitignored)."""

from __future__ import annotations

from pathlib import Path

import pytest

from server_helpers import PASSWORD, ServerProcess, new_db
from thyrocad.diagnosis.service import VERDICT_TEXT

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts" / "browser"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def page(tmp_path):
    if not CHROMIUM.is_file():
        pytest.skip("Debian chromium is not installed (scripts/ci_services.sh installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            user_data_dir=str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 1000},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


@pytest.fixture
def server(tmp_path, server_bundle):
    proc = ServerProcess(server_bundle, new_db(tmp_path))
    yield proc
    proc.stop()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_login_upload_history_logout(page, server, server_files, server_service):
    page.set_default_timeout(30_000)
    page.goto(f"{server.url}/")
    assert page.url.endswith("/login")  # redirected: not logged in

    page.fill("#username", "alice")
    page.fill("#password", "wrong password")
    page.click("#login")
    assert "Wrong user name or password" in page.inner_text("#error")

    page.fill("#username", "alice")
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_url(f"{server.url}/")
    assert "Model card" in page.inner_text("#model-card")
    assert "synthetic" in page.inner_text("#model-card")
    shot(page, "01-upload-page")

    page.set_input_files("#file", str(server_files[0]))
    page.click("#diagnose")
    page.wait_for_url("**/diagnoses/*", timeout=180_000)  # inference on a busy CPU
    expected = server_service.diagnose([server_files[0]]).diagnosis  # the server's model
    verdict = page.inner_text("#verdict")
    assert VERDICT_TEXT[expected.verdict] in verdict
    probability = float(page.inner_text("#probability"))
    assert probability == pytest.approx(expected.probability, abs=5e-4)  # shown with 3 decimals
    per_view = page.inner_text("#per-view")
    for view in expected.views:
        assert f"{view.probability:.3f}" in per_view and view.view in per_view
    for image in ("#views", "#stages", "#heatmap"):
        loaded = page.eval_on_selector(image, "img => img.complete && img.naturalWidth > 0")
        assert loaded, f"{image} did not load"
    shot(page, "02-diagnosis")
    diagnosis_url = page.url

    page.check("input[name=agree][value=yes]")
    page.fill("input[name=comment]", "looks right")
    page.click("#submit-review")
    page.wait_for_url(diagnosis_url)
    assert "Agreed by alice" in page.inner_text("#review-status")

    page.click("text=History")
    page.wait_for_url(f"{server.url}/history")
    rows = page.locator("#history tr")
    assert rows.count() == 2  # header + our diagnosis
    assert f"{probability:.3f}" in rows.nth(1).inner_text()
    assert "agree" in rows.nth(1).inner_text()
    shot(page, "03-history")

    page.click("#logout")
    page.wait_for_url(f"{server.url}/login")
    page.goto(f"{server.url}/history")
    assert page.url.endswith("/login")  # the session is gone
    shot(page, "04-logged-out")
