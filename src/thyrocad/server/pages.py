"""The physician's pages: log in/out, upload, the result page (call, band, identity, review
history, setting the thyroid bed), the worklist (history with status, filters and search).

Every form post checks the Origin (`same_origin`); the cookie is HttpOnly and SameSite=Strict.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response

from thyrocad.diagnosis.source import INPUT_NAME
from thyrocad.server import auth
from thyrocad.server.analysis import MAX_FORM_FIELDS, diagnose_upload, rerun_with_beds
from thyrocad.server.api import get_record
from thyrocad.server.context import (
    COOKIE,
    Ctx,
    PageDiagnoser,
    PageReader,
    PageReviewer,
    ServerContext,
    check_login,
    same_origin,
)
from thyrocad.server.store import Worklist

router = APIRouter(include_in_schema=False)
SameOrigin = [Depends(same_origin)]
PAGE_SIZE = 50
CALLS = ("residual", "non_residual", "indeterminate")


def page(
    request: Request, ctx: ServerContext, name: str, status_code: int = 200, **context: Any
) -> Response:
    context.setdefault("error", None)
    context.setdefault("patient", None)
    context.setdefault("identity_stored", ctx.settings.store_patient_ids)
    return ctx.templates.TemplateResponse(request, name, context, status_code=status_code)


@router.get("/login")
def login_page(request: Request, ctx: Ctx) -> Response:
    return page(request, ctx, "login.html", user=None)


@router.post("/login", dependencies=SameOrigin)
async def login(request: Request, ctx: Ctx) -> Response:
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    try:  # argon2 verification is CPU work: keep it off the event loop
        await anyio.to_thread.run_sync(check_login, request, ctx, username, password)
    except HTTPException as exc:
        return page(request, ctx, "login.html", exc.status_code, user=None, error=exc.detail)
    token = await anyio.to_thread.run_sync(auth.new_session, ctx.store, username, "cookie")
    ctx.audit(request, username, "login")
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(auth.SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=ctx.settings.secure_cookies,
    )
    return response


@router.post("/logout", dependencies=SameOrigin)
def logout(request: Request, ctx: Ctx) -> Response:
    if cookie := request.cookies.get(COOKIE):
        user = ctx.store.session_user(cookie, "cookie")
        ctx.store.remove_session(cookie)
        if user is not None:
            ctx.audit(request, user.name, "logout")
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, httponly=True, samesite="strict")
    return response


@router.get("/")
def home(request: Request, user: PageReader, ctx: Ctx) -> Response:
    return page(request, ctx, "index.html", user=user, card=ctx.service.model_card)


@router.post("/upload", dependencies=SameOrigin)
async def upload_page(request: Request, user: PageDiagnoser, ctx: Ctx) -> Response:
    try:
        record = await diagnose_upload(ctx, request, user)
    except HTTPException as exc:
        return page(
            request, ctx, "index.html", exc.status_code,
            user=user, card=ctx.service.model_card, error=exc.detail,
        )  # fmt: skip
    ctx.audit(request, user.name, "upload", record.id)
    return RedirectResponse(f"/diagnoses/{record.id}", status_code=303)


@router.get("/diagnoses/{diagnosis_id}")
def diagnosis_page(request: Request, diagnosis_id: str, user: PageReader, ctx: Ctx) -> Response:
    record = get_record(ctx, diagnosis_id)
    ctx.audit(request, user.name, "view", record.id)
    kept = (ctx.results_dir / record.id / INPUT_NAME).is_file()
    return page(
        request, ctx, "diagnosis.html",
        user=user, d=record.to_dict(), card=ctx.service.model_card, patient=record.patient,
        reruns=ctx.store.reruns(record.id), kept=kept,
    )  # fmt: skip


@router.post("/diagnoses/{diagnosis_id}/review", dependencies=SameOrigin)
async def review_page(
    request: Request, diagnosis_id: str, user: PageReviewer, ctx: Ctx
) -> Response:
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    agree = form.get("agree")
    if agree not in ("yes", "no"):
        raise HTTPException(422, "Choose agree or disagree.")
    comment = str(form.get("comment", ""))[:2000]
    saved = await anyio.to_thread.run_sync(
        ctx.store.add_review, diagnosis_id, user.name, agree == "yes", comment
    )
    if not saved:
        raise HTTPException(404, f"No diagnosis with id {diagnosis_id!r}.")
    ctx.audit(request, user.name, "review", diagnosis_id, "agree" if agree == "yes" else "disagree")
    return RedirectResponse(f"/diagnoses/{diagnosis_id}", status_code=303)


@router.post("/diagnoses/{diagnosis_id}/bed", dependencies=SameOrigin)
async def bed_page(request: Request, diagnosis_id: str, user: PageDiagnoser, ctx: Ctx) -> Response:
    """Re-run with the bed the physician clicked on one view."""
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    parent = get_record(ctx, diagnosis_id)
    try:
        view = str(form.get("view", ""))
        bed = (float(str(form.get("row", ""))), float(str(form.get("col", ""))))
    except ValueError:
        raise HTTPException(
            422, "Click on a view, or give row and column, to set the bed."
        ) from None
    record = await rerun_with_beds(ctx, parent, {view: bed}, user, view_pixels=True)
    ctx.audit(request, user.name, "rerun", record.id, f"of {parent.id}")
    return RedirectResponse(f"/diagnoses/{record.id}", status_code=303)


@router.get("/history")
def history_page(
    request: Request,
    user: PageReader,
    ctx: Ctx,
    offset: Annotated[int, Query(ge=0)] = 0,
    status: Annotated[str, Query(pattern="^(|new|reviewed)$")] = "",
    call: Annotated[str, Query(pattern="^(|residual|non_residual|indeterminate)$")] = "",
    q: Annotated[str, Query(max_length=100)] = "",
    date_from: Annotated[str, Query(pattern=r"^(|\d{4}-\d{2}-\d{2})$")] = "",
    date_to: Annotated[str, Query(pattern=r"^(|\d{4}-\d{2}-\d{2})$")] = "",
) -> Response:
    """The worklist: the department's diagnoses, newest first, with status and filters."""
    worklist = Worklist(status, call, q.strip(), date_from, date_to)
    records = ctx.store.diagnoses(PAGE_SIZE, offset, worklist)
    return page(
        request, ctx, "history.html",
        user=user, records=[r.to_dict() for r in records], offset=offset,
        total=ctx.store.count_diagnoses(worklist), worklist=worklist, calls=CALLS,
    )  # fmt: skip
