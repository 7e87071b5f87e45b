"""In-process checks of the page flow and settings (Starlette TestClient on the real app and
model): cookie attributes, cross-site form posts, security headers, upload errors shown on the
page, and the opt-in storage of patient identity. The real-server tests are in
test_server_api.py and test_browser.py."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import dicom_factory as factory
from server_helpers import PASSWORD, new_db
from thyrocad.server.app import COOKIE, ServerSettings, create_app

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


@pytest.fixture
def client_for(server_bundle, server_service):
    """`client_for(folder, **settings)`: a TestClient of the app on the session's service."""

    def make(tmp_path, **options) -> TestClient:
        db = new_db(tmp_path)
        settings = ServerSettings(
            model_dir=server_bundle, db_path=db, data_dir=db.parent, **options
        )
        app = create_app(settings, server_service)
        assert app.state.service is server_service  # the bundle is not loaded again
        return TestClient(app, base_url="http://127.0.0.1:8000")

    return make


def login(client: TestClient) -> None:
    r = client.post(
        "/login", data={"username": "alice", "password": PASSWORD}, follow_redirects=False
    )
    assert r.status_code == 303, r.text


def test_session_cookie_and_headers(tmp_path, client_for):
    client = client_for(tmp_path, secure_cookies=True)
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


def test_cross_site_form_posts_are_refused(tmp_path, client_for):
    client = client_for(tmp_path)
    login(client)
    evil = {"Origin": "https://evil.example"}
    r = client.post("/logout", headers=evil, follow_redirects=False)
    assert r.status_code == 403
    assert client.get("/history", follow_redirects=False).status_code == 200  # still logged in
    r = client.post("/logout", headers={"Origin": "http://127.0.0.1:8000"}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/history", follow_redirects=False).status_code == 303


def test_upload_errors_are_shown_on_the_page(tmp_path, client_for):
    client = client_for(tmp_path)
    login(client)
    r = client.post("/upload", files={"file": ("notes.txt", b"just some text" * 50)})
    assert r.status_code == 415
    assert 'id="error"' in r.text and "neither DICOM" in r.text


def test_patient_identity_only_when_switched_on(tmp_path, client_for):
    content = factory.dicom_bytes(
        factory.nm_dataset(frames=[factory.counts_image(128, 128, seed=s) for s in (3, 4)])
    )
    on = client_for(tmp_path / "on", store_patient_ids=True)
    off = client_for(tmp_path / "off")
    results = {}
    for name, client in (("on", on), ("off", off)):
        login(client)
        r = client.post("/api/v1/diagnoses", files={"file": ("s.dcm", content)})
        assert r.status_code == 201, r.text
        results[name] = r.json()["patient"]
    assert results["on"] == {"name": factory.SENTINEL_NAME, "id": factory.SENTINEL_ID}
    assert results["off"] is None
