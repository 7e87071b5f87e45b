"""Users (argon2id hashes), login sessions and API tokens, and the login rate limit.

There is no default user or password: `thyrocad users add` creates them. Session cookies (for
the page) and bearer tokens (for the API) are random 256-bit strings kept in the store only
as SHA-256 digests, with an expiry.
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
from thyrocad.server.store import Store

logger = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
USERNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
SESSION_TTL = dt.timedelta(hours=12)
TOKEN_TTL = dt.timedelta(days=30)

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


def hash_password(password: str) -> str:
    """An argon2id hash of `password`; AuthError if it is too short or too long."""
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise AuthError(
            f"The password must have {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters."
        )
    return _hasher.hash(password)


def add_user(store: Store, username: str, password: str) -> None:
    """Create a user with an argon2id hash of `password`."""
    store.add_user(check_username(username), hash_password(password))
    logger.info("user %s added", username)


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

    Kept in memory: a restart clears it, which is acceptable for a single-process server.
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
            return max(
                self._wait(f"ip:{client}", self.per_client, now),
                self._wait(f"user:{username}", self.per_user, now),
            )

    def failed(self, client: str, username: str) -> None:
        """Count one failed login."""
        now = time.monotonic()
        with self._lock:
            for key in (f"ip:{client}", f"user:{username}"):
                self._failures[key].append(now)

    def _wait(self, key: str, limit: int, now: float) -> float:
        stamps = self._failures.get(key)
        if not stamps:
            return 0.0
        while stamps and stamps[0] <= now - self.window_s:
            stamps.popleft()
        if len(stamps) < limit:
            return 0.0
        return stamps[0] + self.window_s - now
