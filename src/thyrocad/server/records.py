"""The rows the server keeps, as Python values: users, diagnoses with their reviews, audit
events. No SQL here (`thyrocad.server.store`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

ROLES = ("viewer", "physician", "admin")
# Each role may do what the roles before it may, and more.
PERMISSIONS = {
    "viewer": frozenset({"read"}),
    "physician": frozenset({"read", "diagnose", "review"}),
    "admin": frozenset({"read", "diagnose", "review", "manage"}),
}


def utc_now() -> str:
    """The current UTC time, ISO 8601 with microseconds (sorts as text)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class User:
    """A signed-in user and what their role allows."""

    name: str
    role: str

    def can(self, permission: str) -> bool:
        return permission in PERMISSIONS.get(self.role, ())


@dataclass(frozen=True)
class UserInfo:
    """A user as `thyrocad users list` and the admin page show it."""

    name: str
    role: str
    disabled: bool
    created_utc: str


@dataclass(frozen=True)
class Review:
    """One review of a diagnosis; reviews are appended, never changed."""

    user: str
    time_utc: str
    agree: bool
    comment: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "agree": self.agree,
            "comment": self.comment,
            "user": self.user,
            "time_utc": self.time_utc,
        }


@dataclass(frozen=True)
class DiagnosisRecord:
    """One stored diagnosis; `result` is the JSON of the analysis (no patient identity),
    `patient` the identity when the server stores it, `reviews` oldest first."""

    id: str
    created_utc: str
    username: str
    model_version: str
    input_sha256: str
    input_kind: str
    verdict: str
    call: str  # "residual", "non_residual" or "indeterminate" (the page's reading)
    probability: float
    result: dict[str, Any]
    patient: dict[str, str] | None
    parent_id: str | None = None  # the diagnosis this one re-ran (bed set by a user)
    reviews: tuple[Review, ...] = field(default_factory=tuple)

    @property
    def status(self) -> str:
        """ "reviewed" once anyone has reviewed it, else "new" (the worklist's status)."""
        return "reviewed" if self.reviews else "new"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the API's response). `review` is the latest review, `reviews`
        the whole history, each with what changed from the one before."""
        return {
            "id": self.id,
            "created_utc": self.created_utc,
            "user": self.username,
            "model_version": self.model_version,
            "input_sha256": self.input_sha256,
            "input_kind": self.input_kind,
            "verdict": self.verdict,
            "call": self.call,
            "probability": self.probability,
            "result": self.result,
            "patient": self.patient,
            "parent_id": self.parent_id,
            "status": self.status,
            "review": self.reviews[-1].to_dict() if self.reviews else None,
            "reviews": review_history(self.reviews),
        }


def review_history(reviews: tuple[Review, ...]) -> list[dict[str, Any]]:
    """Every review with `changed`: what it changed from the previous one."""
    out, before = [], None
    for review in reviews:
        changes = []
        if before is None:
            changes.append("first review")
        else:
            if review.agree != before.agree:
                changes.append(f"{_word(before.agree)} -> {_word(review.agree)}")
            if review.comment != before.comment:
                changes.append("comment changed")
            if not changes:
                changes.append("confirmed")
        out.append({**review.to_dict(), "changed": "; ".join(changes)})
        before = review
    return out


def _word(agree: bool) -> str:
    return "agree" if agree else "disagree"


@dataclass(frozen=True)
class AuditEvent:
    """One line of the audit log: who did what to which target, from where."""

    time_utc: str
    username: str
    action: str
    target: str = ""
    client: str = ""
    detail: str = ""

    COLUMNS = ("time_utc", "username", "action", "target", "client", "detail")

    def row(self) -> list[str]:
        return [getattr(self, c) for c in self.COLUMNS]
