"""The arena as an ASGI app (Starlette): vote page, leaderboard page, JSON API, SSE.

    GET  /                  the vote page (K images with --k K; the leaderboard in
                            read-only mode)
    GET  /leaderboard       the leaderboard page (updated live by /events)
    GET  /api/pair[?tag=T]  {token, prompt, tags, left: {image_url}, right: {image_url}}
    GET  /api/group[?tag=T] with --k K: {token, prompt, tags, k, images: [{slot, image_url}]}
    POST /api/vote          {token, choice: left|right|tie|bothbad} -> the revealed models;
                            for a group {token, best: SLOT} or {token, order: [SLOT, ...]}
    GET  /img/<token>/<side> an image of a pair issued to this session (left|right), or of
                            a group (its slot, 0..k-1)
    GET  /api/leaderboard   {"boards": [...], "models": [...], "agreement": [...], ...}
    GET  /api/info          what the vote page needs (tags, read-only, sampling)
    GET  /events            Server-Sent Events: "leaderboard" with the whole document
    GET  /favicon.ico       the arena's icon (SVG)

One process serves everything: sessions, tokens and the live board are in memory (the
votes themselves are in SQLite), so run one worker. Safety rules are in
`autojudge.arena.tokens`; pages carry no inline script and a strict
Content-Security-Policy, and render every text with textContent.

The logic behind the routes is `autojudge.arena.core.Arena`; this module only speaks HTTP.

Example:
    >>> app = create_app(ArenaConfig(runs=["runs/demo"]))      # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8000)            # doctest: +SKIP
"""
from __future__ import annotations

import json
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from autojudge.arena.core import Arena, ArenaConfig
from autojudge.arena.timing import TimingMiddleware
from autojudge.arena.tokens import Refusal

__all__ = ["ArenaConfig", "create_app"]

STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "aj_session"
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self'; script-src 'self'; "
                               "style-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'; form-action 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
_MAX_BODY = 4096
# two images side by side; inline (not a static file) so it ships without package data
_ICON = (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
         b'<rect x="1" y="6" width="13" height="20" rx="2" fill="#3b6fd8"/>'
         b'<rect x="18" y="6" width="13" height="20" rx="2" fill="#e0892b"/></svg>')
_TOO_LARGE = f"vote body too large (at most {_MAX_BODY} bytes)"


# -- HTTP ------------------------------------------------------------------------------

class SecurityHeaders:
    """Adds SECURITY_HEADERS to every HTTP response (pure ASGI: streams stay streams)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    headers.setdefault(key, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _error(refusal: Refusal) -> JSONResponse:
    # 413: the rest of the body is never read, so the connection cannot carry another
    # request; closing it also stops the upload
    headers = {"connection": "close"} if refusal.status == 413 else None
    return JSONResponse({"error": refusal.message}, status_code=refusal.status,
                        headers=headers)


class Handlers:
    """The routes' endpoints over one `Arena` (sessions live in a signed cookie)."""

    def __init__(self, arena: Arena):
        self.arena = arena
        self.config = arena.config
        self.keys = arena.tokens.keys
        self.pages = {name: (STATIC / f"{name}.html").read_text(encoding="utf-8")
                      for name in ("vote", "kwise", "leaderboard")}

    def routes(self) -> list[Any]:
        return [Route("/", self.vote_page), Route("/leaderboard", self.board_page),
                Route("/api/pair", self.pair), Route("/api/group", self.group),
                Route("/api/vote", self.vote, methods=["POST"]),
                Route("/api/leaderboard", self.leaderboard), Route("/api/info", self.info),
                Route("/img/{token}/{side}", self.image), Route("/events", self.events),
                Route("/favicon.ico", self.favicon),
                Mount("/static", StaticFiles(directory=STATIC), name="static")]

    # -- sessions ---------------------------------------------------------------------
    def session(self, request: Request) -> str | None:
        return self.keys.session_id(request.cookies.get(COOKIE))

    def ensure_session(self, request: Request) -> tuple[str, str | None]:
        """(session id, a new cookie to set or None)."""
        sid = self.session(request)
        if sid is not None:
            return sid, None
        cookie = self.keys.new_session_cookie()
        return self.keys.session_id(cookie) or "", cookie

    @staticmethod
    def with_cookie(response: Response, cookie: str | None) -> Response:
        if cookie is not None:  # SameSite=Strict: no other site can vote as this voter
            response.set_cookie(COOKIE, cookie, httponly=True, samesite="strict", path="/")
        return response

    # -- endpoints --------------------------------------------------------------------
    async def vote_page(self, request: Request) -> Response:
        if self.config.read_only:
            return RedirectResponse("/leaderboard", status_code=302)
        _, cookie = self.ensure_session(request)
        page = self.pages["kwise" if self.config.k > 2 else "vote"]
        return self.with_cookie(HTMLResponse(page), cookie)

    async def board_page(self, request: Request) -> Response:
        return HTMLResponse(self.pages["leaderboard"])

    async def pair(self, request: Request) -> Response:
        return self._issue(request, self.arena.pair)

    async def group(self, request: Request) -> Response:
        return self._issue(request, self.arena.group)

    def _issue(self, request: Request, issue: Any) -> Response:
        """A new pair or group (`issue(session, tag)`) for this request's session."""
        sid, cookie = self.ensure_session(request)
        try:
            body = issue(sid, request.query_params.get("tag") or None)
        except Refusal as refusal:
            return self.with_cookie(_error(refusal), cookie)
        return self.with_cookie(JSONResponse(body, headers={"cache-control": "no-store"}),
                                cookie)

    async def vote(self, request: Request) -> Response:
        try:
            body = await _json_body(request)
            return JSONResponse(await self.arena.vote(self.session(request), body))
        except Refusal as refusal:
            return _error(refusal)

    async def image(self, request: Request) -> Response:
        try:
            data, kind = self.arena.image(self.session(request), request.path_params["token"],
                                          request.path_params["side"])
        except Refusal as refusal:
            return _error(refusal)
        # no ETag / Last-Modified: nothing that could tie the bytes to a stored file
        return Response(data, media_type=kind, headers={
            "cache-control": f"private, max-age={int(self.config.token_ttl_s)}"})

    async def favicon(self, request: Request) -> Response:
        # the pages link it too; without it every page view logs a 404
        return Response(_ICON, media_type="image/svg+xml",
                        headers={"cache-control": "public, max-age=86400"})

    async def leaderboard(self, request: Request) -> Response:
        return Response(self.arena.leaderboard_json(), media_type="application/json",
                        headers={"cache-control": "no-store"})

    async def info(self, request: Request) -> Response:
        return JSONResponse({"read_only": self.config.read_only,
                             "sampling": self.config.sampling, "k": self.config.k,
                             "tags": self.arena.tags,
                             "n_pairs": len(self.arena.runs.pairs)})

    async def events(self, request: Request) -> Response:
        """SSE: the whole leaderboard now, then after every (coalesced) change."""
        from sse_starlette.sse import EventSourceResponse

        broadcaster = self.arena.broadcaster
        queue = broadcaster.subscribe()

        async def stream() -> Any:
            try:
                yield {"event": "leaderboard", "data": self.arena.leaderboard_json()}
                while True:
                    yield {"event": "leaderboard", "data": await queue.get()}
            finally:
                broadcaster.unsubscribe(queue)

        return EventSourceResponse(stream(), ping=15, headers={"cache-control": "no-store"})


def create_app(config: ArenaConfig) -> Starlette:
    """The ASGI app; reads the runs now, so bad input fails here (AutojudgeError)."""
    arena = Arena(config)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        await arena.start()
        try:
            yield
        finally:
            await arena.stop()

    app = Starlette(routes=Handlers(arena).routes(), lifespan=lifespan)
    app.state.arena = arena
    app.add_middleware(SecurityHeaders)
    if arena.timings is not None:  # outermost: the whole time in the app
        app.add_middleware(TimingMiddleware, timings=arena.timings)
    return app


async def _json_body(request: Request) -> Any:
    """The request's JSON body, or Refusal 400/413/415.

    The size limit holds while the body streams in: a chunked body (no Content-Length)
    is read only up to the limit, so an endless upload costs the server nothing."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise Refusal(415, "send the vote as application/json")
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > _MAX_BODY):
        raise Refusal(413, _TOO_LARGE)
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > _MAX_BODY:
            raise Refusal(413, _TOO_LARGE)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # bad JSON or UTF-8; nesting past the parser's depth
        raise Refusal(400, "the body is not valid JSON") from None
