"""Uploads in, diagnosis records out: the flow behind `POST /api/v1/diagnoses`, the upload
form, the bed re-run, plus the start-up recovery and the health check.

An upload is one study: one file, several files of one study (field `file`, up to
`MAX_FILES`), or PNG/JPEG exports of the anterior and posterior views (fields `anterior`,
`posterior`). The files are copied to server-named temp files, diagnosed in a worker thread
behind the inference limiter (PITFALLS 9.4), and removed whatever happens. The results go to
`results/<id>/` with the kept views (`StudySource.save`) for a re-run with a bed set by a
physician; a diagnosis that fails leaves no folder and no row. A full disk is a 507 with a
clear message, never a bare 500; no error body quotes a header value or a server path.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import shutil
import sqlite3
import uuid
from collections.abc import Mapping
from pathlib import Path

import anyio
from fastapi import HTTPException, Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from thyrocad.diagnosis.service import Outcome, Outputs
from thyrocad.diagnosis.source import StudySource
from thyrocad.errors import ConfigError, InputError, NotDicomError, ThyrocadError
from thyrocad.intake import field_beds
from thyrocad.server.context import ServerContext
from thyrocad.server.records import DiagnosisRecord, User, utc_now
from thyrocad.server.reports import FAILED, PENDING, READY
from thyrocad.server.uploads import SavedUpload, UploadTooLarge, save_upload
from thyrocad.study import Study, View

logger = logging.getLogger(__name__)

MAX_FILES = 4
MAX_FORM_FIELDS = 10
FILE_FIELDS = {"file": None, "anterior": View.ANTERIOR, "posterior": View.POSTERIOR}
DISK_FULL = (
    "The server's disk is full or almost full; nothing was kept. Ask IT to free space in "
    "the data folder, then upload again."
)


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether `exc` (or what caused it) is a full disk or exceeded quota."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def free_bytes(folder: Path) -> int:
    return shutil.disk_usage(folder).free


def check_free_space(ctx: ServerContext) -> None:
    """507 while the data folder has less than the configured reserve free."""
    if free_bytes(ctx.settings.data_dir) < ctx.settings.min_free_bytes:
        raise HTTPException(507, DISK_FULL)


async def receive_uploads(
    ctx: ServerContext, request: Request
) -> list[tuple[SavedUpload, View | None]]:
    """The study's files copied to temp files, each with the view its form field names."""
    try:
        form = await request.form(max_files=MAX_FILES, max_fields=MAX_FORM_FIELDS)
    except (MultiPartException, StarletteHTTPException) as exc:  # Starlette wraps the first
        detail = getattr(exc, "detail", None) or getattr(exc, "message", "")
        raise HTTPException(400, f"Malformed multipart body: {detail}") from None
    saved: list[tuple[SavedUpload, View | None]] = []
    try:
        items = [
            (item, view)
            for name, view in FILE_FIELDS.items()
            for item in form.getlist(name)
            if isinstance(item, UploadFile) and (item.filename or item.size)  # not an empty input
        ]
        if not items:
            raise HTTPException(
                422,
                "Send the study as the multipart file field 'file' (DICOM or PNG), or PNG/JPEG "
                "exports as the fields 'anterior' and 'posterior'.",
            )
        limit = ctx.settings.max_upload_bytes
        for item, view in items:
            saved.append((await save_upload(item, ctx.tmp_dir, limit), view))
    except BaseException as exc:
        for upload, _ in saved:
            upload.path.unlink(missing_ok=True)
        raise _upload_error(exc, ctx) from None
    finally:
        await form.close()
    return saved


def _upload_error(exc: BaseException, ctx: ServerContext) -> BaseException:
    if isinstance(exc, UploadTooLarge):
        return HTTPException(
            413, f"Upload larger than the limit of {ctx.settings.max_upload_bytes} bytes."
        )
    if isinstance(exc, NotDicomError):
        return HTTPException(415, str(exc))
    if is_disk_full(exc):
        logger.error("upload refused: disk full")
        return HTTPException(507, DISK_FULL)
    return exc


def analysis_error(exc: BaseException, paths: list[Path]) -> BaseException:
    """The HTTP error for a failed diagnosis (or `exc` itself: an unexpected bug)."""
    if is_disk_full(exc):
        logger.error("diagnosis failed: disk full")
        return HTTPException(507, DISK_FULL)
    if isinstance(exc, ThyrocadError):
        message = str(exc)
        for path in paths:
            message = message.replace(str(path), "the upload")
        status = 415 if isinstance(exc, NotDicomError) else 422
        kind = "unusable input" if isinstance(exc, InputError) else "cannot analyse"
        logger.info("upload refused (%s): %s", type(exc).__name__, message)
        return HTTPException(status, f"{kind}: {message}")
    return exc


async def diagnose_upload(ctx: ServerContext, request: Request, user: User) -> DiagnosisRecord:
    """Diagnose the study in the request's multipart body and store its record."""
    check_free_space(ctx)
    uploads = await receive_uploads(ctx, request)
    paths = [u.path for u, _ in uploads]
    try:
        views = [v for _, v in uploads]
        record = await _run(
            ctx,
            user,
            lambda outputs: ctx.service.diagnose(paths, outputs, views=views),
            input_sha256=_input_digest([u for u, _ in uploads]),
            input_kind="+".join(dict.fromkeys(u.kind for u, _ in uploads)),
            errors_about=paths,
        )
    finally:
        for path in paths:
            path.unlink(missing_ok=True)
    logger.info("diagnosis %s by %s: %s", record.id, user.name, record.call)
    return record


async def rerun_with_beds(
    ctx: ServerContext, parent: DiagnosisRecord, beds: Mapping[str, tuple[float, float]],
    user: User, *, view_pixels: bool = False,
) -> DiagnosisRecord:  # fmt: skip
    """Diagnose `parent`'s kept views again with thyroid-bed centres set by `user`: in the
    file's pixels (as `predict --bed` and a diagnosis's `bed_rc`), or with `view_pixels` in
    the pixels of the view the page shows (for a whole-body sweep, its neck field)."""
    check_free_space(ctx)
    try:
        source = StudySource.load(ctx.results_dir / parent.id)
        if view_pixels:
            beds = _in_file_pixels(source.study, beds)
        field_beds(source.study, beds)  # a view the study lacks, a bed outside its view
    except (InputError, ConfigError) as exc:
        raise HTTPException(422, f"cannot re-run: {exc}") from None
    record = await _run(
        ctx,
        user,
        lambda outputs: ctx.service.diagnose_source(source, outputs, beds),
        input_sha256=parent.input_sha256,
        input_kind=parent.input_kind,
        parent=parent,
        beds=beds,
    )
    logger.info("diagnosis %s re-ran %s with a bed set by %s", record.id, parent.id, user.name)
    return record


def _in_file_pixels(
    study: Study, beds: Mapping[str, tuple[float, float]]
) -> dict[str, tuple[float, float]]:
    """Bed centres in each view's own pixels moved into the file's (`ViewImage.origin_rc`)."""
    origins = {im.view.value: im.origin_rc for im in study.images}
    return {
        view: (row + origins.get(view, (0, 0))[0], col + origins.get(view, (0, 0))[1])
        for view, (row, col) in beds.items()
    }


async def _run(ctx: ServerContext, user: User, diagnose, *, input_sha256: str, input_kind: str,
               parent: DiagnosisRecord | None = None, beds=None, errors_about=()):  # fmt: skip
    """Run `diagnose(outputs)` (the verdict and the kept input only) in a worker thread, write
    the record, then queue its report (`thyrocad.server.reports`); on any failure before the
    record is stored, neither it nor `results/<id>/` is left behind."""
    diagnosis_id = uuid.uuid4().hex
    out_dir = ctx.results_dir / diagnosis_id
    try:
        outcome: Outcome = await anyio.to_thread.run_sync(
            diagnose, Outputs(keep_input=out_dir), limiter=ctx.limiter
        )
        record = _record(ctx, diagnosis_id, user, outcome, input_sha256, input_kind, parent, beds)
        await anyio.to_thread.run_sync(ctx.store.add_diagnosis, record)  # may wait for the lock
    except BaseException as exc:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise analysis_error(exc, list(errors_about)) from None
    ctx.reports.submit(diagnosis_id, lambda: _make_report(ctx, record, outcome, out_dir))
    return record


REPORT_STAGING = ".report"  # where a report is written until it is whole


def _make_report(ctx: ServerContext, record: DiagnosisRecord, outcome: Outcome,
                 out_dir: Path) -> None:  # fmt: skip
    """Render the report of a stored diagnosis into a staging folder, move its files into
    `out_dir` and record it "ready"; on failure remove them (a full disk gets its space back)
    and record it "failed"."""
    staging = out_dir / REPORT_STAGING
    outputs = Outputs(dicom=staging, figures=staging, identity=ctx.settings.store_patient_ids)
    try:
        ctx.service.render(outcome, outputs)
        for key, path in outcome.files.items():
            outcome.files[key] = path.replace(out_dir / path.name)
        shutil.rmtree(staging, ignore_errors=True)
        result = {**record.result, **outcome.summary(), "report": READY}
    except Exception as exc:  # any failure leaves a usable verdict and says so
        shutil.rmtree(staging, ignore_errors=True)
        reason = "the disk is full" if is_disk_full(exc) else type(exc).__name__
        logger.error("report of diagnosis %s failed: %s", record.id, reason)
        note = f"The figures and report could not be made ({reason}); re-run the diagnosis."
        result = {**record.result, "files": {}, "report": FAILED,
                  "notes": [*record.result.get("notes", []), note]}  # fmt: skip
    try:
        ctx.store.update_result(record.id, result)
    except Exception as exc:
        logger.error("report of diagnosis %s not recorded: %s", record.id, type(exc).__name__)


def _record(ctx: ServerContext, diagnosis_id: str, user: User, outcome: Outcome,
            input_sha256: str, input_kind: str, parent: DiagnosisRecord | None,
            beds) -> DiagnosisRecord:  # fmt: skip
    summary = {**outcome.summary(), "report": PENDING}
    if beds:
        summary["beds_set_by_user"] = {
            "by": user.name,
            **{view: [float(r), float(c)] for view, (r, c) in beds.items()},
        }
    patient = None
    if parent is not None:
        patient = parent.patient
    elif ctx.settings.store_patient_ids:
        patient = outcome.source.identity
    return DiagnosisRecord(
        id=diagnosis_id,
        created_utc=utc_now(),
        username=user.name,
        model_version=ctx.service.model_version,
        input_sha256=input_sha256,
        input_kind=input_kind,
        verdict=outcome.diagnosis.verdict,
        call=summary["reading"]["call"],
        probability=outcome.diagnosis.probability,
        result=summary,
        patient=patient,
        parent_id=parent.id if parent is not None else None,
    )


def _input_digest(uploads: list[SavedUpload]) -> str:
    """The upload's SHA-256; for several files, the SHA-256 of their SHA-256s in order."""
    if len(uploads) == 1:
        return uploads[0].sha256
    return hashlib.sha256("".join(u.sha256 for u in uploads).encode()).hexdigest()


# --- start-up recovery and health ------------------------------------------------------------


UNFINISHED_NOTE = (
    "The server stopped before the figures and report were made; re-run the diagnosis."
)


def recover(ctx: ServerContext) -> None:
    """After a crash (kill -9, power loss): remove orphan uploads from `tmp/` and result
    folders without a database row (analyses that never finished), and mark reports the stop
    interrupted as failed."""
    ctx.results_dir.mkdir(parents=True, exist_ok=True)
    ctx.tmp_dir.mkdir(parents=True, exist_ok=True)
    uploads = [p for p in ctx.tmp_dir.iterdir()]
    for path in uploads:
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    known = ctx.store.diagnosis_ids()
    orphans = [p for p in ctx.results_dir.iterdir() if p.name not in known]
    for path in orphans:
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    for staging in ctx.results_dir.glob(f"*/{REPORT_STAGING}"):
        shutil.rmtree(staging, ignore_errors=True)
    unfinished = ctx.store.fail_pending_reports(UNFINISHED_NOTE)
    if unfinished:
        logger.warning("start-up recovery: %d report(s) left unfinished by a stop", unfinished)
    if uploads or orphans:
        logger.warning(
            "start-up recovery: removed %d orphan upload(s) and %d unfinished result folder(s)",
            len(uploads),
            len(orphans),
        )


def health_problems(ctx: ServerContext) -> list[str]:
    """What keeps the server from diagnosing: an unreadable database, too little free disk,
    a data folder that cannot be written. Empty when healthy."""
    problems = []
    try:
        ctx.store.count_diagnoses()
    except sqlite3.Error:
        problems.append("database unreadable")
    free = free_bytes(ctx.settings.data_dir)
    if free < ctx.settings.min_free_bytes:
        problems.append(
            f"disk almost full: {free >> 20} MiB free, uploads need "
            f"{ctx.settings.min_free_bytes >> 20} MiB"
        )
    probe = ctx.tmp_dir / f"health-{uuid.uuid4().hex}"
    try:
        probe.write_bytes(b"\0" * 4096)
    except OSError as exc:
        problems.append(f"data folder not writable ({exc.strerror or type(exc).__name__})")
    finally:
        probe.unlink(missing_ok=True)
    return problems
