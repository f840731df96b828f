"""The evidence web page: list runs, show one (summary, coverage, verification), download files.

Read-only (GET and HEAD only) and closed by default (see `auth`). Every file is fetched through
`EvidenceStore.read`, which serves only a run's manifest and the files that manifest lists, so no
URL can name anything else; requests whose raw path carries encoded separators or dots are
refused before routing, as are `.` and `..` segments. Every response carries a strict CSP and
no-sniff/frame-deny headers, and every download is an attachment of type octet-stream, so a file
from AWS is never rendered by the browser.

    app = make_app(settings)                    # an ASGI app
    server = serve_in_thread(app, "127.0.0.1", 8080)   # or start_for_serve(settings)
    ...
    server.stop()
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import uvicorn
from botocore.exceptions import BotoCoreError, ClientError
from jinja2 import Environment
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from reporter.config import Settings
from reporter.errors import UsageError
from reporter.evidence import (
    MANIFEST,
    EvidenceError,
    EvidenceStore,
    RunNotFound,
    open_store,
)
from reporter.render.environment import make_environment

from .auth import Access

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
_ENCODED_TRICKS = (b"%2e", b"%2f", b"%5c", b"%00", b"\\")


def _bad_path(scope: Scope) -> bool:
    raw = bytes(scope.get("raw_path") or scope["path"].encode()).lower()
    if any(trick in raw for trick in _ENCODED_TRICKS):
        return True
    return any(segment in (".", "..") for segment in scope["path"].split("/"))


class Guard:
    """ASGI middleware: security headers on every response, then who, then what may be asked."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = False

        async def send_secured(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        try:
            refusal = await self._refusal(scope)
            await (refusal or self.app)(scope, receive, send_secured)
        except Exception:
            # Starlette's error middleware answers a route's exception inside this one; this
            # answers the rest (the sign-in check included), so no 500 goes out without the
            # headers. Re-raised so that uvicorn logs it.
            if not started:
                error = PlainTextResponse("Internal server error.\n", status_code=500)
                await error(scope, receive, send_secured)
            raise

    async def _refusal(self, scope: Scope) -> Response | None:
        if not self.access.configured:
            return PlainTextResponse(
                "The evidence page is closed: no users and no trusted proxy are configured "
                "(evidence.web.users or evidence.web.trusted_header).\n",
                status_code=403,
            )
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client")
        user = await run_in_threadpool(self.access.user, headers, client[0] if client else None)
        if user is None:
            challenge = (
                {"WWW-Authenticate": 'Basic realm="evidence", charset="UTF-8"'}
                if self.access.uses_passwords
                else {}
            )
            return PlainTextResponse("Sign in to see the evidence.\n", 401, headers=challenge)
        scope.setdefault("state", {})["user"] = user
        if scope["method"] not in ("GET", "HEAD"):
            return PlainTextResponse("Read-only.\n", 405, headers={"Allow": "GET, HEAD"})
        if _bad_path(scope):
            return PlainTextResponse("Bad path.\n", 400)
        return None


def make_app(settings: Settings, store: EvidenceStore | None = None) -> ASGIApp:
    """The evidence page over `store` (default: the configured one), as an ASGI app."""
    pages = _Pages(store or open_store(settings), make_environment(settings.reports.template_dir))
    app = Starlette(
        routes=[
            Route("/", pages.index),
            Route("/style.css", pages.style),
            Route("/favicon.ico", lambda request: Response(status_code=204)),
            Route("/runs/{run_id}", pages.run),
            Route("/runs/{run_id}/zip", pages.export),
            Route("/runs/{run_id}/files/{path:path}", pages.download),
        ],
        exception_handlers={
            RunNotFound: pages.not_found,
            EvidenceError: pages.conflict,
            ClientError: pages.unavailable,
            BotoCoreError: pages.unavailable,
        },
    )
    return Guard(app, Access(settings.evidence.web))


def _attachment(name: str, data: bytes) -> Response:
    filename = name.rsplit("/", 1)[-1]
    ascii_name = "".join(c if c.isalnum() or c in "._-" else "_" for c in filename)
    return Response(
        data,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{ascii_name}"; '
            f"filename*=UTF-8''{quote(filename)}"
        },
    )


class _Pages:
    def __init__(self, store: EvidenceStore, env: Environment) -> None:
        self.store = store
        self.env = env

    def _page(self, request: Request, template: str, status: int = 200, **values: Any) -> Response:
        html = self.env.get_template(f"web/{template}").render(
            base=request.scope.get("root_path", ""),
            user=request.scope.get("state", {}).get("user", ""),
            location=self.store.location,
            **values,
        )
        return HTMLResponse(html, status_code=status)

    def index(self, request: Request) -> Response:
        return self._page(request, "runs.html.j2", runs=self.store.runs())

    def style(self, request: Request) -> Response:
        source = self.env.loader.get_source(self.env, "web/web.css")[0] if self.env.loader else ""
        return Response(source, media_type="text/css")

    def run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        manifest = self.store.manifest(run_id)
        return self._page(
            request,
            "run.html.j2",
            run_id=run_id,
            manifest=manifest,
            view=_run_view(manifest.data),
            verification=self.store.verify(run_id),
        )

    def export(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        return _attachment(f"{run_id}.zip", self.store.export(run_id))

    def download(self, request: Request) -> Response:
        run_id, path = request.path_params["run_id"], request.path_params["path"]
        data = self.store.read(run_id, path)
        return _attachment(path if path != MANIFEST else f"{run_id}-{MANIFEST}", data)

    def not_found(self, request: Request, exc: Exception) -> Response:
        return self._page(request, "error.html.j2", 404, title="Not found", message=str(exc))

    def conflict(self, request: Request, exc: Exception) -> Response:
        return self._page(request, "error.html.j2", 409, title="Evidence problem", message=str(exc))

    def unavailable(self, request: Request, exc: Exception) -> Response:
        return self._page(
            request,
            "error.html.j2",
            502,
            title="Store unavailable",
            message=f"The evidence store could not be read ({type(exc).__name__}).",
        )


def _text(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value) or "—"
    return str(value)


def _run_view(data: Any) -> dict[str, Any]:
    """Plain rows for the run page, read defensively: the manifest is data, not a contract."""
    mapping = data if isinstance(data, dict) else {}
    found = mapping.get("counts")
    counts: dict[str, Any] = found if isinstance(found, dict) else {}
    caller = mapping.get("caller_identity")
    summary = [
        ("Run", mapping.get("run_id")),
        ("Started", mapping.get("started_at")),
        ("Finished", mapping.get("finished_at")),
        ("Tool", f"{_text(mapping.get('tool'))} {_text(mapping.get('tool_version'))}"),
        ("Scope", mapping.get("scope")),
        ("Caller", caller.get("Arn") if isinstance(caller, dict) else None),
        ("Config digest", mapping.get("config_digest")),
        ("Exit code", mapping.get("exit_code")),
        *((f"Count: {k}", v) for k, v in counts.items() if not isinstance(v, dict)),
    ]
    coverage = [
        [
            _text(c.get(k))
            for k in ("account_id", "account_name", "state", "in_scope", "covered", "sources")
        ]
        + [_text(c.get("reason"))]
        for c in mapping.get("coverage") or []
        if isinstance(c, dict)
    ]
    deliveries = [
        [_text(d.get(k)) for k in ("recipient", "transport", "message_id", "file")]
        for d in mapping.get("deliveries") or []
        if isinstance(d, dict)
    ]
    return {
        "summary": [(label, _text(value)) for label, value in summary],
        "coverage": coverage,
        "deliveries": deliveries,
    }


# --------------------------------------------------------------------------------------------
# Serving.
# --------------------------------------------------------------------------------------------


@dataclass
class WebServer:
    """A running page: where it listens, and how to stop it."""

    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


def _config(app: ASGIApp, host: str, port: int) -> uvicorn.Config:
    # proxy_headers=False: uvicorn would otherwise replace the client address with the one in
    # X-Forwarded-For whenever the peer is in forwarded_allow_ips (127.0.0.1 by default, or
    # $FORWARDED_ALLOW_IPS), so anyone on this host could name a trusted proxy and sign in
    # through trusted_header, and a real proxy on this host would be taken for its client.
    # The page trusts the socket's peer address and nothing a request says about itself.
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        proxy_headers=False,
    )


def serve_in_thread(app: ASGIApp, host: str, port: int, ready_within: float = 30.0) -> WebServer:
    """Start serving `app` in a daemon thread; returns once it listens (port 0 = any free)."""
    server = uvicorn.Server(_config(app, host, port))
    thread = threading.Thread(target=server.run, name="evidence-web", daemon=True)
    thread.start()
    deadline = time.monotonic() + ready_within
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise UsageError(f"the evidence page could not listen on {host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else port
    return WebServer(server, thread, host, int(bound))


def _require_access(settings: Settings) -> None:
    if not Access(settings.evidence.web).configured:
        raise UsageError(
            "the evidence page would let nobody in: no users and no trusted proxy configured\n"
            "    hint: add `evidence.web.users: {NAME: HASH}` with a hash from "
            "`access-reporter hash-password`, or evidence.web.trusted_header + trusted_proxies"
        )


def start_for_serve(settings: Settings) -> WebServer | None:
    """For `serve`: the page in a thread when `evidence.web.enabled`, else None."""
    web = settings.evidence.web
    if not web.enabled:
        return None
    _require_access(settings)
    return serve_in_thread(make_app(settings), web.host, web.port)


def run_web(settings: Settings, host: str, port: int) -> None:
    """Serve the page in the foreground until interrupted (`access-reporter web`)."""
    _require_access(settings)
    store = open_store(settings)
    print(f"evidence page on http://{host}:{port}/ over {store.location} (Ctrl-C stops)")
    uvicorn.Server(_config(make_app(settings, store), host, port)).run()
