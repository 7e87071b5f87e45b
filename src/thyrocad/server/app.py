"""The FastAPI application: the physician's pages, the JSON API (same operations), the admin
pages and /health.

Everything but `/health` needs a user (`thyrocad.server.context`); what a user may do depends
on their role. Inference runs in a worker thread behind a capacity limiter so it never blocks
the event loop (PITFALLS 9.4); an upload is answered with the verdict, and its Grad-CAM,
figures, report and DICOM results follow from a small pool (`thyrocad.server.reports`). On
start the server recovers from a crash (orphan uploads and unfinished result folders removed,
unfinished reports marked failed). An unexpected error answers 500 with a reference and is
logged by type and place; no answer or log line quotes patient data.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from thyrocad.diagnosis.service import DiagnosisService
from thyrocad.io.privacy import describe_exception, protect_logs
from thyrocad.server import admin, api, pages
from thyrocad.server.analysis import recover
from thyrocad.server.context import (
    COOKIE,
    HERE,
    ApiReader,
    LoginRequired,
    ServerContext,
    ServerSettings,
)
from thyrocad.server.reports import Reports
from thyrocad.server.store import Store
from thyrocad.server.uploads import BodySizeLimit

__all__ = ["COOKIE", "ServerSettings", "create_app"]

logger = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # "no-referrer" makes Chromium send Origin: null
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "Cache-Control": "no-store",
}


def create_app(settings: ServerSettings, service: DiagnosisService | None = None) -> FastAPI:
    """The application for `settings`; loads the model bundle unless `service` is given."""
    protect_logs()
    threads = max(1, (os.cpu_count() or 1) // settings.inference_threads)  # per verdict
    service = service or DiagnosisService.from_bundle(settings.model_dir, threads=threads)
    ctx = ServerContext(
        settings=settings,
        service=service,
        store=Store(settings.db_path),
        limiter=anyio.CapacityLimiter(settings.inference_threads),
        reports=Reports(settings.report_workers),
    )
    recover(ctx)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        await anyio.to_thread.run_sync(ctx.reports.shutdown)  # finish the reports under way

    app = FastAPI(
        lifespan=lifespan,
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

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        reference = uuid.uuid4().hex[:12]
        logger.error("internal error %s on %s: %s", reference, request.url.path,
                     describe_exception(exc))  # fmt: skip
        return JSONResponse(
            {"detail": f"Internal error (reference {reference}); the server log has it."},
            status_code=500,
        )

    @app.get("/api/openapi.json", include_in_schema=False)
    def openapi(user: ApiReader) -> JSONResponse:
        return JSONResponse(app.openapi())

    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(admin.router)
    app.state.ctx = ctx
    app.state.store = ctx.store
    app.state.service = service
    return app
