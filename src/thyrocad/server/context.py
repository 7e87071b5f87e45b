"""What every route needs: the settings, the store, the diagnosis service and the limiters
(`ServerContext`, kept in `app.state.ctx`), and the FastAPI dependencies that say who asks and
whether their role allows it.

Who asks: a bearer token (`POST /api/v1/token`) or the session cookie for the API, the cookie
for the pages. A cookie-authenticated request that changes something must come from this
site: `same_origin` compares the Origin's scheme, host and port with the request's (behind a
proxy: `X-Forwarded-Proto` and the `Host` header it passes on, `$http_host` in nginx).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import anyio
from fastapi import Depends, HTTPException, Request
from fastapi.templating import Jinja2Templates

from thyrocad.diagnosis.service import DiagnosisService
from thyrocad.server import auth
from thyrocad.server.display import register_filters
from thyrocad.server.records import AuditEvent, User, utc_now
from thyrocad.server.reports import Reports
from thyrocad.server.store import Store
from thyrocad.server.uploads import DEFAULT_MAX_UPLOAD

logger = logging.getLogger(__name__)

HERE = Path(__file__).parent
COOKIE = "thyrocad_session"
DEFAULT_PORTS = {"http": 80, "https": 443}
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class ServerSettings:
    """Where the server keeps its data and how it treats uploads.

    `data_dir` holds `results/<diagnosis id>/` (images, PDF, DICOM SR/SC, the kept views) and
    `tmp/` (uploads while they are analysed, removed afterwards). `secure_cookies` marks the
    session cookie Secure: switch it on behind a TLS reverse proxy. Uploads are refused (507)
    and /health reports "degraded" while the data folder has less than `min_free_bytes` free.
    `inference_threads` verdicts and `report_workers` reports (Grad-CAM, figures, PDF, DICOM)
    run at once; by default each is half the cores, at most 4.
    """

    model_dir: Path
    db_path: Path
    data_dir: Path
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD
    store_patient_ids: bool = False
    secure_cookies: bool = False
    inference_threads: int = field(default_factory=lambda: default_workers())
    report_workers: int = field(default_factory=lambda: default_workers())
    min_free_bytes: int = 64 << 20


def default_workers(most: int = 4) -> int:
    """Half the machine's cores (at least 1, at most `most`): verdicts and reports share it."""
    return max(1, min(most, (os.cpu_count() or 1) // 2))


@dataclass
class ServerContext:
    """The server's shared state; one per app."""

    settings: ServerSettings
    service: DiagnosisService
    store: Store
    limiter: anyio.CapacityLimiter
    reports: Reports
    login_limiter: auth.LoginLimiter = field(default_factory=auth.LoginLimiter)
    templates: Jinja2Templates = field(
        default_factory=lambda: register_filters(Jinja2Templates(directory=HERE / "templates"))
    )

    @property
    def results_dir(self) -> Path:
        return self.settings.data_dir / "results"

    @property
    def tmp_dir(self) -> Path:
        return self.settings.data_dir / "tmp"

    def audit(self, request: Request | None, user: str, action: str, target: str = "",
              detail: str = "") -> None:  # fmt: skip
        """Append to the audit log; a failure (disk full) is logged, never raised."""
        client = request.client.host if request is not None and request.client else ""
        try:
            self.store.audit(AuditEvent(utc_now(), user, action, target, client, detail))
        except Exception:
            logger.exception("audit log write failed (%s %s)", action, target)


def context(request: Request) -> ServerContext:
    return request.app.state.ctx


Ctx = Annotated[ServerContext, Depends(context)]


class LoginRequired(Exception):
    """A page was asked for without a valid session: redirect to the login page."""


def origin_matches(request: Request) -> bool:
    """Whether the request's Origin (if any) is this site: same scheme, host and port."""
    origin = request.headers.get("origin")
    if origin is None:
        return request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")
    parts = urlsplit(origin)
    host = urlsplit(f"//{request.headers.get('host', '')}")
    scheme = request.url.scheme
    try:
        ours = (scheme, host.hostname, host.port or DEFAULT_PORTS.get(scheme))
        theirs = (parts.scheme, parts.hostname, parts.port or DEFAULT_PORTS.get(parts.scheme))
    except ValueError:  # a port that is not a number
        return False
    return ours == theirs


def same_origin(request: Request) -> None:
    """Refuse cross-site form posts (defence in depth on top of SameSite=Strict)."""
    if not origin_matches(request):
        raise HTTPException(403, "Cross-site request refused.")


def api_user(request: Request, ctx: Ctx) -> User:
    """The user of an API request: bearer token, or the session cookie (same-site only for
    requests that change something)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    user = None
    if scheme.lower() == "bearer" and token:
        user = ctx.store.session_user(token.strip(), "bearer")
    elif cookie := request.cookies.get(COOKIE):
        user = ctx.store.session_user(cookie, "cookie")
        if user is not None and request.method in UNSAFE_METHODS:
            same_origin(request)
    if user is None:
        raise HTTPException(
            401,
            "Not authenticated: send 'Authorization: Bearer <token>' (POST /api/v1/token).",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


def page_user(request: Request, ctx: Ctx) -> User:
    cookie = request.cookies.get(COOKIE)
    user = ctx.store.session_user(cookie, "cookie") if cookie else None
    if user is None:
        raise LoginRequired
    return user


def allowed(user: User, permission: str) -> User:
    """`user` if their role has `permission`; 403 otherwise."""
    if not user.can(permission):
        raise HTTPException(403, f"Your role ({user.role}) may not do this ({permission}).")
    return user


def api_role(permission: str):
    """A dependency: the API user, who must have `permission`."""

    def check(user: Annotated[User, Depends(api_user)]) -> User:
        return allowed(user, permission)

    return check


def page_role(permission: str):
    """A dependency: the page user, who must have `permission`."""

    def check(user: Annotated[User, Depends(page_user)]) -> User:
        return allowed(user, permission)

    return check


ApiReader = Annotated[User, Depends(api_role("read"))]
ApiDiagnoser = Annotated[User, Depends(api_role("diagnose"))]
ApiReviewer = Annotated[User, Depends(api_role("review"))]
ApiAdmin = Annotated[User, Depends(api_role("manage"))]
PageReader = Annotated[User, Depends(page_role("read"))]
PageDiagnoser = Annotated[User, Depends(page_role("diagnose"))]
PageReviewer = Annotated[User, Depends(page_role("review"))]
PageAdmin = Annotated[User, Depends(page_role("manage"))]


def check_login(request: Request, ctx: ServerContext, username: str, password: str) -> None:
    """Verify a login under the rate limit (429) and audit it; 401 when wrong."""
    client = request.client.host if request.client else "?"
    wait, stamp = ctx.login_limiter.reserve(client, username)
    if wait > 0:
        raise HTTPException(
            429,
            f"Too many failed logins; try again in {int(wait) + 1} s.",
            headers={"Retry-After": str(int(wait) + 1)},
        )
    if not auth.authenticate(ctx.store, username, password):
        logger.warning("failed login from %s", client)
        known = username if ctx.store.user_exists(username) else "(unknown user)"
        ctx.audit(request, known, "login_failed")
        raise HTTPException(401, "Wrong user name or password.")
    ctx.login_limiter.succeeded(client, username, stamp)
