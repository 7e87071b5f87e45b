"""End to end in a real browser: Debian's headless Chromium driven by Playwright against a real
`thyrocad serve` process. Screenshots go to tests/artifacts/browser/ (gitignored): the result
page of a borderline and of a clear case, with the patient's identity, at 1300 and 420 px."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from server_helpers import PASSWORD, ServerProcess, new_db
from thyrocad.diagnosis.reading import CALL_TEXT, reading

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


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module (a launch costs seconds); each test gets a context
    of its own, which shares no cookies, storage or cache with the others."""
    if not CHROMIUM.is_file():
        pytest.skip("Debian chromium is not installed (scripts/ci_services.sh installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
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
    assert CALL_TEXT[reading(expected).call] in verdict
    probability = float(page.inner_text("#probability"))
    assert probability == pytest.approx(expected.probability, abs=5e-4)  # shown with 3 decimals
    per_view = page.inner_text("#per-view")
    for view in expected.views:
        assert f"{view.probability:.3f}" in per_view and view.view in per_view
    wait_for_report(page)
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

    page.click("text=Worklist")
    page.wait_for_url(f"{server.url}/history")
    rows = page.locator("#history tr")
    assert rows.count() == 2  # header + our diagnosis
    assert f"{probability:.3f}" in rows.nth(1).inner_text()
    assert "reviewed" in rows.nth(1).inner_text() and "agree" in rows.nth(1).inner_text()
    shot(page, "03-history")

    page.click("#logout")
    page.wait_for_url(f"{server.url}/login")
    page.goto(f"{server.url}/history")
    assert page.url.endswith("/login")  # the session is gone
    shot(page, "04-logged-out")


def login(page, server: ServerProcess) -> None:
    page.goto(f"{server.url}/login")
    page.fill("#username", "alice")
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_url(f"{server.url}/")


def upload(page, path: Path) -> str:
    page.set_input_files("#file", str(path))
    page.click("#diagnose")
    page.wait_for_url("**/diagnoses/*", timeout=180_000)
    return page.url


def wait_for_report(page) -> None:
    """The result page shows the verdict first; it reloads itself once the report is made."""
    page.wait_for_selector("#heatmap", timeout=180_000)
    page.wait_for_load_state("load")  # every image loaded (or failed)
    assert page.locator("#report-pending").count() == 0


def layout_facts(page) -> dict:
    """What a narrow window must keep: no sideways scrolling, the header's controls inside."""
    return page.evaluate(
        """() => {
            const box = (s) => document.querySelector(s)?.getBoundingClientRect();
            const logout = box("#logout"), patient = box("#patient");
            return {
                overflow: document.documentElement.scrollWidth - window.innerWidth,
                logout_inside: logout && logout.left >= 0 && logout.right <= window.innerWidth,
                patient_inside: !patient || patient.right <= window.innerWidth,
                viewport_meta: !!document.querySelector('meta[name=viewport]'),
            };
        }"""
    )


@pytest.fixture
def banded_server(tmp_path, server_bundle, server_files, server_service):
    """A server on a copy of the bundle whose threshold sits 0.002 above the first study's
    probability, with a bundle band of +-0.005: the first study is borderline, the study
    farthest from the threshold is a clear call. Patient identities are stored."""
    probabilities = [server_service.diagnose([f]).diagnosis.probability for f in server_files]
    threshold = probabilities[0] + 0.002
    bundle = Path(shutil.copytree(server_bundle, tmp_path / "banded-bundle"))
    manifest = json.loads((bundle / "bundle.json").read_text())
    manifest["threshold"]["value"] = threshold
    manifest["threshold"]["indeterminate"] = [threshold - 0.005, threshold + 0.005]
    (bundle / "bundle.json").write_text(json.dumps(manifest))
    clear = max(range(len(server_files)), key=lambda i: abs(probabilities[i] - threshold))
    assert abs(probabilities[clear] - threshold) > 0.005, probabilities
    proc = ServerProcess(bundle, new_db(tmp_path), "--store-patient-ids")
    yield proc, server_files[0], server_files[clear]
    proc.stop()


def test_result_page_borderline_and_clear_at_1300_and_420_px(page, banded_server):
    server, borderline, clear = banded_server
    page.set_default_timeout(30_000)
    page.set_viewport_size({"width": 1300, "height": 1000})
    login(page, server)
    urls = {"borderline": upload(page, borderline)}
    wait_for_report(page)  # no reload while the layout is measured
    page.goto(f"{server.url}/")
    urls["clear"] = upload(page, clear)
    wait_for_report(page)
    for case, url in urls.items():
        for width in (1300, 420):
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(url)
            verdict = page.locator("#verdict")
            assert page.locator("#patient").is_visible() and page.locator("#logout").is_visible()
            assert "PHANTOM" in page.inner_text("#patient")  # the stored identity, on top
            facts = layout_facts(page)
            assert facts["overflow"] <= 0 and facts["logout_inside"] and facts["viewport_meta"]
            assert facts["patient_inside"], facts
            amber = page.locator("#indeterminate")
            if case == "borderline":
                assert "indeterminate" in verdict.get_attribute("class")
                assert amber.is_visible() and "needs a physician's read" in verdict.inner_text()
                color = verdict.evaluate("e => getComputedStyle(e).borderLeftColor")
                assert color == "rgb(243, 156, 18)"  # amber
                assert "from the model bundle" in page.inner_text("#uncertainty")
            else:
                assert "indeterminate" not in verdict.get_attribute("class")
                assert amber.count() == 0 and "needs a physician" not in verdict.inner_text()
            shot(page, f"result-{case}-{width}")
    page.goto(f"{server.url}/history")
    assert layout_facts(page)["overflow"] <= 0  # the worklist table scrolls in its own box
    shot(page, "worklist-420")


def test_clicking_a_view_sets_the_bed_and_reruns(page, server, server_files):
    page.set_default_timeout(30_000)
    login(page, server)
    parent = upload(page, server_files[2])
    wait_for_report(page)
    picker = page.locator("#bed-anterior img.bed-picker")
    picker.scroll_into_view_if_needed()
    box = picker.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.45)
    row = int(page.input_value("#bed-anterior input[name=row]"))
    col = int(page.input_value("#bed-anterior input[name=col]"))
    natural = picker.evaluate("img => [img.naturalHeight, img.naturalWidth]")
    assert abs(row - 0.45 * natural[0]) <= 2 and abs(col - 0.5 * natural[1]) <= 2
    assert page.locator("#bed-anterior .bed-mark").is_visible()
    page.click("#bed-anterior button[type=submit]")
    page.wait_for_url(lambda url: url != parent and "/diagnoses/" in url, timeout=180_000)
    text = page.inner_text("#bed-set-by-user")
    assert f"anterior at row {row}, column {col}" in text and "alice" in text
    assert "thyroid bed set by a user" in page.inner_text("#per-view")
    shot(page, "result-bed-set-by-user")
