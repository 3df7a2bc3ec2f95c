"""The HTTP side of the fal generator: error classes, status stream, result fetch, cancel,
image download.

Kept apart from `fal.py` so the generator reads as the request's life cycle; everything
here is transport detail (fal-client's handles, httpx, retries' classification).
"""
from __future__ import annotations

import asyncio
import base64
import io
import json
import os
from typing import Any


def queue_host() -> str:
    """The queue host fal-client would use (FAL_QUEUE_RUN_HOST, else queue.<FAL_RUN_HOST>)."""
    run_host = os.environ.get("FAL_RUN_HOST", "fal.run")
    return os.environ.get("FAL_QUEUE_RUN_HOST", f"queue.{run_host}")


class Transient(Exception):
    """A failure worth retrying (429, 5xx, transport, malformed JSON)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class Permanent(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class Slot:
    """One held place of the concurrency semaphore, released at most once."""

    def __init__(self, semaphore: asyncio.Semaphore):
        self._semaphore: asyncio.Semaphore | None = semaphore

    def release(self) -> None:
        if self._semaphore is not None:
            self._semaphore, semaphore = None, self._semaphore
            semaphore.release()


def fal_client_on(transport: Any, key: str | None, timeout_s: float) -> Any:
    """A fal_client.AsyncClient whose calls go through `transport`: fal-client builds its
    httpx client with `AsyncBackupDomainTransport()` on httpx's default transport and has
    no parameter for another, so this subclass builds the same client (same headers, same
    backup-domain fallback) with `transport` underneath. If fal-client's internals differ
    (another version), the plain client is returned: slower, never wrong."""
    import asyncio

    import fal_client
    import fal_client.client as fc
    import httpx

    try:
        from asyncstdlib import cached_property  # how fal-client caches its client
    except ImportError:
        cached_property = None
    parts = ("AsyncBackupDomainTransport", "USER_AGENT")
    if cached_property is None or not all(hasattr(fc, name) for name in parts) \
            or not hasattr(fal_client.AsyncClient, "_auth"):
        return fal_client.AsyncClient(key=key, default_timeout=timeout_s)

    class _Client(fal_client.AsyncClient):
        @cached_property(asyncio.Lock)
        async def _client(self) -> httpx.AsyncClient:
            auth = await self._auth
            return httpx.AsyncClient(
                transport=fc.AsyncBackupDomainTransport(transport=transport),
                headers={"Authorization": auth.header_value, "User-Agent": fc.USER_AGENT},
                timeout=self.default_timeout)

    return _Client(key=key, default_timeout=timeout_s)


def serve_loop(loop: Any) -> None:
    """A generator's own event loop thread: runs until stop_loop."""
    try:
        loop.run_forever()
    finally:
        loop.close()


def stop_loop(loop: Any, kept: dict[str, Any]) -> None:
    """Close the connections kept on `loop` (kept["now"]: identity, transport, client),
    then end its thread (from any thread; once the generator is gone)."""
    async def close_and_stop() -> None:
        if "now" in kept:
            await close_connections(*kept.pop("now")[1:])
        loop.stop()

    try:
        asyncio.run_coroutine_threadsafe(close_and_stop(), loop)
    except RuntimeError:  # the loop is closed already
        pass


async def close_connections(transport: Any, client: Any) -> None:
    """Close a fal client built by fal_client_on and its transport."""
    try:
        inner = await client._client  # fal-client's httpx client, on `transport`
        await inner.aclose()
    except Exception:
        pass
    await transport.aclose()


def apply_host_env(fal_module: Any) -> None:
    """Make fal-client follow FAL_RUN_HOST / FAL_QUEUE_RUN_HOST as they are now (it reads
    them once at import)."""
    if "FAL_RUN_HOST" in os.environ or "FAL_QUEUE_RUN_HOST" in os.environ:
        run_host = os.environ.get("FAL_RUN_HOST", "fal.run")
        fal_module.RUN_URL_FORMAT = f"https://{run_host}/"
        fal_module.QUEUE_URL_FORMAT = f"https://{queue_host()}/"


def auth_headers(handle: Any) -> dict[str, str]:
    """The headers fal-client's own client sends with its key (Authorization, User-Agent),
    for the handle's queue URLs, which the queue returned for this request."""
    return {k: v for k, v in handle.client.headers.items()
            if k.lower() in ("authorization", "user-agent")}


def http_error(reply: Any) -> Exception:
    """fal-client's FalClientHTTPError for an error reply (classified like its own)."""
    from fal_client import FalClientHTTPError

    try:
        body = reply.json()
        detail = body.get("detail", body) if isinstance(body, dict) else body
    except ValueError:
        detail = reply.body.decode("utf-8", "replace")
    return FalClientHTTPError(one_line(str(detail))[:300], reply.status_code,
                              dict(reply.headers), response=reply.as_httpx())


async def get_result(handle: Any, transport: Any) -> Any:
    """The result JSON of a request whose status said COMPLETED: one GET of its
    response_url with fal-client's headers (fal-client's `handle.get()` would poll the
    status once more first)."""
    from autojudge.generators.fal_http import fetch

    reply = await fetch(transport, "GET", handle.response_url, auth_headers(handle))
    if reply.status_code >= 400:
        raise http_error(reply)
    return reply.json()


_STREAM_END_S = 0.5  # how long to wait for a status stream's end after COMPLETED


class NoStream(Exception):
    """The server has no status stream for this request (404/405, or not event-stream)."""


def parse_status(data: Any) -> Any:
    """A status JSON object as fal-client's Queued / InProgress / Completed."""
    from fal_client import Completed, InProgress, Queued

    state = data.get("status") if isinstance(data, dict) else None
    if state == "IN_QUEUE":
        return Queued(position=int(data.get("queue_position") or 0))
    if state == "IN_PROGRESS":
        return InProgress(logs=data.get("logs"))
    if state == "COMPLETED":
        return Completed(logs=data.get("logs"), metrics=data.get("metrics") or {},
                         error=data.get("error"), error_type=data.get("error_type"))
    raise ValueError(f"unknown request status {state!r}")


async def follow_status(handle: Any, transport: Any, on_status: Any) -> None:
    """Follow the request's status stream (GET <status_url>/stream, server-sent events, one
    per status change, closed after COMPLETED) until `on_status` returns True (COMPLETED).

    One open request per request in flight instead of a status call per poll interval, and
    COMPLETED arrives the moment fal sends it rather than at the next poll. fal-client only
    polls, so this reads the stream itself, with fal-client's own headers, from the queue
    URL the queue gave. Raises NoStream when the server has no stream, so the caller polls
    instead; HTTP errors raise FalClientHTTPError like fal-client's calls."""
    import httpx

    from autojudge.generators.fal_http import fetch, within

    # identity: a compressed event stream may sit in the compressor's buffer
    headers = {**auth_headers(handle), "Accept": "text/event-stream",
               "Cache-Control": "no-store", "Accept-Encoding": "identity"}
    reply = await fetch(transport, "GET", handle.status_url + "/stream?logs=0", headers,
                        stream=True)
    completed, data, buffer = False, [], b""
    try:
        kind = reply.headers.get("content-type", "")
        if reply.status_code in (404, 405) or (reply.status_code < 400
                                               and "text/event-stream" not in kind):
            raise NoStream(f"HTTP {reply.status_code} {kind}")
        if reply.status_code >= 400:
            reply.body = b"".join([chunk async for chunk in reply.chunks()])
            raise http_error(reply)
        chunks = reply.chunks()
        async for chunk in chunks:
            *lines, buffer = (buffer + chunk).split(b"\n")
            for line in lines:
                line = line.rstrip(b"\r")
                if line.startswith(b"data:"):
                    data.append(line[5:].lstrip(b" "))
                elif not line and data and not completed:  # a blank line ends an event
                    completed = on_status(parse_status(json.loads(b"\n".join(data))))
                    data = []
            if completed:
                break
        if completed:  # fal ends the stream after COMPLETED: read that end, so the
            try:       # connection is reused (a server that keeps it open: not waited for)
                await within(_STREAM_END_S, _drain(chunks))
            except (TimeoutError, asyncio.TimeoutError, httpx.HTTPError):
                pass
    finally:
        await reply.aclose()
    if not completed:
        raise Transient("transport", "the status stream ended before COMPLETED")


async def _drain(chunks: Any) -> None:
    async for _ in chunks:
        pass


async def cancel(handle: Any) -> bool:
    try:
        await asyncio.wait_for(handle.cancel(), timeout=10)
        return True
    except Exception:
        return False


def classify(exc: Exception) -> Exception:
    """A client exception as Transient (retry) or Permanent."""
    import httpx
    from fal_client.client import FalClientHTTPError

    if isinstance(exc, (Transient, Permanent)):
        return exc
    if isinstance(exc, FalClientHTTPError):
        code = exc.status_code
        message = f"HTTP {code}: {one_line(str(exc))[:300]}"
        if code in (408, 409, 429) or code >= 500:
            return Transient(f"http_{code}", message)
        return Permanent(f"http_{code}", message)
    if isinstance(exc, json.JSONDecodeError):
        return Transient("bad_response", f"malformed JSON from the server ({exc.msg})")
    if isinstance(exc, (httpx.TransportError, httpx.TimeoutException)):
        return Transient("transport", f"{type(exc).__name__}: {one_line(str(exc))[:200]}")
    if isinstance(exc, (KeyError, ValueError, TypeError)):
        return Transient("bad_response", f"unexpected response ({type(exc).__name__}: {exc})")
    return Permanent("generator_error", f"{type(exc).__name__}: {one_line(str(exc))[:300]}")


async def download(transport: Any, url: str) -> bytes:
    """Image bytes from a data: URI or an http(s) URL (3 tries on transient errors,
    redirects followed; never with the fal key)."""
    import httpx

    if url.startswith("data:"):
        header, _, payload = url.partition(",")
        try:
            if header.endswith(";base64"):
                return base64.b64decode(payload, validate=False)
            from urllib.parse import unquote_to_bytes

            return unquote_to_bytes(payload)
        except ValueError as exc:
            raise Transient("bad_image", f"undecodable data: URI ({exc})") from exc
    from autojudge.generators.fal_http import fetch

    last: Exception | None = None
    for attempt in range(3):
        try:
            reply = await fetch(transport, "GET", url, redirects=True)  # no headers: no key
            if reply.status_code == 200:
                return reply.body
            last = RuntimeError(f"HTTP {reply.status_code}")
            if reply.status_code < 500 and reply.status_code != 429:
                break
        except (httpx.TransportError, httpx.TimeoutException) as exc:
            last = exc
        await asyncio.sleep(0.2 * 2 ** attempt)
    raise Transient("download_failed", f"cannot download the image ({last})")


def decode_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return im.width, im.height
    except Exception as exc:  # PIL raises many types
        raise Transient("corrupt_image", f"the returned image does not decode "
                         f"({type(exc).__name__})") from exc


def one_line(text: str) -> str:
    return " ".join(str(text).split())
