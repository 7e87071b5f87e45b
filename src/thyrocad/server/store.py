"""The server's SQLite store: users with roles, login sessions and API tokens, diagnoses,
their reviews (append-only) and the audit log (append-only).

One connection per operation (SQLite connections are cheap and not shareable across threads),
WAL journal so readers never block the writer, `BEGIN IMMEDIATE` transactions so concurrent
writers queue on the busy timeout instead of failing half-way. Tokens are stored only as
SHA-256 digests; patient names and IDs only when the server was started with them switched
on. Reviews and audit events cannot be changed or deleted: triggers refuse it. A database of
schema 1 (reviews kept in the diagnosis row, no roles) is migrated on opening: its users
become physicians, its reviews the first entries of the review history.
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
from thyrocad.server.records import (
    ROLES,
    AuditEvent,
    DiagnosisRecord,
    Review,
    User,
    UserInfo,
    utc_now,
)

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
BUSY_TIMEOUT_S = 30.0
_REVIEWS = """
CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    diagnosis_id TEXT NOT NULL REFERENCES diagnoses(id),
    username TEXT NOT NULL,
    time_utc TEXT NOT NULL,
    agree INTEGER NOT NULL,
    comment TEXT NOT NULL
);"""
_APPEND_ONLY = """
CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table}
BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END;
CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table}
BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END;
"""
SCHEMA = (
    f"""
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_utc TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT 'physician' CHECK (role IN {ROLES}),
    disabled INTEGER NOT NULL DEFAULT 0
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
    call TEXT NOT NULL,
    probability REAL NOT NULL,
    result_json TEXT NOT NULL,
    patient_json TEXT,
    parent_id TEXT
);
CREATE INDEX IF NOT EXISTS diagnoses_created ON diagnoses(created_utc);
{_REVIEWS}
CREATE INDEX IF NOT EXISTS reviews_diagnosis ON reviews(diagnosis_id);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time_utc TEXT NOT NULL,
    username TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    client TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""
    + _APPEND_ONLY.format(table="reviews")
    + _APPEND_ONLY.format(table="audit")
)
MIGRATE_1_TO_2 = f"""
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'physician';
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE diagnoses ADD COLUMN call TEXT NOT NULL DEFAULT '';
ALTER TABLE diagnoses ADD COLUMN parent_id TEXT;
UPDATE diagnoses SET call = verdict;
{_REVIEWS}
INSERT INTO reviews (diagnosis_id, username, time_utc, agree, comment)
    SELECT id, review_user, review_utc, review_agree, COALESCE(review_comment, '')
    FROM diagnoses WHERE review_agree IS NOT NULL ORDER BY review_utc;
ALTER TABLE diagnoses DROP COLUMN review_agree;
ALTER TABLE diagnoses DROP COLUMN review_comment;
ALTER TABLE diagnoses DROP COLUMN review_user;
ALTER TABLE diagnoses DROP COLUMN review_utc;
"""


def token_digest(token: str) -> str:
    """What the store keeps of a session or API token."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Worklist:
    """Filters of the history/worklist: status "new"/"reviewed", call, free-text search (id,
    user, or patient name/ID when stored), UTC date range (YYYY-MM-DD, inclusive)."""

    status: str = ""
    call: str = ""
    search: str = ""
    date_from: str = ""
    date_to: str = ""

    def where(self) -> tuple[str, list[str]]:
        """An SQL WHERE clause (or "") and its parameters."""
        clauses, params = [], []
        reviewed = "EXISTS (SELECT 1 FROM reviews r WHERE r.diagnosis_id = d.id)"
        if self.status == "new":
            clauses.append(f"NOT {reviewed}")
        elif self.status == "reviewed":
            clauses.append(reviewed)
        if self.call:
            clauses.append("d.call = ?")
            params.append(self.call)
        if self.date_from:
            clauses.append("d.created_utc >= ?")
            params.append(self.date_from)
        if self.date_to:
            clauses.append("d.created_utc < date(?, '+1 day')")
            params.append(self.date_to)
        if self.search:
            like = f"%{self.search.lower()}%"
            clauses.append(
                "(lower(d.id) LIKE ? OR lower(d.username) LIKE ? "
                "OR lower(COALESCE(d.patient_json, '')) LIKE ?)"
            )
            params += [like, like, like]
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


class Store:
    """All persistent server state in one SQLite file at `path`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version == 1:
                    conn.executescript(f"BEGIN; {MIGRATE_1_TO_2} COMMIT;")
                    logger.info("database migrated to schema %d", SCHEMA_VERSION)
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

    def add_user(self, username: str, password_hash: str, role: str = "physician") -> None:
        """Create a user; StoreError if the name is taken."""
        try:
            with self._transaction() as conn:
                conn.execute(
                    "INSERT INTO users (username, password_hash, created_utc, role) "
                    "VALUES (?, ?, ?, ?)",
                    (username, password_hash, utc_now(), role),
                )
        except sqlite3.IntegrityError as exc:
            raise StoreError(
                f"User {username!r} already exists; remove it first or pick another name."
            ) from exc

    def set_password_hash(self, username: str, password_hash: str) -> bool:
        """Replace a user's hash; False if there is no such user."""
        with self._transaction() as conn:
            return (
                conn.execute(
                    "UPDATE users SET password_hash = ? WHERE username = ?",
                    (password_hash, username),
                ).rowcount
                > 0
            )

    def update_user(self, username: str, *, role: str | None = None, disabled: bool | None = None):
        """Change a user's role and/or disable or enable it (ending its sessions when
        disabled); False if there is no such user."""
        with self._transaction() as conn:
            changed = 0
            if role is not None:
                changed = conn.execute(
                    "UPDATE users SET role = ? WHERE username = ?", (role, username)
                ).rowcount
            if disabled is not None:
                changed = conn.execute(
                    "UPDATE users SET disabled = ? WHERE username = ?", (int(disabled), username)
                ).rowcount
                if disabled:
                    conn.execute("DELETE FROM sessions WHERE username = ?", (username,))
            return changed > 0

    def end_sessions(self, username: str) -> None:
        """End every session and token of a user (after a password change)."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM sessions WHERE username = ?", (username,))

    def remove_user(self, username: str) -> bool:
        """Delete a user and its sessions; False if there was no such user."""
        with self._transaction() as conn:
            return conn.execute("DELETE FROM users WHERE username = ?", (username,)).rowcount > 0

    def password_hash(self, username: str) -> str | None:
        """The stored argon2 hash of an enabled user, or None."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT password_hash FROM users WHERE username = ? AND disabled = 0", (username,)
            ).fetchone()
        return row["password_hash"] if row else None

    def user_exists(self, username: str) -> bool:
        with self._connect() as conn:
            return bool(
                conn.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone()
            )

    def list_users(self) -> list[UserInfo]:
        """Every user, by name."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT username, role, disabled, created_utc FROM users ORDER BY username"
            )
            return [
                UserInfo(r["username"], r["role"], bool(r["disabled"]), r["created_utc"])
                for r in rows
            ]

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

    def session_user(self, token: str, kind: str) -> User | None:
        """The enabled user a live token of `kind` belongs to, or None."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT u.username, u.role FROM sessions s JOIN users u USING (username) "
                "WHERE s.token_sha256 = ? AND s.kind = ? AND s.expires_utc > ? "
                "AND u.disabled = 0",
                (token_digest(token), kind, dt.datetime.now(dt.UTC).isoformat()),
            ).fetchone()
        return User(row["username"], row["role"]) if row else None

    def remove_session(self, token: str) -> None:
        """Forget a token (logout, token revocation)."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM sessions WHERE token_sha256 = ?", (token_digest(token),))

    # --- diagnoses and reviews ----------------------------------------------------------------

    def add_diagnosis(self, record: DiagnosisRecord) -> None:
        """Insert one diagnosis in its own transaction."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO diagnoses (id, created_utc, username, model_version, input_sha256, "
                "input_kind, verdict, call, probability, result_json, patient_json, parent_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.created_utc,
                    record.username,
                    record.model_version,
                    record.input_sha256,
                    record.input_kind,
                    record.verdict,
                    record.call,
                    record.probability,
                    json.dumps(record.result, sort_keys=True),
                    json.dumps(record.patient) if record.patient else None,
                    record.parent_id,
                ),
            )

    def update_result(self, diagnosis_id: str, result: dict[str, Any]) -> None:
        """Replace a diagnosis's result JSON (its report made after the verdict)."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE diagnoses SET result_json = ? WHERE id = ?",
                (json.dumps(result, sort_keys=True), diagnosis_id),
            )

    def fail_pending_reports(self, note: str) -> int:
        """Mark every report still "pending" as "failed" with `note` (start-up recovery: the
        process that was making them is gone); returns how many."""
        with self._transaction() as conn:
            rows = conn.execute(
                "SELECT id, result_json FROM diagnoses "
                "WHERE json_extract(result_json, '$.report') = 'pending'"
            ).fetchall()
            for row in rows:
                result = json.loads(row["result_json"])
                result.update(report="failed", files={}, notes=[*result.get("notes", []), note])
                conn.execute(
                    "UPDATE diagnoses SET result_json = ? WHERE id = ?",
                    (json.dumps(result, sort_keys=True), row["id"]),
                )
        return len(rows)

    def add_review(self, diagnosis_id: str, username: str, agree: bool, comment: str) -> bool:
        """Append a review; False if there is no such diagnosis."""
        with self._transaction() as conn:
            if not conn.execute("SELECT 1 FROM diagnoses WHERE id = ?", (diagnosis_id,)).fetchone():
                return False
            conn.execute(
                "INSERT INTO reviews (diagnosis_id, username, time_utc, agree, comment) "
                "VALUES (?, ?, ?, ?, ?)",
                (diagnosis_id, username, utc_now(), int(agree), comment),
            )
            return True

    def diagnosis(self, diagnosis_id: str) -> DiagnosisRecord | None:
        """One diagnosis by id with its reviews, or None."""
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM diagnoses WHERE id = ?", (diagnosis_id,)).fetchone()
            return self._record(conn, row) if row else None

    def diagnoses(
        self, limit: int = 100, offset: int = 0, worklist: Worklist = Worklist()
    ) -> list[DiagnosisRecord]:
        """The most recent diagnoses first, filtered by `worklist`."""
        where, params = worklist.where()
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT d.* FROM diagnoses d{where} ORDER BY d.created_utc DESC, d.id "
                "LIMIT ? OFFSET ?",
                (*params, limit, offset),
            ).fetchall()
            return [self._record(conn, r) for r in rows]

    def count_diagnoses(self, worklist: Worklist = Worklist()) -> int:
        """How many diagnoses are stored (that `worklist` selects)."""
        where, params = worklist.where()
        with self._connect() as conn:
            return conn.execute(f"SELECT COUNT(*) FROM diagnoses d{where}", params).fetchone()[0]

    def diagnosis_ids(self) -> set[str]:
        """Every diagnosis id (startup recovery compares them with the result folders)."""
        with self._connect() as conn:
            return {r[0] for r in conn.execute("SELECT id FROM diagnoses")}

    def reruns(self, diagnosis_id: str) -> list[str]:
        """Ids of the diagnoses that re-ran this one, oldest first."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT id FROM diagnoses WHERE parent_id = ? ORDER BY created_utc", (diagnosis_id,)
            )
            return [r[0] for r in rows]

    @staticmethod
    def _record(conn: sqlite3.Connection, row: sqlite3.Row) -> DiagnosisRecord:
        reviews = conn.execute(
            "SELECT username, time_utc, agree, comment FROM reviews WHERE diagnosis_id = ? "
            "ORDER BY id",
            (row["id"],),
        ).fetchall()
        return DiagnosisRecord(
            id=row["id"],
            created_utc=row["created_utc"],
            username=row["username"],
            model_version=row["model_version"],
            input_sha256=row["input_sha256"],
            input_kind=row["input_kind"],
            verdict=row["verdict"],
            call=row["call"],
            probability=row["probability"],
            result=json.loads(row["result_json"]),
            patient=json.loads(row["patient_json"]) if row["patient_json"] else None,
            parent_id=row["parent_id"],
            reviews=tuple(
                Review(r["username"], r["time_utc"], bool(r["agree"]), r["comment"])
                for r in reviews
            ),
        )

    # --- audit log ------------------------------------------------------------------------------

    def audit(self, event: AuditEvent) -> None:
        """Append one audit event."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO audit (time_utc, username, action, target, client, detail) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                event.row(),
            )

    def audit_events(self, limit: int | None = None) -> list[AuditEvent]:
        """The audit log, newest first (all of it without `limit`)."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT time_utc, username, action, target, client, detail FROM audit "
                "ORDER BY id DESC LIMIT ?",
                (-1 if limit is None else limit,),
            )
            return [AuditEvent(*r) for r in rows]

    # --- maintenance ----------------------------------------------------------------------------

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
