"""The admin's pages: users (add, role, disable/enable, new password), the audit log (with CSV
export) and the server's settings (read-only: they are `thyrocad serve` options).

Every change is audited; a user cannot disable themselves or take away their own admin role,
so a department always keeps an admin who can sign in.
"""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from thyrocad.errors import AuthError, StoreError
from thyrocad.server import auth
from thyrocad.server.analysis import MAX_FORM_FIELDS, free_bytes
from thyrocad.server.api import audit_csv
from thyrocad.server.context import Ctx, PageAdmin, ServerContext, same_origin
from thyrocad.server.pages import page
from thyrocad.server.records import ROLES, User

router = APIRouter(include_in_schema=False, prefix="/admin")
SameOrigin = [Depends(same_origin)]
AUDIT_SHOWN = 200
ACTIONS = ("add", "role", "disable", "enable", "password")


def settings_rows(ctx: ServerContext) -> list[tuple[str, str]]:
    """The settings a department checks, as (name, value)."""
    s = ctx.settings
    return [
        ("model", ctx.service.model_version),
        ("indeterminate band", ctx.service.model_card["indeterminate_band"]),
        ("patient identity stored (--store-patient-ids)", "yes" if s.store_patient_ids else "no"),
        ("upload limit (--max-upload-mb)", f"{s.max_upload_bytes >> 20} MiB"),
        ("free disk reserve (--min-free-mb)", f"{s.min_free_bytes >> 20} MiB"),
        ("free disk now", f"{free_bytes(s.data_dir) >> 20} MiB"),
        ("secure cookies (--secure-cookies)", "yes" if s.secure_cookies else "no"),
        ("database", str(s.db_path)),
    ]


@router.get("")
def admin_page(request: Request, user: PageAdmin, ctx: Ctx, error: str | None = None) -> Response:
    return page(
        request, ctx, "admin.html",
        user=user, users=ctx.store.list_users(), roles=ROLES, settings=settings_rows(ctx),
        events=ctx.store.audit_events(AUDIT_SHOWN), error=error,
    )  # fmt: skip


@router.post("/users", dependencies=SameOrigin)
async def change_user(request: Request, user: PageAdmin, ctx: Ctx) -> Response:
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    action = str(form.get("action", ""))
    name = str(form.get("username", "")).strip()
    try:
        detail = await anyio.to_thread.run_sync(
            apply_change, ctx, user, action, name, str(form.get("role", "")),
            str(form.get("password", "")),
        )  # fmt: skip
    except (AuthError, StoreError) as exc:
        return admin_page(request, user, ctx, error=str(exc))
    ctx.audit(request, user.name, f"user_{action}", name, detail)
    return RedirectResponse("/admin", status_code=303)


def apply_change(
    ctx: ServerContext, admin: User, action: str, name: str, role: str, password: str
) -> str:
    """Apply one user change; the audit detail (never the password)."""
    if action not in ACTIONS:
        raise HTTPException(422, f"Unknown action; use one of {', '.join(ACTIONS)}.")
    if name == admin.name and (action == "disable" or (action == "role" and role != "admin")):
        raise AuthError("You cannot disable yourself or remove your own admin role.")
    if action == "add":
        auth.add_user(ctx.store, name, password, role or "physician")
        return role or "physician"
    if action == "password":
        auth.change_password(ctx.store, name, password)
        return ""
    changes = {"role": {"role": auth.check_role(role)} if action == "role" else None,
               "disable": {"disabled": True}, "enable": {"disabled": False}}[action]  # fmt: skip
    if not ctx.store.update_user(name, **changes):
        raise AuthError(f"No user {name!r}.")
    return role if action == "role" else ""


@router.get("/audit.csv")
def audit_export(request: Request, user: PageAdmin, ctx: Ctx) -> Response:
    """The whole audit log as CSV."""
    events = ctx.store.audit_events()
    ctx.audit(request, user.name, "audit_export", detail="csv")
    return audit_csv(events)
