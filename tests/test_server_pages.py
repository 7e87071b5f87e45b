"""In-process checks of the pages, roles and records (Starlette TestClient on the real app and
model): cookie attributes, cross-site requests, security headers, upload errors on the page,
patient identity (stored or not, on every page), the indeterminate band, roles, append-only
reviews, the audit log, the worklist, re-running with a bed set by a user, two PNG exports as
one study and patient values from real PACS data. The real-server tests are in
test_server_api.py, test_server_resilience.py and test_browser.py."""

from __future__ import annotations

import csv
import io
import re
import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import dicom_factory as factory
from server_helpers import PASSWORD, new_db
from test_whole_body import WB_IMAGE_TYPE, WB_SPACING, sweep
from thyrocad.diagnosis.service import DiagnosisService
from thyrocad.io.read import read_study
from thyrocad.server.app import COOKIE, ServerSettings, create_app
from thyrocad.study import View

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
BASE = "http://127.0.0.1:8000"
ROLES = {"vera": "viewer", "root": "admin"}
WAIT = {"wait_report": "true"}  # answer once the report (figures, PDF, DICOM) is made


@pytest.fixture
def client_for(server_bundle, server_service):
    """`client_for(folder, service=..., **settings)`: a TestClient of the app (users alice and
    bob: physicians, vera: viewer, root: admin) on the session's service."""

    def make(tmp_path, service=server_service, **options) -> TestClient:
        db = new_db(tmp_path, ("alice", "bob", "vera", "root"), **ROLES)
        settings = ServerSettings(
            model_dir=server_bundle, db_path=db, data_dir=db.parent, min_free_bytes=0, **options
        )
        app = create_app(settings, service)
        assert app.state.service is service  # the bundle is not loaded again
        return TestClient(app, base_url=BASE)

    return make


def login(client: TestClient, user: str = "alice") -> None:
    r = client.post("/login", data={"username": user, "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 303, r.text


def upload(client: TestClient, content: bytes, wait_report: bool = True, **kwargs):
    """POST one study; by default answered once its report (figures, PDF, DICOM) is made."""
    params = WAIT if wait_report else {}
    return client.post(
        "/api/v1/diagnoses", files={"file": ("s.dcm", content)}, params=params, **kwargs
    )


def sentinel_study(seed: int = 3, **fields: bytes) -> bytes:
    ds = factory.nm_dataset(
        frames=[factory.counts_image(128, 128, seed=s) for s in (seed, seed + 1)]
    )
    ds.StudyDate, ds.AccessionNumber, ds.PatientSex = "20260311", "ACC-0042", "F"
    return factory.dicom_bytes(ds)


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
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page.text


def test_cross_site_form_posts_are_refused(tmp_path, client_for):
    client = client_for(tmp_path)
    login(client)
    for origin in ("https://evil.example", "https://127.0.0.1:8000", "http://127.0.0.1:8001",
                   "null"):  # fmt: skip
        r = client.post("/logout", headers={"Origin": origin}, follow_redirects=False)
        assert r.status_code == 403, origin  # scheme, host and port must all match
    assert client.get("/history", follow_redirects=False).status_code == 200  # still logged in
    r = client.post("/logout", headers={"Origin": BASE}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/history", follow_redirects=False).status_code == 303


def test_cookie_authenticated_api_refuses_cross_origin_posts(tmp_path, client_for):
    """SameSite=Strict is not the only guard: a cookie-authenticated API call that changes
    something must come from this site (bearer-token calls need no Origin)."""
    client = client_for(tmp_path)
    login(client)
    content = sentinel_study()
    evil = upload(client, content, headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403
    sneaky = upload(client, content, headers={"Sec-Fetch-Site": "cross-site"})
    assert sneaky.status_code == 403
    assert client.get("/api/v1/diagnoses").json() == []  # nothing was diagnosed
    assert upload(client, content, headers={"Origin": BASE}).status_code == 201


def test_token_delete_with_a_cookie_ends_that_session(tmp_path, client_for):
    client = client_for(tmp_path)
    login(client)
    assert client.get("/api/v1/model").status_code == 200
    r = client.delete("/api/v1/token", headers={"Origin": BASE})
    assert r.status_code == 204
    assert client.get("/api/v1/model").status_code == 401  # the cookie no longer works


def test_upload_errors_are_shown_on_the_page(tmp_path, client_for):
    client = client_for(tmp_path)
    login(client)
    r = client.post("/upload", files={"file": ("notes.txt", b"just some text" * 50)})
    assert r.status_code == 415
    assert 'id="error"' in r.text and "neither DICOM" in r.text


def test_patient_identity_only_when_switched_on(tmp_path, client_for):
    content = sentinel_study()
    on = client_for(tmp_path / "on", store_patient_ids=True)
    off = client_for(tmp_path / "off")
    results = {}
    for name, client in (("on", on), ("off", off)):
        login(client)
        r = upload(client, content)
        assert r.status_code == 201, r.text
        results[name] = r.json()
    assert results["on"]["patient"] == {
        "name": factory.SENTINEL_NAME, "id": factory.SENTINEL_ID, "birth_date": "19700101",
        "sex": "F", "study_date": "20260311", "accession": "ACC-0042",
    }  # fmt: skip
    assert results["off"]["patient"] is None
    page_on = on.get(f"/diagnoses/{results['on']['id']}").text
    header = re.search(r'<section id="patient".*?</section>', page_on, re.S).group(0)
    for shown in (factory.SENTINEL_NAME, factory.SENTINEL_ID, "1970-01-01", "2026-03-11",
                  "ACC-0042"):  # fmt: skip
        assert shown in header
    assert factory.SENTINEL_ID in on.get("/history").text  # the worklist names the patient
    page_off = off.get(f"/diagnoses/{results['off']['id']}").text
    assert "Patient identity not stored" in page_off and factory.SENTINEL_ID not in page_off
    assert "not stored" in off.get("/history").text


def test_roles(tmp_path, client_for):
    client = client_for(tmp_path)
    login(client, "vera")  # a viewer reads, nothing more
    assert client.get("/history").status_code == 200
    assert upload(client, sentinel_study()).status_code == 403
    assert client.get("/admin").status_code == 403
    login(client, "alice")
    d = upload(client, sentinel_study()).json()
    login(client, "vera")
    assert client.get(f"/diagnoses/{d['id']}").status_code == 200  # department-wide reading
    r = client.put(f"/api/v1/diagnoses/{d['id']}/review", json={"agree": True},
                   headers={"Origin": BASE})  # fmt: skip
    assert r.status_code == 403
    assert client.get("/api/v1/audit").status_code == 403
    login(client, "root")
    assert client.get("/admin").status_code == 200


def test_reviews_are_appended_by_each_physician(tmp_path, client_for):
    client = client_for(tmp_path)
    login(client, "alice")
    d = upload(client, sentinel_study()).json()
    assert d["status"] == "new"
    for user, agree in (("alice", "yes"), ("bob", "no")):
        login(client, user)
        r = client.post(f"/diagnoses/{d['id']}/review", data={"agree": agree, "comment": user},
                        follow_redirects=False)  # fmt: skip
        assert r.status_code == 303
    record = client.get(f"/api/v1/diagnoses/{d['id']}").json()
    assert record["status"] == "reviewed"
    assert [(h["user"], h["agree"]) for h in record["reviews"]] == [("alice", True), ("bob", False)]
    assert record["reviews"][1]["changed"] == "agree -> disagree; comment changed"
    page = client.get(f"/diagnoses/{d['id']}").text
    assert "Disagreed by bob" in page and "Agreed by alice" in page  # the history is shown


def test_audit_log_and_user_administration(tmp_path, client_for):
    client = client_for(tmp_path, store_patient_ids=True)
    login(client, "alice")
    d = upload(client, sentinel_study()).json()
    client.get(f"/diagnoses/{d['id']}")
    client.post("/login", data={"username": "alice", "password": "wrong password!"})
    login(client, "root")
    changes = [{"action": "add", "username": "nina", "password": PASSWORD, "role": "viewer"},
               {"action": "role", "username": "nina", "role": "physician"},
               {"action": "disable", "username": "bob"},
               {"action": "add", "username": "weak", "password": "aaaaaaaaaa"}]  # fmt: skip
    for form in changes:
        assert client.post("/admin/users", data=form).status_code == 200
    assert "repeated character" in client.post("/admin/users", data=changes[-1]).text
    assert (
        client.post("/admin/users", data={"action": "disable", "username": "root"}).status_code
        == 200
    )
    r = client.post("/login", data={"username": "bob", "password": PASSWORD})
    assert r.status_code == 401  # disabled
    login(client, "root")
    export = client.get("/admin/audit.csv")
    assert export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    actions = [(r["username"], r["action"], r["target"]) for r in rows]
    for expected in [("alice", "login", ""), ("alice", "upload", d["id"]),
                     ("alice", "view", d["id"]), ("alice", "login_failed", ""),
                     ("root", "user_add", "nina"), ("root", "user_role", "nina"),
                     ("root", "user_disable", "bob")]:  # fmt: skip
        assert expected in actions, expected
    assert ("root", "user_disable", "root") not in actions  # nobody disables themselves
    assert ("root", "user_add", "weak") not in actions
    assert factory.SENTINEL_NAME not in export.text and factory.SENTINEL_ID not in export.text
    assert PASSWORD not in export.text
    users = {u.name: u for u in client.app.state.store.list_users()}
    assert users["nina"].role == "physician" and users["bob"].disabled


@pytest.fixture
def berlin_time(monkeypatch):
    """The process's local time zone set to Europe/Berlin for one test."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_worklist_filters_and_search(tmp_path, client_for, berlin_time):
    client = client_for(tmp_path, store_patient_ids=True)
    login(client)
    first = upload(client, sentinel_study(seed=3)).json()
    second = upload(client, sentinel_study(seed=9)).json()
    client.put(f"/api/v1/diagnoses/{first['id']}/review", json={"agree": True},
               headers={"Origin": BASE})  # fmt: skip

    def rows(query: str) -> list[str]:
        return re.findall(r'href="/diagnoses/(\w+)"', client.get(f"/history?{query}").text)

    assert rows("status=new") == [second["id"]]
    assert rows("status=reviewed") == [first["id"]]
    assert set(rows(f"q={factory.SENTINEL_ID}")) == {first["id"], second["id"]}
    assert rows("q=nobody-at-all") == []
    assert set(rows(f"call={first['call']}")) >= {first["id"]}
    api = client.get("/api/v1/diagnoses", params={"status": "new"}).json()
    assert [d["id"] for d in api] == [second["id"]]
    page = client.get("/history").text
    shown = re.findall(r"<time[^>]*>([^<]*)</time>", page)[0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d CES?T", shown), shown  # local, not ISO
    assert "non_residual" not in re.sub(r"<[^>]*>", "", page).replace("row-non_residual", "")


def test_borderline_probability_is_indeterminate(tmp_path, client_for, server_bundle, server_files):
    """A threshold 0.002 above the study's probability: the call is "indeterminate" (amber),
    not a confident negative; far from it, the call is the verdict."""
    probability = _probability(server_bundle, server_files[0])
    borderline = DiagnosisService.from_bundle(server_bundle, threshold=probability + 0.002)
    client = client_for(tmp_path, service=borderline)
    login(client)
    d = upload(client, server_files[0].read_bytes()).json()
    assert d["verdict"] == "non_residual" and d["call"] == "indeterminate"
    reading = d["result"]["reading"]
    assert reading["band_source"] == "fallback"
    assert reading["band"] == pytest.approx([probability - 0.048, probability + 0.052], abs=1e-6)
    page = client.get(f"/diagnoses/{d['id']}").text
    assert 'class="card verdict indeterminate"' in page and "needs a physician" in page
    assert "fallback: threshold ± 0.05" in page
    clear = DiagnosisService.from_bundle(server_bundle, threshold=min(1.0, probability + 0.3))
    client = client_for(tmp_path / "clear", service=clear)
    login(client)
    d = upload(client, server_files[0].read_bytes()).json()
    assert d["call"] == "non_residual"
    assert 'class="card verdict non_residual"' in client.get(f"/diagnoses/{d['id']}").text


def _probability(bundle, path) -> float:
    return DiagnosisService.from_bundle(bundle).diagnose([path]).diagnosis.probability


def test_a_bed_set_by_the_physician_reruns_the_diagnosis(tmp_path, client_for, server_files):
    client = client_for(tmp_path)
    login(client)
    parent = upload(client, server_files[1].read_bytes()).json()
    assert {"bed_anterior", "bed_posterior"} <= set(parent["result"]["files"])
    page = client.get(f"/diagnoses/{parent['id']}").text
    assert 'class="bed-picker"' in page and "/static/bed.js" in page
    crop = parent["result"]["views"][0]["crop_box"]
    bed = ((crop[0] + crop[2]) // 2 + 12, (crop[1] + crop[3]) // 2 - 9)  # off the locator's
    r = client.post(f"/diagnoses/{parent['id']}/bed",
                    data={"view": "anterior", "row": bed[0], "col": bed[1]},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    child = client.get(f"/api/v1{r.headers['location']}", params=WAIT).json()
    assert child["parent_id"] == parent["id"] and child["input_sha256"] == parent["input_sha256"]
    views = {v["view"]: v for v in child["result"]["views"]}
    assert "bed_set_by_user" in views["anterior"]["flags"]
    assert "bed_set_by_user" not in views["posterior"]["flags"]
    assert child["result"]["beds_set_by_user"] == {"by": "alice", "anterior": list(map(float, bed))}
    assert "sr" in child["result"]["files"]  # the DICOM results are made again
    assert "thyroid bed set by a user" in client.get(r.headers["location"]).text
    assert child["id"] in client.get(f"/diagnoses/{parent['id']}").text  # linked from the parent
    outside = client.post(
        f"/api/v1/diagnoses/{parent['id']}/rerun",
        json={"beds": {"anterior": [9999, 5]}},
        headers={"Origin": BASE},
    )
    assert outside.status_code == 422 and "outside" in outside.json()["detail"]
    kept = sorted(p.name for p in (tmp_path / "server" / "results" / parent["id"]).iterdir())
    assert "input.npz" in kept and not any(n.startswith("upload-") for n in kept)


def test_a_bed_clicked_on_a_whole_body_neck_field_is_kept_in_the_files_pixels(tmp_path, client_for):
    client = client_for(tmp_path)
    login(client)
    ds = factory.nm_dataset(
        [sweep(0)], [factory.view_code(View.ANTERIOR)], pixel_spacing=(WB_SPACING, WB_SPACING),
        image_type=WB_IMAGE_TYPE,
    )  # fmt: skip
    parent = upload(client, factory.write_dicom(ds, tmp_path / "wb.dcm").read_bytes()).json()
    row0, col0, row1, col1 = parent["result"]["views"][0]["field_box"]
    assert row0 > 0  # the page shows the neck field, not the sweep
    bed = ((row1 - row0) // 2 + 6, (col1 - col0) // 2 - 5)  # clicked: the neck field's pixels
    r = client.post(f"/diagnoses/{parent['id']}/bed",
                    data={"view": "anterior", "row": bed[0], "col": bed[1]},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text
    child = client.get(f"/api/v1{r.headers['location']}", params=WAIT).json()
    in_file = [float(bed[0] + row0), float(bed[1] + col0)]
    assert child["result"]["beds_set_by_user"]["anterior"] == in_file
    assert child["result"]["views"][0]["bed_rc"] == in_file
    assert child["result"]["views"][0]["field_box"] == [row0, col0, row1, col1]


def test_two_png_exports_are_one_study(tmp_path, client_for, server_files):
    study = read_study(server_files[2])
    files = {}
    for view in (View.ANTERIOR, View.POSTERIOR):
        buffer = io.BytesIO()
        Image.fromarray(np.clip(study.image(view), 0, 255).astype(np.uint8)).save(buffer, "PNG")
        files[view.value] = (f"{view.value}.png", buffer.getvalue())
    client = client_for(tmp_path)
    login(client)
    r = client.post("/api/v1/diagnoses", files=files, headers={"Origin": BASE}, params=WAIT)
    assert r.status_code == 201, r.text
    d = r.json()
    assert [v["view"] for v in d["result"]["views"]] == ["anterior", "posterior"]
    assert d["input_kind"] == "PNG"
    assert "PNG/JPEG input: no DICOM output written" in d["result"]["notes"]


def test_patient_fields_from_real_pacs_data_never_fail_an_upload(tmp_path, client_for, caplog):
    """A birth date with dashes and a suffix-less sex code that highdicom refuses used to end
    in a 500 after full inference, with a result folder and no database row."""
    ds = factory.nm_dataset(frames=[factory.counts_image(128, 128, seed=s) for s in (5, 6)])
    ds.PatientBirthDate, ds.PatientSex = "1970-01-01", "X"  # stored as given, as a PACS would
    client = client_for(tmp_path)
    login(client)
    r = upload(client, factory.dicom_bytes(ds))
    assert r.status_code == 201, r.text
    d = r.json()
    notes = " ".join(d["result"]["notes"])
    assert "PatientBirthDate reformatted" in notes and "PatientSex is not M, F or O" in notes
    assert "1970-01-01" not in r.text
    assert "sr" in d["result"]["files"]
    results = tmp_path / "server" / "results"
    assert sorted(p.name for p in results.iterdir()) == [d["id"]]


class _HeldReports(DiagnosisService):
    """The session's service whose reports wait for `release` (or fail with `fail`)."""

    def __init__(self, service: DiagnosisService, fail: bool = False) -> None:
        super().__init__(service.predictor)
        self.release, self.fail = threading.Event(), fail

    def render(self, outcome, outputs):
        if not outputs.explain:  # the verdict's half: nothing to render
            return super().render(outcome, outputs)
        assert self.release.wait(60)
        if self.fail:
            raise RuntimeError("figure rendering broke")
        return super().render(outcome, outputs)


def test_the_verdict_comes_before_the_report(tmp_path, client_for, server_service, server_files):
    """The upload is answered with the verdict while the report is still being made; the
    page says so and waits for it; `wait_report` answers once it is ready, with its files."""
    held = _HeldReports(server_service)
    client = client_for(tmp_path, service=held)
    login(client)
    d = upload(client, server_files[1].read_bytes(), wait_report=False).json()
    assert d["result"]["report"] == "pending" and d["result"]["files"] == {}
    assert d["verdict"] in ("residual", "non_residual") and d["result"]["views"]
    page = client.get(f"/diagnoses/{d['id']}").text
    assert 'id="report-pending"' in page and "/static/report.js" in page
    assert 'id="call"' in page and 'id="heatmap"' not in page and "/files/" not in page
    still = client.get(f"/api/v1/diagnoses/{d['id']}").json()
    assert still["result"]["report"] == "pending"
    held.release.set()
    done = client.get(f"/api/v1/diagnoses/{d['id']}?wait_report=true").json()
    assert done["result"]["report"] == "ready"
    assert {"overlay", "report_pdf", "sr", "sc_anterior"} <= set(done["result"]["files"])
    assert done["probability"] == d["probability"] and done["verdict"] == d["verdict"]
    pdf = client.get(f"/api/v1/diagnoses/{d['id']}/files/{done['result']['files']['report_pdf']}")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    page = client.get(f"/diagnoses/{d['id']}").text
    assert 'id="report-pending"' not in page and 'id="heatmap"' in page


def test_a_failed_report_keeps_the_verdict_and_says_so(tmp_path, client_for, server_service,
                                                       server_files):  # fmt: skip
    held = _HeldReports(server_service, fail=True)
    held.release.set()
    client = client_for(tmp_path, service=held)
    login(client)
    d = client.post(
        "/api/v1/diagnoses?wait_report=true",
        files={"file": ("s.dcm", server_files[0].read_bytes())},
    ).json()
    assert d["result"]["report"] == "failed" and d["result"]["files"] == {}
    assert any("could not be made (RuntimeError)" in n for n in d["result"]["notes"])
    page = client.get(f"/diagnoses/{d['id']}").text
    assert 'id="call"' in page and "/files/" not in page and "could not be made" in page


def test_a_report_interrupted_by_a_stop_is_marked_failed_at_start(
    tmp_path, client_for, server_bundle, server_service, server_files
):
    held = _HeldReports(server_service)  # never released while "running": the stop
    client = client_for(tmp_path, service=held)
    login(client)
    d = upload(client, server_files[0].read_bytes(), wait_report=False).json()
    assert d["result"]["report"] == "pending"
    db = tmp_path / "server" / "thyrocad.db"  # a new start on the same database and folder
    settings = ServerSettings(model_dir=server_bundle, db_path=db, data_dir=db.parent)
    restarted = TestClient(create_app(settings, server_service), base_url=BASE)
    login(restarted)
    after = restarted.get(f"/api/v1/diagnoses/{d['id']}").json()
    assert after["result"]["report"] == "failed" and after["verdict"] == d["verdict"]
    assert any("server stopped before" in n for n in after["result"]["notes"])
    held.fail = True  # let the first app's thread end
    held.release.set()
