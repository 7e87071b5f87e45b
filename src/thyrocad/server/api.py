"""The JSON API (`/api/v1/...`) and `/health`: the same operations as the pages.

Roles (`thyrocad.server.records.PERMISSIONS`): every signed-in user reads the department's
diagnoses; physicians and admins upload, review and re-run with a bed; admins read the audit
log. Reviews are appended (PUT keeps the history), never overwritten.

An upload (or re-run) is answered with the verdict as soon as the model has decided; its
`result.report` is then "pending" and `result.files` empty until the Grad-CAM, figures, report
and DICOM results are made (`thyrocad.server.reports`). `?wait_report=true` on the upload, the
re-run or `GET /api/v1/diagnoses/{id}` answers only when the report is done (or after
`REPORT_WAIT_S`, still "pending").
"""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from thyrocad.server import auth
from thyrocad.server.analysis import diagnose_upload, health_problems, rerun_with_beds
from thyrocad.server.context import (
    COOKIE,
    ApiAdmin,
    ApiDiagnoser,
    ApiReader,
    ApiReviewer,
    Ctx,
    ServerContext,
    check_login,
)
from thyrocad.server.records import AuditEvent, DiagnosisRecord
from thyrocad.server.store import Worklist

router = APIRouter()
REPORT_WAIT_S = 120.0  # the longest `wait_report` holds an answer
WaitReport = Annotated[
    bool, Query(description="Answer once the Grad-CAM, figures and report are made.")
]
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "anterior": {"type": "string", "format": "binary"},
                        "posterior": {"type": "string", "format": "binary"},
                    },
                }
            }
        },
    }
}


class TokenRequest(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=auth.MAX_PASSWORD_LENGTH)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in_s: int


class ReviewRequest(BaseModel):
    agree: bool
    comment: str = Field(default="", max_length=2000)


class RerunRequest(BaseModel):
    beds: dict[str, tuple[float, float]] = Field(
        description="Bed centre (row, column) in original pixels of the file (as `bed_rc` "
        'in a diagnosis) by view: "anterior", "posterior" or "unknown".',
        min_length=1,
        max_length=3,
    )


def get_record(ctx: ServerContext, diagnosis_id: str) -> DiagnosisRecord:
    record = ctx.store.diagnosis(diagnosis_id)
    if record is None:
        raise HTTPException(404, f"No diagnosis with id {diagnosis_id!r}.")
    return record


def record_file(ctx: ServerContext, diagnosis_id: str, name: str) -> FileResponse:
    record = get_record(ctx, diagnosis_id)
    if name not in record.result.get("files", {}).values():
        raise HTTPException(404, f"Diagnosis {diagnosis_id} has no file {name!r}.")
    path = ctx.results_dir / record.id / name
    if not path.is_file():
        raise HTTPException(410, f"File {name!r} of diagnosis {diagnosis_id} was deleted.")
    return FileResponse(path, filename=name)


def audit_csv(events: list[AuditEvent]) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(AuditEvent.COLUMNS)
    writer.writerows(e.row() for e in events)
    return Response(
        out.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="thyrocad-audit.csv"'},
    )


@router.get("/health", tags=["service"], responses={503: {}})
def health(ctx: Ctx) -> JSONResponse:
    """Liveness check (no authentication): "ok", or 503 "degraded" with the problems (full
    disk, unwritable data folder, unreadable database)."""
    problems = health_problems(ctx)
    body = {"status": "degraded" if problems else "ok", "model_version": ctx.service.model_version}
    if problems:
        body["problems"] = problems
    return JSONResponse(body, status_code=503 if problems else 200)


@router.post("/api/v1/token", tags=["auth"], responses={401: {}, 429: {}})
def create_token(body: TokenRequest, request: Request, ctx: Ctx) -> TokenResponse:
    """Exchange a user name and password for a bearer token (rate-limited)."""
    check_login(request, ctx, body.username, body.password)
    token = auth.new_session(ctx.store, body.username, "bearer")
    ctx.audit(request, body.username, "token_created")
    return TokenResponse(access_token=token, expires_in_s=int(auth.TOKEN_TTL.total_seconds()))


@router.delete("/api/v1/token", tags=["auth"], status_code=204, responses={401: {}})
def revoke_token(request: Request, user: ApiReader, ctx: Ctx) -> Response:
    """Revoke the credential of this request: its bearer token, or its session cookie."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        ctx.store.remove_session(token.strip())
    elif cookie := request.cookies.get(COOKIE):
        ctx.store.remove_session(cookie)
    ctx.audit(request, user.name, "token_revoked")
    return Response(status_code=204)


@router.get("/api/v1/model", tags=["model"], responses={401: {}})
def model_card(user: ApiReader, ctx: Ctx) -> dict[str, Any]:
    """The model card: what the model was trained on, its validation numbers, its limits."""
    return ctx.service.model_card


@router.post(
    "/api/v1/diagnoses",
    tags=["diagnoses"],
    status_code=201,
    responses={400: {}, 401: {}, 403: {}, 413: {}, 415: {}, 422: {}, 507: {}},
    openapi_extra=UPLOAD_BODY,
)
async def create_diagnosis(
    request: Request, user: ApiDiagnoser, ctx: Ctx, wait_report: WaitReport = False
) -> dict[str, Any]:
    """Diagnose one uploaded study: a DICOM file (or one file per view, field `file`), or
    PNG/JPEG exports of views (fields `anterior`, `posterior`, or `file` for one view)."""
    record = await diagnose_upload(ctx, request, user)
    ctx.audit(request, user.name, "upload", record.id)
    return await _answer(ctx, record.id, wait_report)


@router.get("/api/v1/diagnoses", tags=["diagnoses"], responses={401: {}})
def list_diagnoses(
    user: ApiReader,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    status: Annotated[str, Query(pattern="^(|new|reviewed)$")] = "",
    call: Annotated[str, Query(pattern="^(|residual|non_residual|indeterminate)$")] = "",
    search: Annotated[str, Query(max_length=100)] = "",
) -> list[dict[str, Any]]:
    """The department's diagnoses, newest first (the worklist), optionally filtered."""
    worklist = Worklist(status=status, call=call, search=search)
    return [r.to_dict() for r in ctx.store.diagnoses(limit, offset, worklist)]


@router.get("/api/v1/diagnoses/{diagnosis_id}", tags=["diagnoses"], responses={401: {}, 404: {}})
async def read_diagnosis(
    diagnosis_id: str, request: Request, user: ApiReader, ctx: Ctx, wait_report: WaitReport = False
) -> dict:
    """One diagnosis with its result and its review history."""
    record = await anyio.to_thread.run_sync(get_record, ctx, diagnosis_id)
    ctx.audit(request, user.name, "view", record.id)
    return await _answer(ctx, record.id, wait_report)


@router.put(
    "/api/v1/diagnoses/{diagnosis_id}/review",
    tags=["diagnoses"],
    responses={401: {}, 403: {}, 404: {}},
)
def review_diagnosis(
    diagnosis_id: str, body: ReviewRequest, request: Request, user: ApiReviewer, ctx: Ctx
) -> dict[str, Any]:
    """Add the physician's review (agree or disagree, comment); earlier reviews are kept."""
    if not ctx.store.add_review(diagnosis_id, user.name, body.agree, body.comment):
        raise HTTPException(404, f"No diagnosis with id {diagnosis_id!r}.")
    ctx.audit(request, user.name, "review", diagnosis_id, "agree" if body.agree else "disagree")
    return get_record(ctx, diagnosis_id).to_dict()


@router.post(
    "/api/v1/diagnoses/{diagnosis_id}/rerun",
    tags=["diagnoses"],
    status_code=201,
    responses={401: {}, 403: {}, 404: {}, 422: {}, 507: {}},
)
async def rerun_diagnosis(
    diagnosis_id: str,
    body: RerunRequest,
    request: Request,
    user: ApiDiagnoser,
    ctx: Ctx,
    wait_report: WaitReport = False,
) -> dict[str, Any]:
    """Diagnose the kept views again with thyroid-bed centres set by the user: a new
    diagnosis (its `parent_id` names this one) flagged "bed set by user"."""
    parent = await anyio.to_thread.run_sync(get_record, ctx, diagnosis_id)
    record = await rerun_with_beds(ctx, parent, body.beds, user)
    ctx.audit(request, user.name, "rerun", record.id, f"of {parent.id}")
    return await _answer(ctx, record.id, wait_report)


async def _answer(ctx: ServerContext, diagnosis_id: str, wait_report: bool) -> dict[str, Any]:
    """The record as stored now; with `wait_report`, once its report is done (or after
    `REPORT_WAIT_S`)."""
    if wait_report:
        await anyio.to_thread.run_sync(ctx.reports.wait, diagnosis_id, REPORT_WAIT_S)
    return (await anyio.to_thread.run_sync(get_record, ctx, diagnosis_id)).to_dict()


@router.get(
    "/api/v1/diagnoses/{diagnosis_id}/files/{name}",
    tags=["diagnoses"],
    response_class=FileResponse,
    responses={401: {}, 404: {}, 410: {}},
)
def download(diagnosis_id: str, name: str, request: Request, user: ApiReader, ctx: Ctx):
    """A result file: figure or report PNG, report PDF, DICOM SR or Secondary Capture."""
    response = record_file(ctx, diagnosis_id, name)
    if name.endswith(".dcm") or name.startswith("report"):  # not the page's own figures
        ctx.audit(request, user.name, "download", diagnosis_id, name)
    return response


@router.get("/api/v1/audit", tags=["admin"], responses={401: {}, 403: {}})
def audit_log(
    request: Request,
    user: ApiAdmin,
    ctx: Ctx,
    format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
):
    """The audit log (sign-ins, uploads, views, reviews, user changes), newest first; CSV
    with `format=csv`."""
    events = ctx.store.audit_events()
    ctx.audit(request, user.name, "audit_export", detail=format)
    if format == "csv":
        return audit_csv(events)
    return [dict(zip(AuditEvent.COLUMNS, e.row(), strict=True)) for e in events]
