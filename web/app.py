"""The FastAPI application: pages, JSON API, /metrics, /healthz. `blockproof web` calls serve()."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from blockproof.rpc import Rpc
from blockproof.settings import Settings, get_settings
from blockproof.verify import ChainClock
from blockproof.verify_fingerprint import Facts as VerifyFacts
from blockproof.errors import ConfigurationError
from producers.salt import refuse_unfit_for_production
from web.auth import LoginRequired, StartupRefused, resolve_credentials
from web.facts import Facts
from web.limits import BodyLimit, SecurityHeaders
from web.metrics import registry_for
from web.ratelimit import RateLimit
from web.render import Renderer
from web.uploads import UploadStore

HERE = Path(__file__).resolve().parent
log = logging.getLogger("blockproof.web")


def _wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith("/api/") or path in ("/metrics", "/openapi.json") or \
        "application/json" in request.headers.get("accept", "")


def create_app(settings: Settings | None = None, engine=None, *, announce=sys.stderr) -> FastAPI:
    settings = settings or get_settings()
    credentials = resolve_credentials(settings, announce=announce)
    try:  # the web upload puts credentials on chain: the same refusals as the CLI's
        refuse_unfit_for_production(settings)
    except ConfigurationError as exc:
        raise StartupRefused(str(exc)) from None
    if engine is None:
        from models.db import engine_for, migrate

        migrate(settings.database_url)
        engine = engine_for(settings.database_url)

    app = FastAPI(title="BlockProof Issuer", version="0.1.0", docs_url=None, redoc_url=None,
                  description="Monitoring UI and HTTP API of the credential issuance pipeline. Authenticate with "
                              "HTTP Basic (operator or viewer) or the session cookie of /login plus the "
                              "X-CSRF-Token header; the credential status and verify endpoints are public.")
    app.state.settings = settings
    app.state.engine = engine
    app.state.credentials = credentials
    app.state.rpc = Rpc(settings.rpc_url, min(settings.rpc_timeout_seconds, 5.0))
    app.state.facts = Facts(settings, app.state.rpc)
    app.state.chain_clock = ChainClock(ttl=1.0)
    app.state.verify_rate_limit = RateLimit(settings.verify_requests_per_minute)
    app.state.verify_facts = VerifyFacts()
    app.state.uploads = UploadStore(settings.upload_staging_dir)
    app.state.renderer = Renderer(HERE / "templates")
    app.state.metrics_registry = registry_for(engine, app.state.facts)

    app.add_middleware(SessionMiddleware, secret_key=credentials.secret, session_cookie="blockproof_session",
                       max_age=12 * 3600, same_site="strict", https_only=settings.production)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodyLimit, max_upload_bytes=settings.max_upload_mb * 1024 * 1024)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired):
        if _wants_json(request):
            return JSONResponse({"detail": "authentication required (HTTP Basic or a /login session)"}, 401,
                                headers={"WWW-Authenticate": 'Basic realm="blockproof"'})
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        from urllib.parse import quote

        return RedirectResponse(f"/login?next={quote(target, safe='')}", 303)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException):
        if _wants_json(request):
            return JSONResponse({"detail": exc.detail}, exc.status_code, headers=getattr(exc, "headers", None))
        return request.app.state.renderer.page(request, "error.html", {"status": exc.status_code,
                                                                        "detail": exc.detail}, status=exc.status_code)

    from web import actions

    @app.exception_handler(actions.NotFound)
    async def _not_found(request: Request, exc: actions.NotFound):
        return await _http_error(request, HTTPException(404, str(exc)))

    @app.exception_handler(actions.Conflict)
    async def _conflict(request: Request, exc: actions.Conflict):
        return await _http_error(request, HTTPException(409, str(exc)))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        if _wants_json(request):
            return JSONResponse({"detail": exc.errors()}, 422)
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors())
        return request.app.state.renderer.page(request, "error.html", {"status": 422, "detail": detail}, status=422)

    from web import api, exports, pages, public

    app.include_router(api.router)
    app.include_router(exports.router)
    app.include_router(public.router)
    app.include_router(pages.router)
    return app


def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the web process (uvicorn). One worker: the upload store is on disk, so more are possible behind a
    shared temp directory, but one is plenty for the UI and the verify API."""
    import uvicorn

    from web.auth import StartupRefused

    try:
        app = create_app()
    except StartupRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, proxy_headers=True,
                server_header=False, timeout_keep_alive=30)
