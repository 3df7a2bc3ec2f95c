"""The fal generator's connection layer: one aiohttp session carries every HTTP call.

- fal-client's own calls (submit, cancel, status polls: its retries and error types) go
  through its httpx client on `httpx_aiohttp.AiohttpTransport` over this session
  (fal_transport.fal_client_on);
- the generator's hot GETs (status stream, result, image download) call the session
  through `fetch`, without httpx's Request and Response objects, which at 32-128 requests
  in flight cost as much client CPU as the call itself.

Why aiohttp: httpx's default transport (httpcore's pool on anyio streams) cost ~1.4 ms of
client CPU per call on a busy 2-core machine (its pool scans every connection for each
request it assigns; anyio wraps TLS in Python), most of the ~10 ms per image the
generator spent; aiohttp's connector on asyncio's TLS streams costs a fraction of that
(docs/generators.md has the figures).

The session: no connection limit (each request in flight holds one connection for its
status stream), connections kept alive between generate() calls, the environment's
proxies where one is set (HTTPS_PROXY, NO_PROXY..., also under fal-client's calls; the
generator makes a fresh session when they change), gzip/deflate bodies decoded,
certificates as httpx finds them (SSL_CERT_FILE / SSL_CERT_DIR, else certifi). Errors
come out as httpx's exception types, as from fal-client's own calls.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from typing import Any, AsyncIterator, Iterator

__all__ = ["Reply", "fetch", "make_transport", "within"]

#: as fal-client's QUEUE_POLL_TIMEOUT (read 120 s, connect 30 s)
_CONNECT_S, _READ_S = 30.0, 120.0
#: idle connections kept this long: a run's next batch reuses them (no TLS handshakes)
_KEEPALIVE_S = 60.0


def make_transport() -> Any:
    """An httpx transport on a fresh aiohttp session (call on the loop that will use it);
    `fetch` uses the same session. `aclose()` closes both."""
    import urllib.request

    import aiohttp
    import httpx
    from httpx_aiohttp import AiohttpTransport

    context = httpx.create_ssl_context()  # what fal-client's httpx client would trust
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ssl=context, keepalive_timeout=_KEEPALIVE_S),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=_CONNECT_S, sock_read=_READ_S),
        cookie_jar=aiohttp.DummyCookieJar(),  # fal's API and image URLs need no cookies
        # only where a proxy is set: trust_env reads the proxy settings and ~/.netrc on a
        # worker thread at every call (a sixth of the client's CPU at 128 in flight)
        trust_env=bool(urllib.request.getproxies()))
    return _transport_class(AiohttpTransport)(verify=context, client=session)


@functools.cache
def _transport_class(base: type) -> type:
    class Transport(base):  # type: ignore[valid-type,misc]
        async def handle_async_request(self, request: Any) -> Any:
            # a request httpx rebuilt (fal-client's backup domain, a redirect) carries its
            # body as a stream, which AiohttpTransport sends chunked: even an empty one,
            # on a GET. Read, it goes as bytes (or as nothing)
            await request.aread()
            return await super().handle_async_request(request)

    return Transport


async def within(seconds: float | None, awaitable: Any) -> Any:
    """`awaitable`, or TimeoutError after `seconds` (None: no limit)."""
    if seconds is None:
        return await awaitable
    if hasattr(asyncio, "timeout"):  # 3.11+: no extra task per call, unlike wait_for
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)


@contextlib.contextmanager
def _httpx_errors(url: str) -> Iterator[None]:
    """aiohttp's errors as httpx's (what fal-client raises and the generator classifies)."""
    import aiohttp
    import httpx

    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:
        raise httpx.ConnectTimeout(f"connecting for {url} timed out ({exc})") from exc
    except aiohttp.ClientConnectorError as exc:  # also certificate errors
        raise httpx.ConnectError(f"{type(exc).__name__}: {exc}") from exc
    except (aiohttp.ServerTimeoutError, asyncio.TimeoutError) as exc:
        raise httpx.ReadTimeout(f"no response from {url} in time ({exc})") from exc
    except aiohttp.ServerDisconnectedError as exc:
        raise httpx.RemoteProtocolError(f"{type(exc).__name__}: {exc}") from exc
    except aiohttp.ClientError as exc:  # truncated body, bad encoding, too many redirects
        raise httpx.ReadError(f"{type(exc).__name__}: {exc}") from exc


class Reply:
    """A response from `fetch`: status, headers (lower-case names), body (decoded)."""

    def __init__(self, response: Any, url: str):
        self._response, self._url = response, url
        self.status_code: int = response.status
        self.headers = {k.lower(): v for k, v in response.headers.items()}
        self.body = b""

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (server-sent events: one chunk per event, or fewer)."""
        with _httpx_errors(self._url):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        """The connection goes back to the pool if the body was read to its end, else it
        is closed (what is left unread would be taken for the next reply)."""
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()

    def json(self) -> Any:
        return json.loads(self.body)

    def as_httpx(self) -> Any:
        """For fal-client's error type, which carries an httpx.Response."""
        import httpx

        headers = {k: v for k, v in self.headers.items()  # the body is decoded already
                   if k not in ("content-encoding", "content-length", "transfer-encoding")}
        return httpx.Response(self.status_code, headers=headers, content=self.body)


async def fetch(transport: Any, method: str, url: str, headers: dict[str, str] | None = None,
                stream: bool = False, redirects: bool = False) -> Reply:
    """One call on `transport`'s session (from make_transport): the status, headers and,
    unless `stream`, the whole body (then `Reply.chunks()`, and `aclose()` once done).
    `redirects`: followed (at most 10). Raises httpx's transport exceptions."""
    with _httpx_errors(url):
        response = await transport.client.request(method, url, headers=headers,
                                                  allow_redirects=redirects)
    reply = Reply(response, url)
    if not stream:
        try:
            with _httpx_errors(url):
                reply.body = await response.read()
        finally:
            await reply.aclose()
    return reply
