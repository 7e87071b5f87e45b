"""Upload safety: a streaming body-size limit, content sniffing and server-named temp files.

FastAPI/Starlette have no body limit and parse multipart bodies before the endpoint runs
(PITFALLS 9.1), so `BodySizeLimit` counts the bytes as they stream in (never trusting
Content-Length alone) and answers 413 as soon as the limit is passed. The upload is copied in
chunks to a temp file whose name the server chooses; the client's file name is never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from thyrocad.errors import NotDicomError
from thyrocad.io.read import sniff

logger = logging.getLogger(__name__)

CHUNK = 1 << 20
DEFAULT_MAX_UPLOAD = 64 << 20


class UploadTooLarge(Exception):
    """The request body passed the configured limit."""


@dataclass(frozen=True)
class SavedUpload:
    """An upload copied to a server-named temp file."""

    path: Path
    sha256: str
    size: int
    kind: str  # "DICOM", "PNG" or "JPEG", sniffed from the content


class BodySizeLimit:
    """ASGI middleware: HTTP request bodies over `max_bytes` get 413, counted while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise UploadTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:  # whatever the app answers to the aborted body, the client gets 413
                if not started:
                    started = True
                    await self._reject(send)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except UploadTooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        body = json.dumps(
            {"detail": f"Request body larger than the limit of {self.max_bytes} bytes."}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def save_upload(upload: UploadFile, tmp_dir: Path, max_bytes: int) -> SavedUpload:
    """Copy `upload` in chunks to a new temp file in `tmp_dir`, hashing it and sniffing its type.

    Raises UploadTooLarge past `max_bytes` and NotDicomError for content that is neither DICOM
    nor PNG/JPEG; the temp file is removed on every failure.
    """
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="upload-", suffix=".bin")
    path = Path(name)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as fh:
            while chunk := await upload.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise UploadTooLarge
                digest.update(chunk)
                fh.write(chunk)
        try:
            kind = sniff(path)
        except NotDicomError:
            raise NotDicomError(
                "The upload is neither DICOM (no 'DICM' marker at byte 128) nor a PNG/JPEG "
                "image; upload a DICOM Part 10 file of the neck scan, or a PNG export of a view."
            ) from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return SavedUpload(path=path, sha256=digest.hexdigest(), size=size, kind=kind)
