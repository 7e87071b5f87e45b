"""In-process checks of the page flow and settings (Starlette TestClient on the real app and
model): cookie attributes, cross-site form posts, security headers, upload errors shown on the
page, and the opt-in storage of patient identity. The real-server tests are in
test_server_api.py and test_browser.py."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import dicom_factory as factory
from server_fixtures import PASSWORD, bundle_dir, new_db
from thyrocad.server.analysis import Analyzer
from thyrocad.server.app import COOKIE, ServerSettings, create_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def analyzer():
    return Analyzer.from_bundle(bundle_dir())


def client_for(tmp_path, analyzer, **options) -> TestClient:
    db = new_db(tmp_path)
    settings = ServerSettings(model_dir=bundle_dir(), db_path=db, data_dir=db.parent, **options)
    return TestClient(create_app(settings, analyzer), base_url="http://127.0.0.1:8000")


def login(client: TestClient) -> None:
    r = client.post(
        "/login", data={"username": "alice", "password": PASSWORD}, follow_redirects=False
    )
    assert r.status_code == 303, r.text


def test_session_cookie_and_headers(tmp_path, analyzer):
    client = client_for(tmp_path, analyzer, secure_cookies=True)
    r = client.post(
        "/login", data={"username": "alice", "password": PASSWORD}, follow_redirects=False
    )
    cookie = r.headers["set-cookie"].lower()
    assert cookie.startswith(f"{COOKIE}=")
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" in cookie
    page = client.get("/login")
    assert page.headers["x-frame-options"] == "DENY"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"


def test_cross_site_form_posts_are_refused(tmp_path, analyzer):
    client = client_for(tmp_path, analyzer)
    login(client)
    evil = {"Origin": "https://evil.example"}
    r = client.post("/logout", headers=evil, follow_redirects=False)
    assert r.status_code == 403
    assert client.get("/history", follow_redirects=False).status_code == 200  # still logged in
    r = client.post("/logout", headers={"Origin": "http://127.0.0.1:8000"}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/history", follow_redirects=False).status_code == 303


def test_upload_errors_are_shown_on_the_page(tmp_path, analyzer):
    client = client_for(tmp_path, analyzer)
    login(client)
    r = client.post("/upload", files={"file": ("notes.txt", b"just some text" * 50)})
    assert r.status_code == 415
    assert 'id="error"' in r.text and "neither DICOM" in r.text


def test_patient_identity_only_when_switched_on(tmp_path, analyzer):
    content = factory.dicom_bytes(
        factory.nm_dataset(frames=[factory.counts_image(128, 128, seed=s) for s in (3, 4)])
    )
    on = client_for(tmp_path / "on", analyzer, store_patient_ids=True)
    off = client_for(tmp_path / "off", analyzer)
    results = {}
    for name, client in (("on", on), ("off", off)):
        login(client)
        r = client.post("/api/v1/diagnoses", files={"file": ("s.dcm", content)})
        assert r.status_code == 201, r.text
        results[name] = r.json()["patient"]
    assert results["on"] == {"name": factory.SENTINEL_NAME, "id": factory.SENTINEL_ID}
    assert results["off"] is None
