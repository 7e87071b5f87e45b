"""The server's SQLite store, password hashing, sessions and the login limiter (no model)."""

from __future__ import annotations

import datetime as dt
import sqlite3
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from thyrocad.errors import AuthError, StoreError
from thyrocad.server import auth
from thyrocad.server.store import DiagnosisRecord, Store, utc_now

PASSWORD = "a long enough password"


def record(user: str = "alice", probability: float = 0.5) -> DiagnosisRecord:
    return DiagnosisRecord(
        id=uuid.uuid4().hex, created_utc=utc_now(), username=user, model_version="m-1",
        input_sha256="0" * 64, input_kind="DICOM", verdict="residual", probability=probability,
        result={"probability": probability}, patient=None, review_agree=None,
        review_comment=None, review_user=None, review_utc=None,
    )  # fmt: skip


def test_concurrent_writers_from_many_threads(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    records = [record(probability=i / 400) for i in range(100)]

    def write(r: DiagnosisRecord) -> None:
        Store(store.path).add_diagnosis(r)  # each thread its own connections
        store.set_review(r.id, "bob", True, "ok")

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(write, records))
    assert store.count_diagnoses() == 100
    assert store.integrity_ok()
    stored = {r.id: r for r in store.diagnoses(limit=1000)}
    assert all(stored[r.id].probability == r.probability for r in records)
    assert all(stored[r.id].review_agree is True for r in records)


def test_a_failed_transaction_leaves_nothing(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    r = record()
    store.add_diagnosis(r)
    with pytest.raises(sqlite3.IntegrityError):
        store.add_diagnosis(r)  # same primary key
    assert store.count_diagnoses() == 1


def test_reopen_and_online_backup(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    records = [record() for _ in range(3)]
    for r in records:
        store.add_diagnosis(r)
    ids = [r.id for r in records]
    again = Store(tmp_path / "db.sqlite")
    assert {r.id for r in again.diagnoses()} == set(ids)
    copy = Store(store.backup(tmp_path / "backup.sqlite"))
    assert {r.id for r in copy.diagnoses()} == set(ids) and copy.integrity_ok()


def test_unwritable_database_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="Cannot open the database"):
        Store(tmp_path / "file" / "db.sqlite")


def test_passwords_are_argon2id_and_verified(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    auth.add_user(store, "alice", PASSWORD)
    stored = store.password_hash("alice")
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert auth.authenticate(store, "alice", PASSWORD)
    assert not auth.authenticate(store, "alice", PASSWORD + "x")
    assert not auth.authenticate(store, "nobody", PASSWORD)
    with pytest.raises(StoreError, match="already exists"):
        auth.add_user(store, "alice", PASSWORD)
    for bad_name in ("", "a b", "x" * 65, "robert'); DROP TABLE users;--"):
        with pytest.raises(AuthError):
            auth.add_user(store, bad_name, PASSWORD)
    with pytest.raises(AuthError, match="10 to"):
        auth.add_user(store, "bob", "short")


def test_sessions_store_only_digests_and_expire(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    auth.add_user(store, "alice", PASSWORD)
    token = auth.new_session(store, "alice", "bearer")
    assert store.session_user(token, "bearer") == "alice"
    assert store.session_user(token, "cookie") is None  # kinds do not mix
    assert token.encode() not in (tmp_path / "db.sqlite").read_bytes()
    store.add_session("old", "alice", "cookie", dt.timedelta(seconds=-1))
    assert store.session_user("old", "cookie") is None
    store.remove_user("alice")
    assert store.session_user(token, "bearer") is None  # sessions end with the user


def test_login_limiter_counts_per_client_and_per_user():
    limiter = auth.LoginLimiter(per_user=3, per_client=5, window_s=60)
    for _ in range(3):
        assert limiter.retry_after("10.0.0.1", "alice") == 0
        limiter.failed("10.0.0.1", "alice")
    assert 0 < limiter.retry_after("10.0.0.1", "alice") <= 60
    assert limiter.retry_after("10.0.0.2", "alice") > 0  # the user is locked from anywhere
    assert limiter.retry_after("10.0.0.1", "bob") == 0  # the client is not, yet
    for _ in range(2):
        limiter.failed("10.0.0.1", "bob")
    assert limiter.retry_after("10.0.0.1", "carol") > 0  # now it is, for any user
    assert limiter.retry_after("10.0.0.2", "bob") == 0
    expired = auth.LoginLimiter(per_user=1, window_s=0.0)
    expired.failed("c", "u")
    assert expired.retry_after("c", "u") == 0
