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

from chain.rpc import Rpc, WrongChain, refuse_wrong_chain
from blockproof.settings import Settings, get_settings
from blockproof.verify import ChainClock
from blockproof.verify_fingerprint import Facts as VerifyFacts
from blockproof.errors import ConfigurationError
from blockproof.production import refuse_unfit_for_production
from producers import documents
from web.auth import LoginRequired, PasswordChangeRequired, resolve_secret
from web.people import StartupRefused
from web.facts import Facts
from web.limits import BodyLimit, ClientAddress, SecurityHeaders
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


MAX_ERRORS, MAX_ECHO = 20, 100


def _short(value):
    text = value if isinstance(value, str) else repr(value)
    return value if len(text) <= MAX_ECHO else None


def safe_errors(errors: list[dict]) -> list[dict]:
    """Validation errors as a client may see them: never more than 20, and never a large input echoed back (a
    99,999-item list comes back as its type and length)."""
    out = []
    for e in errors[:MAX_ERRORS]:
        item = {"type": e.get("type"), "loc": [p if isinstance(p, int) else str(p)[:MAX_ECHO] for p in e["loc"][:10]],
                "msg": str(e.get("msg", ""))[:300]}
        if "input" in e:
            shown = _short(e["input"])
            if shown is not None or e["input"] is None:
                item["input"] = shown
            else:
                size = f" of {len(e['input']):,} items" if isinstance(e["input"], (list, dict, tuple)) else \
                    f" of {len(e['input']):,} characters" if isinstance(e["input"], str) else ""
                item["input_omitted"] = f"{type(e['input']).__name__}{size} (too large to echo)"
        out.append(item)
    if len(errors) > MAX_ERRORS:
        out.append({"type": "more_errors", "loc": [], "msg": f"and {len(errors) - MAX_ERRORS:,} more errors"})
    return out


def create_app(settings: Settings | None = None, engine=None, *, announce=sys.stderr) -> FastAPI:
    settings = settings or get_settings()
    from blockproof import publishing
    from workers.actors import publish_jobs

    publishing.register(publish_jobs)  # the web's uploads, retries and revocations publish through it
    secret = resolve_secret(settings, announce=announce)
    try:  # the web upload puts credentials on chain: the same refusals as the CLI's
        refuse_unfit_for_production(settings)
        document_store = documents.store_for(settings)  # uploads write to it, the ZIP export reads it
    except ConfigurationError as exc:
        raise StartupRefused(str(exc)) from None
    if engine is None:
        from models.db import engine_for, migrate

        migrate(settings.database_url)
        engine = engine_for(settings.database_url)
    from web.people import ensure_first_admin

    ensure_first_admin(engine, settings, announce=announce)

    app = FastAPI(title="BlockProof Issuer", version="0.1.0", docs_url=None, redoc_url=None, openapi_url=None,
                  description="Monitoring UI and HTTP API of the credential issuance pipeline. Authenticate with "
                              "an API token (`Authorization: Bearer bpt_…`, made on your account page) or the "
                              "session cookie of /login plus the X-CSRF-Token header; the credential status and "
                              "verify endpoints are public.")
    app.state.settings = settings
    app.state.engine = engine
    app.state.document_store = document_store
    app.state.secret = secret
    app.state.rpc = Rpc.for_settings(settings, min(settings.rpc_timeout_seconds, 5.0))
    try:
        refuse_wrong_chain(app.state.rpc)
    except WrongChain as exc:
        raise StartupRefused(str(exc)) from None
    app.state.facts = Facts(settings, app.state.rpc, engine)
    app.state.chain_clock = ChainClock(ttl=1.0)
    app.state.verify_rate_limit = RateLimit(settings.verify_requests_per_minute)
    app.state.verify_facts = VerifyFacts()
    app.state.uploads = UploadStore(settings.upload_staging_dir)
    app.state.renderer = Renderer(HERE / "templates")
    app.state.metrics_registry = registry_for(engine, app.state.facts)

    app.add_middleware(SecurityHeaders, production=settings.production)
    app.add_middleware(BodyLimit, max_upload_bytes=settings.max_upload_mb * 1024 * 1024)
    app.add_middleware(ClientAddress)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired):
        if _wants_json(request) or request.headers.get("authorization"):
            # Bearer, never Basic: a browser asks for nothing
            headers = {"WWW-Authenticate": 'Bearer realm="blockproof"'} if exc.status == 401 else {}
            if exc.retry_after:
                headers["Retry-After"] = str(max(1, round(exc.retry_after)))
            return JSONResponse({"detail": exc.detail}, exc.status, headers=headers)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        from urllib.parse import quote

        return RedirectResponse(f"/login?next={quote(target, safe='')}", 303)

    @app.exception_handler(PasswordChangeRequired)
    async def _password_change(request: Request, exc: PasswordChangeRequired):
        if _wants_json(request):
            return JSONResponse({"detail": "you logged in with a one-time password: change it first at "
                                           "/account/password"}, 403)
        return RedirectResponse("/account/password", 303)

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
        errors = safe_errors(exc.errors())
        if _wants_json(request):
            return JSONResponse({"detail": errors}, 422)
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in errors)
        return request.app.state.renderer.page(request, "error.html", {"status": 422, "detail": detail}, status=422)

    from web import account, api, exports, pages, public

    app.include_router(api.router)
    app.include_router(account.router)
    app.include_router(exports.router)
    app.include_router(public.router)
    app.include_router(pages.router)
    return app


def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the web process (uvicorn). One worker: the upload store is on disk, so more are possible behind a
    shared temp directory, but one is plenty for the UI and the verify API."""
    import uvicorn

    from web.people import StartupRefused

    try:
        app = create_app()
    except StartupRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, proxy_headers=True,
                server_header=False, timeout_keep_alive=30)
