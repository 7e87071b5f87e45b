"""The server's SQLite store, password hashing and policy, roles, sessions, append-only reviews
and audit log, the schema migration and the login limiter (no model)."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from thyrocad.errors import AuthError, StoreError
from thyrocad.server import auth
from thyrocad.server.records import AuditEvent, DiagnosisRecord, User, utc_now
from thyrocad.server.store import Store, Worklist

PASSWORD = "a long enough password"


def record(user: str = "alice", probability: float = 0.5, call: str = "residual",
           patient: dict | None = None) -> DiagnosisRecord:  # fmt: skip
    return DiagnosisRecord(
        id=uuid.uuid4().hex, created_utc=utc_now(), username=user, model_version="m-1",
        input_sha256="0" * 64, input_kind="DICOM", verdict="residual", call=call,
        probability=probability, result={"probability": probability}, patient=patient,
    )  # fmt: skip


def test_concurrent_writers_from_many_threads(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    records = [record(probability=i / 400) for i in range(100)]

    def write(r: DiagnosisRecord) -> None:
        Store(store.path).add_diagnosis(r)  # each thread its own connections
        store.add_review(r.id, "bob", True, "ok")

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(write, records))
    assert store.count_diagnoses() == 100
    assert store.integrity_ok()
    stored = {r.id: r for r in store.diagnoses(limit=1000)}
    assert all(stored[r.id].probability == r.probability for r in records)
    assert all(stored[r.id].reviews[0].agree is True for r in records)


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


@pytest.mark.parametrize(
    "password", ["aaaaaaaaaa", " " * 10, "\t \n" * 4, "Password123", "1234567890", "carol.test"]
)
def test_trivial_passwords_are_refused(tmp_path, password):
    store = Store(tmp_path / "db.sqlite")
    with pytest.raises(AuthError) as refused:
        auth.add_user(store, "carol.test", password)
    assert password not in str(refused.value)  # never echoed
    assert store.list_users() == []


def test_roles_disable_and_password_change(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    auth.add_user(store, "vera", PASSWORD, "viewer")
    with pytest.raises(AuthError, match="Unknown role"):
        auth.add_user(store, "root", PASSWORD, "root")
    token = auth.new_session(store, "vera", "cookie")
    assert store.session_user(token, "cookie") == User("vera", "viewer")
    assert not User("vera", "viewer").can("diagnose") and User("p", "physician").can("review")
    assert User("a", "admin").can("manage") and not User("p", "physician").can("manage")
    assert store.update_user("vera", role="physician")
    assert store.session_user(token, "cookie").role == "physician"
    assert store.update_user("vera", disabled=True)
    assert store.session_user(token, "cookie") is None  # sessions end
    assert not auth.authenticate(store, "vera", PASSWORD)  # no sign-in while disabled
    store.update_user("vera", disabled=False)
    token = auth.new_session(store, "vera", "bearer")
    auth.change_password(store, "vera", "a different passphrase")
    assert store.session_user(token, "bearer") is None  # a new password ends the tokens
    assert auth.authenticate(store, "vera", "a different passphrase")
    assert not store.update_user("nobody", disabled=True)


def test_reviews_and_audit_are_append_only(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    r = record()
    store.add_diagnosis(r)
    assert store.diagnosis(r.id).status == "new"
    store.add_review(r.id, "alice", True, "fine")
    store.add_review(r.id, "bob", False, "missed the left lobe")
    history = store.diagnosis(r.id).to_dict()["reviews"]
    assert [(h["user"], h["agree"], h["changed"]) for h in history] == [
        ("alice", True, "first review"),
        ("bob", False, "agree -> disagree; comment changed"),
    ]
    assert store.diagnosis(r.id).to_dict()["review"]["user"] == "bob"
    assert not store.add_review("nope", "bob", True, "")
    store.audit(AuditEvent(utc_now(), "alice", "view", r.id, "127.0.0.1"))
    with sqlite3.connect(store.path) as conn:
        for sql in ("UPDATE reviews SET agree = 1", "DELETE FROM reviews",
                    "UPDATE audit SET username = 'x'", "DELETE FROM audit"):  # fmt: skip
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(sql)
    assert [e.action for e in store.audit_events()] == ["view"]


def test_worklist_filters(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    a = record(call="indeterminate", patient={"name": "DOE^JANE", "id": "P-1"})
    b = record(user="bob", call="non_residual")
    for r in (a, b):
        store.add_diagnosis(r)
    store.add_review(b.id, "alice", True, "")

    def ids(worklist: Worklist) -> set[str]:
        return {r.id for r in store.diagnoses(worklist=worklist)}

    assert ids(Worklist(status="new")) == {a.id} and ids(Worklist(status="reviewed")) == {b.id}
    assert ids(Worklist(call="indeterminate")) == {a.id}
    assert ids(Worklist(search="jane")) == {a.id} and ids(Worklist(search="BOB")) == {b.id}
    assert ids(Worklist(date_from="2000-01-01", date_to="2999-12-31")) == {a.id, b.id}
    assert ids(Worklist(date_to="2000-01-01")) == set()
    assert store.count_diagnoses(Worklist(status="new")) == 1


def test_schema_1_databases_are_migrated(tmp_path):
    """A database written by thyrocad 0.4 (reviews in the diagnosis row, no roles) opens with
    its users as physicians and its reviews as the first entries of the history."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA_1)
        conn.execute("INSERT INTO users VALUES ('alice', 'h', '2026-01-01')")
        conn.execute(
            "INSERT INTO diagnoses VALUES ('d1', '2026-01-02', 'alice', 'm', 'x', 'DICOM', "
            "'residual', 0.7, '{}', NULL, 1, 'ok', 'alice', '2026-01-03')"
        )
        conn.execute("PRAGMA user_version=1")
    store = Store(path)
    (user,) = store.list_users()
    assert (user.name, user.role, user.disabled) == ("alice", "physician", False)
    migrated = store.diagnosis("d1")
    assert migrated.call == "residual" and migrated.reviews[0].comment == "ok"
    assert store.integrity_ok()


SCHEMA_1 = """
CREATE TABLE users (username TEXT PRIMARY KEY, password_hash TEXT NOT NULL,
    created_utc TEXT NOT NULL);
CREATE TABLE sessions (token_sha256 TEXT PRIMARY KEY, username TEXT NOT NULL REFERENCES
    users(username) ON DELETE CASCADE, kind TEXT NOT NULL, created_utc TEXT NOT NULL,
    expires_utc TEXT NOT NULL);
CREATE TABLE diagnoses (id TEXT PRIMARY KEY, created_utc TEXT NOT NULL, username TEXT NOT NULL,
    model_version TEXT NOT NULL, input_sha256 TEXT NOT NULL, input_kind TEXT NOT NULL,
    verdict TEXT NOT NULL, probability REAL NOT NULL, result_json TEXT NOT NULL,
    patient_json TEXT, review_agree INTEGER, review_comment TEXT, review_user TEXT,
    review_utc TEXT);
CREATE INDEX diagnoses_created ON diagnoses(created_utc);
"""


def test_sessions_store_only_digests_and_expire(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    auth.add_user(store, "alice", PASSWORD)
    token = auth.new_session(store, "alice", "bearer")
    assert store.session_user(token, "bearer") == User("alice", "physician")
    assert store.session_user(token, "cookie") is None  # kinds do not mix
    assert token.encode() not in (tmp_path / "db.sqlite").read_bytes()
    store.add_session("old", "alice", "cookie", dt.timedelta(seconds=-1))
    assert store.session_user("old", "cookie") is None
    store.remove_user("alice")
    assert store.session_user(token, "bearer") is None  # sessions end with the user


def test_login_limiter_counts_per_client_and_per_user():
    limiter = auth.LoginLimiter(per_user=3, per_client=5, window_s=60)
    for _ in range(3):
        assert limiter.reserve("10.0.0.1", "alice")[0] == 0  # counted as a failure
    assert 0 < limiter.retry_after("10.0.0.1", "alice") <= 60
    assert limiter.retry_after("10.0.0.2", "alice") > 0  # the user is locked from anywhere
    assert limiter.retry_after("10.0.0.1", "bob") == 0  # the client is not, yet
    _, stamp = limiter.reserve("10.0.0.1", "bob")
    limiter.succeeded("10.0.0.1", "bob", stamp)  # a good password is not a failure
    for _ in range(2):
        limiter.reserve("10.0.0.1", "bob")
    assert limiter.retry_after("10.0.0.1", "carol") > 0  # now it is, for any user
    assert limiter.retry_after("10.0.0.2", "bob") == 0
    expired = auth.LoginLimiter(per_user=1, window_s=0.0)
    expired.reserve("c", "u")
    assert expired.retry_after("c", "u") == 0


def test_login_limiter_holds_under_concurrent_guesses():
    """Eight guesses at once: the check and the count are one step, so at most `per_user`
    of them get to try a password (the others are refused without checking one)."""
    limiter = auth.LoginLimiter(per_user=5)
    barrier = threading.Barrier(8)

    def guess(_):
        barrier.wait()
        return limiter.reserve("10.0.0.9", "alice")[0] == 0

    with ThreadPoolExecutor(max_workers=8) as pool:
        tried = sum(pool.map(guess, range(8)))
    assert tried == 5
