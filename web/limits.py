"""Request body limits (413 before the body is read when Content-Length says so, or as soon as a streamed
body passes the limit), security headers on every response, and the client's address for the audit log."""
from __future__ import annotations

import json
import re

from starlette.exceptions import HTTPException

from models.audit import client_ip

UPLOAD_PATHS = ("/upload", "/api/uploads")
OTHER_LIMIT = 1024 * 1024


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"the request is larger than the limit of {limit // (1024 * 1024)} MB "
                              "(BLOCKPROOF_MAX_UPLOAD_MB for uploads)")


class BodyLimit:
    def __init__(self, app, *, max_upload_bytes: int):
        self.app, self.max_upload_bytes = app, max_upload_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.max_upload_bytes if scope["path"].startswith(UPLOAD_PATHS) else OTHER_LIMIT
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return await self._refuse(send, limit)
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send, limit)

    @staticmethod
    async def _refuse(send, limit: int):
        body = json.dumps({"detail": BodyTooLarge(limit).detail}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


HSTS = b"max-age=31536000; includeSubDomains"
# answers anyone may cache: the public verify API (unchanged), health, static files
PUBLIC_PATHS = re.compile(r"^/(static/.*|healthz|api/credentials/[^/]+/(status|verify))$")


def cache_control(path: str) -> bytes | None:
    """no-store for everything that may carry an authenticated answer; the public read path keeps its own."""
    return None if PUBLIC_PATHS.match(path) else b"no-store"


class SecurityHeaders:
    def __init__(self, app, *, production: bool = False):
        self.app, self.production = app, production

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        no_store = cache_control(scope["path"])

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                            (b"referrer-policy", b"same-origin"), (b"content-security-policy", CSP.encode())]
                if self.production:
                    headers.append((b"strict-transport-security", HSTS))
                if no_store and not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", no_store))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class ClientAddress:
    """Names the client's address for the audit rows written while serving its request (models.audit)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        client = scope.get("client")
        reset = client_ip.set(client[0] if client else "")
        try:
            await self.app(scope, receive, send)
        finally:
            client_ip.reset(reset)
