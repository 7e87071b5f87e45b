"""Users (argon2id hashes, roles), login sessions and API tokens, and the login rate limit.

There is no default user or password: `thyrocad users add` creates them. Session cookies (for
the page) and bearer tokens (for the API) are random 256-bit strings kept in the store only
as SHA-256 digests, with an expiry. Passwords: 10 to 1024 characters, not one repeated
character, not whitespace only, not the user name, not one of the commonest passwords.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from thyrocad.errors import AuthError
from thyrocad.server.records import ROLES
from thyrocad.server.store import Store

logger = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
USERNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
SESSION_TTL = dt.timedelta(hours=12)
TOKEN_TTL = dt.timedelta(days=30)
# The commonest passwords of 10+ characters (breach lists), compared case-insensitively.
COMMON_PASSWORDS = frozenset(
    {
        "1234567890",
        "0123456789",
        "0987654321",
        "1234567891",
        "12345678910",
        "123456789a",
        "1q2w3e4r5t",
        "1qaz2wsx3edc",
        "qwertyuiop",
        "qwerty1234",
        "qwerty12345",
        "asdfghjkl1",
        "password12",
        "password123",
        "password1234",
        "passw0rd123",
        "passwort123",
        "iloveyou12",
        "abcdefghij",
        "abcd123456",
        "abc1234567",
        "changeme123",
        "letmein123",
        "welcome123",
        "administrator",
        "admin12345",
        "football123",
        "princess123",
        "sunshine123",
        "monkey1234",
    }
)

_hasher = PasswordHasher()
# Verified when the user does not exist, so that a wrong name costs as much time as a wrong
# password and login timing does not reveal which user names exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def check_username(username: str) -> str:
    """`username` if acceptable (1-64 of letters, digits, '.', '_', '-'); AuthError otherwise."""
    if not 1 <= len(username) <= 64 or not set(username) <= USERNAME_CHARS:
        raise AuthError(
            f"Invalid user name {username!r}: use 1-64 letters, digits, '.', '_' or '-'."
        )
    return username


def check_role(role: str) -> str:
    """`role` if it is one of `ROLES`; AuthError otherwise."""
    if role not in ROLES:
        raise AuthError(f"Unknown role {role!r}: use one of {', '.join(ROLES)}.")
    return role


def hash_password(password: str, username: str = "") -> str:
    """An argon2id hash of `password`; AuthError (never quoting it) if it is too short, too
    long, one repeated character, whitespace only, the user name or a common password."""
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise AuthError(
            f"The password must have {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters."
        )
    if not password.strip() or len(set(password)) == 1:
        raise AuthError(
            "The password is one repeated character or only whitespace; choose another."
        )
    if password.lower() in COMMON_PASSWORDS or password.lower() == username.lower():
        raise AuthError("The password is the user name or a common password; choose another.")
    return _hasher.hash(password)


def add_user(store: Store, username: str, password: str, role: str = "physician") -> None:
    """Create a user with an argon2id hash of `password` and `role`."""
    check_username(username)
    store.add_user(username, hash_password(password, username), check_role(role))
    logger.info("user %s added (%s)", username, role)


def change_password(store: Store, username: str, password: str) -> None:
    """Set a new password and end the user's sessions and tokens; AuthError if no such user."""
    if not store.set_password_hash(username, hash_password(password, username)):
        raise AuthError(f"No user {username!r}.")
    store.end_sessions(username)
    logger.info("password of %s changed", username)


def authenticate(store: Store, username: str, password: str) -> bool:
    """True if `password` is the user's; rehashes stored hashes made with older parameters."""
    stored = store.password_hash(username)
    try:
        _hasher.verify(stored or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    if stored is None:
        return False
    if _hasher.check_needs_rehash(stored):
        store.set_password_hash(username, _hasher.hash(password))
    return True


def new_session(store: Store, username: str, kind: str) -> str:
    """A fresh token of `kind` ('cookie' or 'bearer') for `username`; only its digest is stored."""
    token = secrets.token_urlsafe(32)
    store.add_session(token, username, kind, SESSION_TTL if kind == "cookie" else TOKEN_TTL)
    return token


@dataclass
class LoginLimiter:
    """At most `per_user` failed logins per user name and `per_client` per client address in
    `window_s` seconds (a client address may be a proxy shared by many users).

    Every attempt is counted as a failure *before* the password is checked (`reserve`, under
    one lock with the check), and un-counted if it succeeds (`succeeded`): concurrent guesses
    cannot all pass the check before any of them is recorded. Kept in memory: a restart
    clears it, which is acceptable for a single-process server.
    """

    per_user: int = 5
    per_client: int = 20
    window_s: float = 300.0
    _failures: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def retry_after(self, client: str, username: str) -> float:
        """Seconds until a login from `client` for `username` is allowed again (0 = now)."""
        now = time.monotonic()
        with self._lock:
            return self._retry_after(client, username, now)

    def reserve(self, client: str, username: str) -> tuple[float, float]:
        """Count an attempt as failed unless the limit is reached: (seconds to wait, 0 if
        counted; the attempt's stamp for `succeeded`)."""
        now = time.monotonic()
        with self._lock:
            wait = self._retry_after(client, username, now)
            if wait == 0:
                for key in self._keys(client, username):
                    self._failures[key].append(now)
            return wait, now

    def succeeded(self, client: str, username: str, stamp: float) -> None:
        """Un-count a reserved attempt that turned out to be a successful login."""
        with self._lock:
            for key in self._keys(client, username):
                if stamp in self._failures[key]:
                    self._failures[key].remove(stamp)

    @staticmethod
    def _keys(client: str, username: str) -> tuple[str, str]:
        return f"ip:{client}", f"user:{username}"

    def _retry_after(self, client: str, username: str, now: float) -> float:
        return max(
            self._wait(f"ip:{client}", self.per_client, now),
            self._wait(f"user:{username}", self.per_user, now),
        )

    def _wait(self, key: str, limit: int, now: float) -> float:
        stamps = self._failures.get(key)
        if not stamps:
            return 0.0
        while stamps and stamps[0] <= now - self.window_s:
            stamps.popleft()
        if len(stamps) < limit:
            return 0.0
        return stamps[0] + self.window_s - now
