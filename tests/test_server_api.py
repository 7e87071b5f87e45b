"""The JSON API against a real `thyrocad serve` process (Uvicorn on a free loopback port)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import subprocess
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from click.testing import Result
from PIL import Image
from pydicom import dcmread
from pydicom.uid import ComprehensiveSRStorage, SecondaryCaptureImageStorage
from typer.testing import CliRunner

import dicom_factory as factory
from server_helpers import PASSWORD, THYROCAD, ServerProcess, new_db, tmp_uploads
from thyrocad.cli.main import app

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
MAX_UPLOAD_MB = 4


@pytest.fixture(scope="module")
def server(tmp_path_factory, server_bundle):
    db = new_db(tmp_path_factory.mktemp("api"), users=("alice", "bob", "carol"))
    proc = ServerProcess(server_bundle, db, "--max-upload-mb", str(MAX_UPLOAD_MB))
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def api(server):
    with server.client() as client:
        yield client


def upload(api: httpx.Client, content: bytes, name: str = "study.dcm") -> httpx.Response:
    """POST one study, answered once its report (figures, PDF, DICOM) is made."""
    return api.post(
        "/api/v1/diagnoses", files={"file": (name, content)}, params={"wait_report": "true"}
    )


def assert_healthy(server: ServerProcess) -> None:
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"
    assert tmp_uploads(server.db) == []


def test_health_needs_no_login(server):
    r = httpx.get(f"{server.url}/health")
    assert r.status_code == 200
    assert r.json()["model_version"].startswith("squeezenet1_1-")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/model"),
        ("GET", "/api/v1/diagnoses"),
        ("GET", "/api/v1/diagnoses/x"),
        ("POST", "/api/v1/diagnoses"),
        ("PUT", "/api/v1/diagnoses/x/review"),
        ("GET", "/api/v1/diagnoses/x/files/report.png"),
        ("GET", "/api/openapi.json"),
        ("DELETE", "/api/v1/token"),
        ("GET", "/api/v1/audit"),
        ("POST", "/api/v1/diagnoses/x/rerun"),
    ],
)
def test_api_needs_a_token(server, method, path):
    r = httpx.request(method, f"{server.url}{path}")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    bad = httpx.request(method, f"{server.url}{path}", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401


@pytest.mark.parametrize("path", ["/", "/history", "/diagnoses/x"])
def test_pages_redirect_to_login(server, path):
    r = httpx.get(f"{server.url}{path}")
    assert r.status_code == 303 and r.headers["location"] == "/login"


def test_login_is_rate_limited(server):
    url = f"{server.url}/api/v1/token"
    codes = [
        httpx.post(url, json={"username": "bob", "password": f"wrong{i}"}).status_code
        for i in range(6)
    ]
    assert codes == [401] * 5 + [429]
    # Even the right password is refused while the user is locked out.
    locked = httpx.post(url, json={"username": "bob", "password": PASSWORD})
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    # Other users from the same address still get in.
    assert server.token("alice")


def test_login_limiter_holds_under_concurrent_guesses(server):
    """Eight wrong passwords at once used to beat the limit (each checked before any was
    counted); now at most five are tried, the rest refused with 429."""
    url = f"{server.url}/api/v1/token"
    body = {"username": "carol", "password": "not the password"}
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = sorted(pool.map(lambda _: httpx.post(url, json=body, timeout=60).status_code,
                                range(8)))  # fmt: skip
    assert codes == [401] * 5 + [429] * 3


def test_origin_check_compares_scheme_host_and_port(server):
    """Behind nginx on a non-443 port (`proxy_set_header Host $http_host`): a form post from
    the site itself passes; one whose scheme, host or port differs is refused."""
    url = f"{server.url}/login"
    form = {"username": "alice", "password": PASSWORD}
    proxied = {"Host": "thyrocad.example:8443", "X-Forwarded-Proto": "https"}

    def post(origin: str, **headers: str) -> int:
        sent = {**proxied, **headers, "Origin": origin}
        return httpx.post(url, data=form, headers=sent, follow_redirects=False).status_code

    assert post("https://thyrocad.example:8443") == 303
    assert post("https://thyrocad.example") == 403  # what `$host` (no port) would give
    assert post("http://thyrocad.example:8443") == 403
    assert post("https://thyrocad.example:8443", Host="thyrocad.example") == 403
    assert post("https://evil.example:8443") == 403


def test_result_files_are_private(server, api, server_files):
    """`thyrocad serve` runs with umask 0077: what it writes is 0600, its folders 0700."""
    d = upload(api, server_files[3].read_bytes()).json()
    folder = server.db.parent / "results" / d["id"]
    assert folder.stat().st_mode & 0o777 == 0o700
    modes = {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()}
    assert "input.npz" in modes and set(modes.values()) == {0o600}, modes
    assert (server.db.parent / "results").stat().st_mode & 0o777 == 0o700


def test_token_revocation(server):
    token = server.token()
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{server.url}/api/v1/model", headers=headers).status_code == 200
    assert httpx.delete(f"{server.url}/api/v1/token", headers=headers).status_code == 204
    assert httpx.get(f"{server.url}/api/v1/model", headers=headers).status_code == 401


def test_model_card_states_synthetic_training(api, server_bundle):
    card = api.get("/api/v1/model").json()
    manifest = json.loads((server_bundle / "bundle.json").read_text())
    assert card["model"] == "squeezenet1_1"
    assert card["synthetic"] is True
    assert any("synthetic" in limit for limit in card["limits"])
    assert f"{manifest['threshold']['value']:.3f}" in card["operating_point"]


def test_dicom_diagnosis_round_trip(server, api, server_bundle, server_files, server_service):
    source = server_files[0]
    content = source.read_bytes()
    r = upload(api, content, name="../../etc/passwd")
    assert r.status_code == 201, r.text
    d = r.json()
    manifest = json.loads((server_bundle / "bundle.json").read_text())
    assert d["input_sha256"] == hashlib.sha256(content).hexdigest()
    assert d["input_kind"] == "DICOM"
    assert d["user"] == "alice"
    assert d["patient"] is None
    result = d["result"]
    expected = server_service.diagnose([source]).diagnosis  # the same model in this process
    assert d["probability"] == pytest.approx(expected.probability, abs=1e-6)
    assert result["verdict"] == d["verdict"] == expected.verdict
    assert result["operating_point"]["threshold"] == pytest.approx(manifest["threshold"]["value"])
    assert d["verdict"] == ("residual" if d["probability"] >= result["operating_point"]["threshold"]
                            else "non_residual")  # fmt: skip
    views = {v["view"]: v["probability"] for v in result["views"]}
    assert set(views) == {"anterior", "posterior"}
    assert d["probability"] == pytest.approx(np.mean(list(views.values())))
    assert api.get(f"/api/v1/diagnoses/{d['id']}").json() == d

    files = result["files"]
    for key in ("views", "stages", "overlay", "report_png"):
        png = api.get(f"/api/v1/diagnoses/{d['id']}/files/{files[key]}")
        assert png.status_code == 200
        assert Image.open(io.BytesIO(png.content)).size[0] > 100
    pdf = api.get(f"/api/v1/diagnoses/{d['id']}/files/{files['report_pdf']}")
    assert pdf.content.startswith(b"%PDF")
    src = dcmread(source)
    sr = dcmread(io.BytesIO(api.get(f"/api/v1/diagnoses/{d['id']}/files/{files['sr']}").content))
    sc_name = files["sc_anterior"]
    sc = dcmread(io.BytesIO(api.get(f"/api/v1/diagnoses/{d['id']}/files/{sc_name}").content))
    assert {k for k in files if k.startswith("sc_")} == {"sc_anterior", "sc_posterior"}
    assert sr.SOPClassUID == ComprehensiveSRStorage
    assert sc.SOPClassUID == SecondaryCaptureImageStorage
    assert sr.StudyInstanceUID == sc.StudyInstanceUID == src.StudyInstanceUID
    # A file name that is not one of the record's is refused, traversal included.
    assert api.get(f"/api/v1/diagnoses/{d['id']}/files/..%2Fthyrocad.db").status_code == 404
    assert_healthy(server)


def test_png_diagnosis(server, api, png_file):
    r = upload(api, png_file.read_bytes(), name="view.png")
    assert r.status_code == 201, r.text
    d = r.json()
    assert d["input_kind"] == "PNG"
    assert [v["view"] for v in d["result"]["views"]] == ["unknown"]
    assert "sr" not in d["result"]["files"]  # no DICOM source to reference
    assert not any(key.startswith("sc_") for key in d["result"]["files"])
    assert_healthy(server)


def test_review(api, server_files):
    d = upload(api, server_files[1].read_bytes()).json()
    r = api.put(f"/api/v1/diagnoses/{d['id']}/review", json={"agree": False, "comment": "FP"})
    assert r.status_code == 200
    review = api.get(f"/api/v1/diagnoses/{d['id']}").json()["review"]
    assert review["agree"] is False and review["comment"] == "FP" and review["user"] == "alice"
    missing = api.put("/api/v1/diagnoses/nope/review", json={"agree": True})
    assert missing.status_code == 404


def test_no_patient_identity_is_stored(server, api):
    ds = factory.nm_dataset(frames=[factory.counts_image(128, 128, seed=s) for s in (1, 2)])
    r = upload(api, factory.dicom_bytes(ds))
    assert r.status_code == 201, r.text
    for path in server.db.parent.rglob("*"):
        if path.is_file() and path.suffix != ".dcm":  # SR/SC copy the source's patient module
            data = path.read_bytes()
            assert factory.SENTINEL_NAME.encode() not in data, path
            assert factory.SENTINEL_ID.encode() not in data, path


def test_malformed_multipart(server, api):
    multipart = {"Content-Type": "multipart/form-data; boundary=XX"}
    nameless = b"--XX\r\nContent-Disposition: form-data\r\n\r\nabc\r\n--XX--\r\n"
    r = api.post("/api/v1/diagnoses", content=nameless, headers=multipart)
    assert r.status_code == 400 and "malformed multipart" in r.json()["detail"].lower()
    truncated = b'--XX\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc'
    r = api.post("/api/v1/diagnoses", content=truncated, headers=multipart)
    assert r.status_code == 422 and "'file'" in r.json()["detail"]
    no_boundary = api.post(
        "/api/v1/diagnoses", content=b"abc", headers={"Content-Type": "multipart/form-data"}
    )
    assert no_boundary.status_code == 400
    no_file = api.post("/api/v1/diagnoses", data={"other": "x"})
    assert no_file.status_code == 422 and "'file'" in no_file.json()["detail"]
    assert_healthy(server)


def test_oversized_body_is_cut_while_streaming(server, api):
    limit = MAX_UPLOAD_MB << 20

    def chunks():  # chunked transfer: no Content-Length to trust
        yield b'--B\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'
        for _ in range(limit // (1 << 20) + 2):
            yield b"\0" * (1 << 20)
        yield b"\r\n--B--\r\n"

    r = api.post(
        "/api/v1/diagnoses",
        content=chunks(),
        headers={"Content-Type": "multipart/form-data; boundary=B"},
    )
    assert r.status_code == 413 and str(limit) in r.json()["detail"]
    declared = upload(api, b"\0" * (limit + 10))
    assert declared.status_code == 413
    assert_healthy(server)


def test_non_dicom_payload(server, api):
    r = upload(api, b"MZ\x90\x00 this is an executable, not a scan" * 20, name="scan.dcm")
    assert r.status_code == 415 and "neither DICOM" in r.json()["detail"]
    assert_healthy(server)


@pytest.mark.parametrize(
    ("rows", "columns", "frames"),
    [(60000, 60000, 2), (2048, 2048, 200), (256, 256, 1000)],
)
def test_dicom_bomb(server, api, rows, columns, frames):
    ds = factory.nm_dataset()
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, columns, frames
    ds.DetectorVector = [1, 2] * (frames // 2)
    ds.EnergyWindowVector = [1] * frames
    r = upload(api, factory.dicom_bytes(ds))
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "unusable input" in detail and "/tmp" not in detail and "upload-" not in detail
    assert_healthy(server)


def test_not_a_planar_study(server, api):
    ds = factory.nm_dataset(modality="CT", sop_class="1.2.840.10008.5.1.4.1.1.2")
    r = upload(api, factory.dicom_bytes(ds))
    assert r.status_code == 422 and "unusable input" in r.json()["detail"]
    assert_healthy(server)


def test_concurrent_uploads_keep_the_store_consistent(server, api, server_files):
    before = len(api.get("/api/v1/diagnoses", params={"limit": 1000}).json())
    contents = [p.read_bytes() for p in server_files[:2]] * 2

    with ThreadPoolExecutor(max_workers=len(contents)) as pool:
        responses = list(pool.map(lambda c: upload(api, c), contents))
    assert [r.status_code for r in responses] == [201] * len(contents)
    listed = api.get("/api/v1/diagnoses", params={"limit": 1000}).json()
    assert len(listed) == before + len(contents)
    ids = {r.json()["id"] for r in responses}
    assert ids <= {d["id"] for d in listed}
    # Same input, same model: the same probability every time.
    by_hash: dict[str, set[float]] = {}
    for r in responses:
        by_hash.setdefault(r.json()["input_sha256"], set()).add(round(r.json()["probability"], 6))
    assert all(len(p) == 1 for p in by_hash.values())
    with sqlite3.connect(server.db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_openapi_lists_the_operations(api):
    spec = api.get("/api/openapi.json").json()
    assert {"/api/v1/diagnoses", "/api/v1/diagnoses/{diagnosis_id}", "/api/v1/token",
            "/api/v1/diagnoses/{diagnosis_id}/review", "/api/v1/model",
            "/api/v1/diagnoses/{diagnosis_id}/files/{name}"} <= set(spec["paths"])  # fmt: skip
    assert (
        "multipart/form-data"
        in spec["paths"]["/api/v1/diagnoses"]["post"]["requestBody"]["content"]
    )


@pytest.fixture
def kept_umask():
    """The umask of this process put back after the test (`thyrocad users` sets 0077)."""
    before = os.umask(0o022)
    os.umask(before)
    yield
    os.umask(before)


@pytest.mark.usefixtures("kept_umask")
def test_users_cli(tmp_path):
    """The first command is the real console script (a process of its own creates the database
    0600 in a 0700 folder); the others run in this process, as each launch costs seconds."""
    db = tmp_path / "private" / "u.db"
    first = subprocess.run([str(THYROCAD), "users", "add", "carol", "--password-stdin", "--db",
                            str(db)], input=PASSWORD + "\n", capture_output=True, text=True,
                           timeout=60)  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert db.stat().st_mode & 0o777 == 0o600 and db.parent.stat().st_mode & 0o777 == 0o700

    def cli(*args: str, stdin: str = "") -> Result:
        return CliRunner().invoke(app, ["users", *args, "--db", str(db)], input=stdin)

    def listed() -> dict[str, list[str]]:
        return {line.split()[0]: line.split()[1:3] for line in cli("list").stdout.splitlines()}

    short = cli("add", "dave", "--password-stdin", stdin="short\n")
    assert short.exit_code == 1 and "10 to" in short.stderr
    refused = cli("add", "dave", "--password-stdin", stdin=" " * 10 + "\n")
    assert refused.exit_code == 1 and "choose another" in refused.stderr  # and never echoed
    assert cli("add", "erin", "--role", "viewer", "--password-stdin",
               stdin=PASSWORD + "\n").exit_code == 0  # fmt: skip
    duplicate = cli("add", "carol", "--password-stdin", stdin=PASSWORD + "\n")
    assert duplicate.exit_code == 1 and "already exists" in duplicate.stderr
    assert cli("role", "carol", "admin").exit_code == 0
    assert cli("disable", "erin").exit_code == 0
    assert cli("passwd", "carol", "--password-stdin", stdin="another passphrase\n").exit_code == 0
    assert listed() == {"carol": ["admin", "active"], "erin": ["viewer", "disabled"]}
    assert cli("enable", "erin").exit_code == 0
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT password_hash FROM users").fetchone()[0]
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    with sqlite3.connect(db) as conn:
        actions = [r[0] for r in conn.execute("SELECT action FROM audit ORDER BY id")]
    assert actions == ["user_add", "user_add", "user_role", "user_disable", "user_password",
                       "user_enable"]  # fmt: skip
    assert cli("remove", "carol").exit_code == 0
    assert cli("remove", "carol").exit_code == 1


def test_restart_keeps_every_record(server, api):
    """Last in this module: stops the module's server and starts another on the same files."""
    before = api.get("/api/v1/diagnoses", params={"limit": 1000}).json()
    assert before and any(d["review"] for d in before)
    server.stop()
    again = ServerProcess(server.bundle, server.db, "--max-upload-mb", str(MAX_UPLOAD_MB))
    try:
        with again.client() as client:
            after = client.get("/api/v1/diagnoses", params={"limit": 1000}).json()
    finally:
        again.stop()
    assert after == before
