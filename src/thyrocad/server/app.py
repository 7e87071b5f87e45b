"""The FastAPI application: the physician's page, the JSON API (same operations) and /health.

Everything but `/health` needs a user: a session cookie (HttpOnly, SameSite=Strict) for the
page, a bearer token (`POST /api/v1/token`) or that cookie for the API. Inference runs in a
worker thread behind a capacity limiter so it never blocks the event loop (PITFALLS 9.4).
"""

import logging
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import anyio
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from thyrocad.diagnosis.service import DiagnosisService, Outcome, Outputs
from thyrocad.errors import InputError, NotDicomError, ThyrocadError
from thyrocad.io.identity import patient_identity
from thyrocad.server import auth
from thyrocad.server.store import DiagnosisRecord, Store, utc_now
from thyrocad.server.uploads import DEFAULT_MAX_UPLOAD, BodySizeLimit, UploadTooLarge, save_upload

logger = logging.getLogger(__name__)

HERE = Path(__file__).parent
COOKIE = "thyrocad_session"
MAX_FORM_FIELDS = 10
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # "no-referrer" makes Chromium send Origin: null
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class ServerSettings:
    """Where the server keeps its data and how it treats uploads.

    `data_dir` holds `results/<diagnosis id>/` (images, PDF, DICOM SR/SC) and `tmp/` (uploads
    while they are analysed, removed afterwards). `secure_cookies` marks the session cookie
    Secure: switch it on behind a TLS reverse proxy.
    """

    model_dir: Path
    db_path: Path
    data_dir: Path
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD
    store_patient_ids: bool = False
    secure_cookies: bool = False
    inference_threads: int = 1


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


class LoginRequired(Exception):
    """A page was asked for without a valid session: redirect to the login page."""


def create_app(settings: ServerSettings, service: DiagnosisService | None = None) -> FastAPI:
    """The application for `settings`; loads the model bundle unless `service` is given."""
    service = service or DiagnosisService.from_bundle(settings.model_dir)
    store = Store(settings.db_path)
    limiter = anyio.CapacityLimiter(settings.inference_threads)
    login_limiter = auth.LoginLimiter()
    templates = Jinja2Templates(directory=HERE / "templates")
    results_dir = settings.data_dir / "results"
    tmp_dir = settings.data_dir / "tmp"
    results_dir.mkdir(parents=True, exist_ok=True)
    tmp_dir.mkdir(parents=True, exist_ok=True)

    app = FastAPI(
        title="thyrocad",
        summary="Residual thyroid tissue on planar I-131 neck scintigrams (research use only)",
        version=service.model_version,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse("/login", status_code=303)

    # --- who is asking ------------------------------------------------------------------------

    def api_user(request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        user = None
        if scheme.lower() == "bearer" and token:
            user = store.session_user(token.strip(), "bearer")
        elif cookie := request.cookies.get(COOKIE):
            user = store.session_user(cookie, "cookie")
        if user is None:
            raise HTTPException(
                401,
                "Not authenticated: send 'Authorization: Bearer <token>' (POST /api/v1/token).",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return user

    def page_user(request: Request) -> str:
        cookie = request.cookies.get(COOKIE)
        user = store.session_user(cookie, "cookie") if cookie else None
        if user is None:
            raise LoginRequired
        return user

    def same_origin(request: Request) -> None:
        """Refuse cross-site form posts (defence in depth on top of SameSite=Strict)."""
        origin = request.headers.get("origin")
        if origin and urlsplit(origin).netloc != request.headers.get("host"):
            raise HTTPException(403, "Cross-site form submission refused.")

    ApiUser = Annotated[str, Depends(api_user)]
    PageUser = Annotated[str, Depends(page_user)]

    def check_login(request: Request, username: str, password: str) -> None:
        client = request.client.host if request.client else "?"
        wait = login_limiter.retry_after(client, username)
        if wait > 0:
            raise HTTPException(
                429,
                f"Too many failed logins; try again in {int(wait) + 1} s.",
                headers={"Retry-After": str(int(wait) + 1)},
            )
        if not auth.authenticate(store, username, password):
            login_limiter.failed(client, username)
            logger.warning("failed login from %s", client)
            raise HTTPException(401, "Wrong user name or password.")

    # --- diagnosis ----------------------------------------------------------------------------

    async def diagnose(request: Request, user: str) -> DiagnosisRecord:
        try:
            form = await request.form(max_files=1, max_fields=MAX_FORM_FIELDS)
        except (MultiPartException, StarletteHTTPException) as exc:  # Starlette wraps the first
            detail = getattr(exc, "detail", None) or getattr(exc, "message", "")
            raise HTTPException(400, f"Malformed multipart body: {detail}") from None
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise HTTPException(
                    422, "Send the study as the multipart file field 'file' (DICOM or PNG)."
                )
            try:
                saved = await save_upload(upload, tmp_dir, settings.max_upload_bytes)
            except UploadTooLarge:
                raise HTTPException(
                    413, f"Upload larger than the limit of {settings.max_upload_bytes} bytes."
                ) from None
            except NotDicomError as exc:
                raise HTTPException(415, str(exc)) from None
        finally:
            await form.close()
        diagnosis_id = uuid.uuid4().hex
        out_dir = results_dir / diagnosis_id
        try:
            dicom = out_dir if saved.kind == "DICOM" else None
            outputs = Outputs(dicom=dicom, figures=out_dir)
            outcome: Outcome = await anyio.to_thread.run_sync(
                service.diagnose, [saved.path], outputs, limiter=limiter
            )
            patient = (
                patient_identity(saved.path)
                if settings.store_patient_ids and saved.kind == "DICOM"
                else None
            )
        except ThyrocadError as exc:
            shutil.rmtree(out_dir, ignore_errors=True)
            message = str(exc).replace(str(saved.path), "the upload")
            status = 415 if isinstance(exc, NotDicomError) else 422
            kind = "unusable input" if isinstance(exc, InputError) else "cannot analyse"
            logger.info("upload refused (%s): %s", type(exc).__name__, message)
            raise HTTPException(status, f"{kind}: {message}") from None
        finally:
            saved.path.unlink(missing_ok=True)
        record = DiagnosisRecord(
            id=diagnosis_id,
            created_utc=utc_now(),
            username=user,
            model_version=service.model_version,
            input_sha256=saved.sha256,
            input_kind=saved.kind,
            verdict=outcome.diagnosis.verdict,
            probability=outcome.diagnosis.probability,
            result=outcome.summary(),
            patient=patient,
            review_agree=None,
            review_comment=None,
            review_user=None,
            review_utc=None,
        )
        await anyio.to_thread.run_sync(store.add_diagnosis, record)  # may wait for the write lock
        logger.info("diagnosis %s by %s: %s", diagnosis_id, user, outcome.diagnosis.verdict)
        return record

    def get_record(diagnosis_id: str) -> DiagnosisRecord:
        record = store.diagnosis(diagnosis_id)
        if record is None:
            raise HTTPException(404, f"No diagnosis with id {diagnosis_id!r}.")
        return record

    def record_file(diagnosis_id: str, name: str) -> FileResponse:
        record = get_record(diagnosis_id)
        files = record.result.get("files", {})
        if name not in files.values():
            raise HTTPException(404, f"Diagnosis {diagnosis_id} has no file {name!r}.")
        path = results_dir / record.id / name
        if not path.is_file():
            raise HTTPException(410, f"File {name!r} of diagnosis {diagnosis_id} was deleted.")
        return FileResponse(path, filename=name)

    # --- unauthenticated ----------------------------------------------------------------------

    @app.get("/health", tags=["service"])
    def health() -> dict[str, str]:
        """Liveness check (no authentication): the server answers and its store is readable."""
        store.count_diagnoses()
        return {"status": "ok", "model_version": service.model_version}

    # --- JSON API -----------------------------------------------------------------------------

    @app.get("/api/openapi.json", include_in_schema=False)
    def openapi(user: ApiUser) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.post("/api/v1/token", tags=["auth"], responses={401: {}, 429: {}})
    def create_token(body: TokenRequest, request: Request) -> TokenResponse:
        """Exchange a user name and password for a bearer token (rate-limited)."""
        check_login(request, body.username, body.password)
        token = auth.new_session(store, body.username, "bearer")
        return TokenResponse(access_token=token, expires_in_s=int(auth.TOKEN_TTL.total_seconds()))

    @app.delete("/api/v1/token", tags=["auth"], status_code=204, responses={401: {}})
    def revoke_token(request: Request, user: ApiUser) -> Response:
        """Revoke the bearer token of this request."""
        _, _, token = request.headers.get("authorization", "").partition(" ")
        store.remove_session(token.strip())
        return Response(status_code=204)

    @app.get("/api/v1/model", tags=["model"], responses={401: {}})
    def model_card(user: ApiUser) -> dict[str, Any]:
        """The model card: what the model was trained on, its validation numbers, its limits."""
        return service.model_card

    @app.post(
        "/api/v1/diagnoses",
        tags=["diagnoses"],
        status_code=201,
        responses={400: {}, 401: {}, 413: {}, 415: {}, 422: {}},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {"file": {"type": "string", "format": "binary"}},
                        }
                    }
                },
            }
        },
    )
    async def create_diagnosis(request: Request, user: ApiUser) -> dict[str, Any]:
        """Diagnose one uploaded study (DICOM file, or PNG/JPEG export of one view)."""
        return (await diagnose(request, user)).to_dict()

    @app.get("/api/v1/diagnoses", tags=["diagnoses"], responses={401: {}})
    def list_diagnoses(
        user: ApiUser,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    ) -> list[dict[str, Any]]:
        """Past diagnoses, newest first."""
        return [r.to_dict() for r in store.diagnoses(limit, offset)]

    @app.get("/api/v1/diagnoses/{diagnosis_id}", tags=["diagnoses"], responses={401: {}, 404: {}})
    def read_diagnosis(diagnosis_id: str, user: ApiUser) -> dict[str, Any]:
        """One diagnosis with its result and review."""
        return get_record(diagnosis_id).to_dict()

    @app.put(
        "/api/v1/diagnoses/{diagnosis_id}/review", tags=["diagnoses"], responses={401: {}, 404: {}}
    )
    def review_diagnosis(diagnosis_id: str, body: ReviewRequest, user: ApiUser) -> dict[str, Any]:
        """Record the physician's review (agree or disagree, optional comment)."""
        if not store.set_review(diagnosis_id, user, body.agree, body.comment):
            raise HTTPException(404, f"No diagnosis with id {diagnosis_id!r}.")
        return get_record(diagnosis_id).to_dict()

    @app.get(
        "/api/v1/diagnoses/{diagnosis_id}/files/{name}",
        tags=["diagnoses"],
        response_class=FileResponse,
        responses={401: {}, 404: {}, 410: {}},
    )
    def download(diagnosis_id: str, name: str, user: ApiUser) -> FileResponse:
        """A result file: overlay/report PNG, report PDF, DICOM SR or Secondary Capture."""
        return record_file(diagnosis_id, name)

    # --- pages --------------------------------------------------------------------------------

    def page(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        return templates.TemplateResponse(request, name, context, status_code=status_code)

    @app.get("/login", include_in_schema=False)
    def login_page(request: Request) -> Response:
        return page(request, "login.html", error=None)

    @app.post("/login", include_in_schema=False, dependencies=[Depends(same_origin)])
    async def login(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
        username, password = str(form.get("username", "")), str(form.get("password", ""))
        try:  # argon2 verification is CPU work: keep it off the event loop
            await anyio.to_thread.run_sync(check_login, request, username, password)
        except HTTPException as exc:
            return page(request, "login.html", status_code=exc.status_code, error=exc.detail)
        response = RedirectResponse("/", status_code=303)
        token = await anyio.to_thread.run_sync(auth.new_session, store, username, "cookie")
        response.set_cookie(
            COOKIE,
            token,
            max_age=int(auth.SESSION_TTL.total_seconds()),
            httponly=True,
            samesite="strict",
            secure=settings.secure_cookies,
        )
        return response

    @app.post("/logout", include_in_schema=False, dependencies=[Depends(same_origin)])
    def logout(request: Request) -> Response:
        if cookie := request.cookies.get(COOKIE):
            store.remove_session(cookie)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, httponly=True, samesite="strict")
        return response

    @app.get("/", include_in_schema=False)
    def home(request: Request, user: PageUser) -> Response:
        return page(request, "index.html", user=user, card=service.model_card, error=None)

    @app.post("/upload", include_in_schema=False, dependencies=[Depends(same_origin)])
    async def upload_page(request: Request, user: PageUser) -> Response:
        try:
            record = await diagnose(request, user)
        except HTTPException as exc:
            return page(
                request,
                "index.html",
                status_code=exc.status_code,
                user=user,
                card=service.model_card,
                error=exc.detail,
            )
        return RedirectResponse(f"/diagnoses/{record.id}", status_code=303)

    @app.get("/diagnoses/{diagnosis_id}", include_in_schema=False)
    def diagnosis_page(request: Request, diagnosis_id: str, user: PageUser) -> Response:
        record = get_record(diagnosis_id)
        return page(
            request, "diagnosis.html", user=user, d=record.to_dict(), card=service.model_card
        )

    @app.post(
        "/diagnoses/{diagnosis_id}/review",
        include_in_schema=False,
        dependencies=[Depends(same_origin)],
    )
    async def review_page(request: Request, diagnosis_id: str, user: PageUser) -> Response:
        form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
        agree = form.get("agree")
        if agree not in ("yes", "no"):
            raise HTTPException(422, "Choose agree or disagree.")
        comment = str(form.get("comment", ""))[:2000]
        saved = await anyio.to_thread.run_sync(
            store.set_review, diagnosis_id, user, agree == "yes", comment
        )
        if not saved:
            raise HTTPException(404, f"No diagnosis with id {diagnosis_id!r}.")
        return RedirectResponse(f"/diagnoses/{diagnosis_id}", status_code=303)

    @app.get("/history", include_in_schema=False)
    def history_page(
        request: Request, user: PageUser, offset: Annotated[int, Query(ge=0)] = 0
    ) -> Response:
        records = [r.to_dict() for r in store.diagnoses(100, offset)]
        return page(
            request, "history.html", user=user, records=records, offset=offset,
            total=store.count_diagnoses(),
        )  # fmt: skip

    app.state.store = store
    app.state.service = service
    return app
