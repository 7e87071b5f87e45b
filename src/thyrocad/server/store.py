"""The server's SQLite store: users, login sessions and API tokens, diagnoses and reviews.

One connection per operation (SQLite connections are cheap and not shareable across threads),
WAL journal so readers never block the writer, `BEGIN IMMEDIATE` transactions so concurrent
writers queue on the busy timeout instead of failing half-way. Tokens are stored only as
SHA-256 digests; patient names and IDs only when the server was started with them switched on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thyrocad.errors import StoreError

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30.0
SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_utc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_sha256 TEXT PRIMARY KEY,
    username TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('cookie', 'bearer')),
    created_utc TEXT NOT NULL,
    expires_utc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS diagnoses (
    id TEXT PRIMARY KEY,
    created_utc TEXT NOT NULL,
    username TEXT NOT NULL,
    model_version TEXT NOT NULL,
    input_sha256 TEXT NOT NULL,
    input_kind TEXT NOT NULL,
    verdict TEXT NOT NULL,
    probability REAL NOT NULL,
    result_json TEXT NOT NULL,
    patient_json TEXT,
    review_agree INTEGER,
    review_comment TEXT,
    review_user TEXT,
    review_utc TEXT
);
CREATE INDEX IF NOT EXISTS diagnoses_created ON diagnoses(created_utc);
"""


def utc_now() -> str:
    """The current UTC time, ISO 8601 with microseconds (sorts as text)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def token_digest(token: str) -> str:
    """What the store keeps of a session or API token."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class DiagnosisRecord:
    """One stored diagnosis; `result` is the JSON of the analysis (no patient identity)."""

    id: str
    created_utc: str
    username: str
    model_version: str
    input_sha256: str
    input_kind: str
    verdict: str
    probability: float
    result: dict[str, Any]
    patient: dict[str, str] | None
    review_agree: bool | None
    review_comment: str | None
    review_user: str | None
    review_utc: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the API's response)."""
        review = None
        if self.review_agree is not None:
            review = {
                "agree": self.review_agree,
                "comment": self.review_comment or "",
                "user": self.review_user,
                "time_utc": self.review_utc,
            }
        return {
            "id": self.id,
            "created_utc": self.created_utc,
            "user": self.username,
            "model_version": self.model_version,
            "input_sha256": self.input_sha256,
            "input_kind": self.input_kind,
            "verdict": self.verdict,
            "probability": self.probability,
            "result": self.result,
            "patient": self.patient,
            "review": review,
        }


class Store:
    """All persistent server state in one SQLite file at `path`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(SCHEMA)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"Cannot open the database {self.path} ({exc}); check the folder exists and is "
                "writable, or choose another file with --db."
            ) from exc

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys=ON")
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: taken with BEGIN IMMEDIATE, committed or rolled back whole."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # --- users --------------------------------------------------------------------------------

    def add_user(self, username: str, password_hash: str) -> None:
        """Create a user; StoreError if the name is taken."""
        try:
            with self._transaction() as conn:
                conn.execute(
                    "INSERT INTO users (username, password_hash, created_utc) VALUES (?, ?, ?)",
                    (username, password_hash, utc_now()),
                )
        except sqlite3.IntegrityError as exc:
            raise StoreError(
                f"User {username!r} already exists; remove it first or pick another name."
            ) from exc

    def set_password_hash(self, username: str, password_hash: str) -> None:
        """Replace a user's hash (after a rehash with new argon2 parameters)."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE users SET password_hash = ? WHERE username = ?", (password_hash, username)
            )

    def remove_user(self, username: str) -> bool:
        """Delete a user and its sessions; False if there was no such user."""
        with self._transaction() as conn:
            return conn.execute("DELETE FROM users WHERE username = ?", (username,)).rowcount > 0

    def password_hash(self, username: str) -> str | None:
        """The stored argon2 hash of `username`, or None."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT password_hash FROM users WHERE username = ?", (username,)
            ).fetchone()
        return row["password_hash"] if row else None

    def list_users(self) -> list[tuple[str, str]]:
        """(username, created_utc) of every user, by name."""
        with self._connect() as conn:
            rows = conn.execute("SELECT username, created_utc FROM users ORDER BY username")
            return [(r["username"], r["created_utc"]) for r in rows]

    # --- sessions and tokens ------------------------------------------------------------------

    def add_session(self, token: str, username: str, kind: str, ttl: dt.timedelta) -> None:
        """Remember `token` (stored as its digest) for `username` until now + `ttl`."""
        now = dt.datetime.now(dt.UTC)
        with self._transaction() as conn:
            conn.execute("DELETE FROM sessions WHERE expires_utc < ?", (now.isoformat(),))
            conn.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?)",
                (token_digest(token), username, kind, now.isoformat(), (now + ttl).isoformat()),
            )

    def session_user(self, token: str, kind: str) -> str | None:
        """The user a live token of `kind` belongs to, or None (unknown or expired)."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT username FROM sessions WHERE token_sha256 = ? AND kind = ? "
                "AND expires_utc > ?",
                (token_digest(token), kind, dt.datetime.now(dt.UTC).isoformat()),
            ).fetchone()
        return row["username"] if row else None

    def remove_session(self, token: str) -> None:
        """Forget a token (logout, token revocation)."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM sessions WHERE token_sha256 = ?", (token_digest(token),))

    # --- diagnoses ----------------------------------------------------------------------------

    def add_diagnosis(self, record: DiagnosisRecord) -> None:
        """Insert one diagnosis in its own transaction."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO diagnoses (id, created_utc, username, model_version, input_sha256, "
                "input_kind, verdict, probability, result_json, patient_json) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.created_utc,
                    record.username,
                    record.model_version,
                    record.input_sha256,
                    record.input_kind,
                    record.verdict,
                    record.probability,
                    json.dumps(record.result, sort_keys=True),
                    json.dumps(record.patient) if record.patient else None,
                ),
            )

    def set_review(self, diagnosis_id: str, username: str, agree: bool, comment: str) -> bool:
        """Record a physician's review; False if there is no such diagnosis."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE diagnoses SET review_agree = ?, review_comment = ?, review_user = ?, "
                "review_utc = ? WHERE id = ?",
                (int(agree), comment, username, utc_now(), diagnosis_id),
            )
            return cursor.rowcount > 0

    def diagnosis(self, diagnosis_id: str) -> DiagnosisRecord | None:
        """One diagnosis by id, or None."""
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM diagnoses WHERE id = ?", (diagnosis_id,)).fetchone()
        return _record(row) if row else None

    def diagnoses(self, limit: int = 100, offset: int = 0) -> list[DiagnosisRecord]:
        """The most recent diagnoses first."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM diagnoses ORDER BY created_utc DESC, id LIMIT ? OFFSET ?",
                (limit, offset),
            ).fetchall()
        return [_record(r) for r in rows]

    def count_diagnoses(self) -> int:
        """How many diagnoses are stored."""
        with self._connect() as conn:
            return conn.execute("SELECT COUNT(*) FROM diagnoses").fetchone()[0]

    def integrity_ok(self) -> bool:
        """SQLite's own integrity check of the file."""
        with self._connect() as conn:
            return conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    def backup(self, target: Path) -> Path:
        """A consistent copy of the live database (SQLite online backup API)."""
        target = Path(target)
        with self._connect() as conn:
            dest = sqlite3.connect(target)
            try:
                conn.backup(dest)
            finally:
                dest.close()
        return target


def _record(row: sqlite3.Row) -> DiagnosisRecord:
    agree = row["review_agree"]
    return DiagnosisRecord(
        id=row["id"],
        created_utc=row["created_utc"],
        username=row["username"],
        model_version=row["model_version"],
        input_sha256=row["input_sha256"],
        input_kind=row["input_kind"],
        verdict=row["verdict"],
        probability=row["probability"],
        result=json.loads(row["result_json"]),
        patient=json.loads(row["patient_json"]) if row["patient_json"] else None,
        review_agree=None if agree is None else bool(agree),
        review_comment=row["review_comment"],
        review_user=row["review_user"],
        review_utc=row["review_utc"],
    )
