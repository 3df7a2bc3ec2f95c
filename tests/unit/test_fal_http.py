"""The fal generator's connection layer (autojudge.generators.fal_http: an aiohttp session
under fal-client's httpx client and the generator's own GETs) against a small scripted
server: bodies by length, chunked and gzip-encoded, keep-alive, a connection the server
closed while idle, redirects, errors as httpx's exception types, httpx on top of it, and
the environment's proxy."""
from __future__ import annotations

import asyncio
import gzip

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("httpx_aiohttp")

from autojudge.generators.fal_http import fetch, make_transport  # noqa: E402


BIG = 3 * 1024 * 1024


class Script:
    """An HTTP/1.1 server on 127.0.0.1: each path answers a scripted response."""

    def __init__(self):
        self.connections = 0
        self.seen: list[tuple[str, dict[str, str], bytes]] = []

    async def handle(self, reader, writer):
        self.connections += 1
        try:
            while line := await reader.readline():
                method, path, _ = line.decode().split(" ", 2)
                headers = {}
                while (raw := await reader.readline()) not in (b"\r\n", b""):
                    key, _, value = raw.decode().partition(":")
                    headers[key.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                self.seen.append((f"{method} {path}", headers, body))
                if path == "/chunked":
                    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
                elif path == "/gzip":  # as a CDN may send, asked or not
                    data = gzip.compress(b"image bytes" * 100)
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n"
                                 b"Content-Length: %d\r\n\r\n" % len(data) + data)
                elif path == "/redirect":
                    writer.write(b"HTTP/1.1 302 Found\r\nLocation: /json\r\n"
                                 b"Content-Length: 0\r\n\r\n")
                elif path == "/hangup":  # answers, then closes without saying so
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    await writer.drain()
                    writer.close()
                    return
                elif path == "/big":  # a full-size image: far past the reader's buffer
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BIG
                                 + bytes(range(256)) * (BIG // 256))
                elif path == "/truncated":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
                    await writer.drain()
                    writer.close()
                    return
                else:
                    data = b'{"method": "%s", "body": %d}' % (method.encode(), len(body))
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n" % len(data) + data)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def serve(test):
    async def main():
        script = Script()
        server = await asyncio.start_server(script.handle, "127.0.0.1", 0)
        base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        transport = make_transport()
        try:
            await test(script, base, transport)
        finally:
            await transport.aclose()
            server.close()

    asyncio.run(main())


def test_bodies_keep_alive_and_a_connection_closed_while_idle():
    async def test(script, base, transport):
        reply = await fetch(transport, "GET", base + "/chunked")
        assert (reply.status_code, reply.body) == (200, b"hello world")
        reply = await fetch(transport, "GET", base + "/json?x=1", {"X-Test": "1"})
        assert reply.json() == {"method": "GET", "body": 0}
        assert script.connections == 1  # the chunked body was read to its end: reused
        assert script.seen[-1][0] == "GET /json?x=1" and script.seen[-1][1]["x-test"] == "1"
        big = await fetch(transport, "GET", base + "/big")
        assert big.body == bytes(range(256)) * (BIG // 256)
        await fetch(transport, "GET", base + "/hangup")  # still on the first connection
        # which the server has closed: the next call goes out on a fresh one
        assert (await fetch(transport, "GET", base + "/json")).status_code == 200
        assert script.connections == 2
        assert (await fetch(transport, "GET", base + "/gzip")).body == b"image bytes" * 100
        moved = await fetch(transport, "GET", base + "/redirect")
        assert moved.status_code == 302  # followed only when asked (image downloads)
        followed = await fetch(transport, "GET", base + "/redirect", redirects=True)
        assert followed.json() == {"method": "GET", "body": 0}

    serve(test)


def test_errors_are_httpx_transport_errors():
    async def test(script, base, transport):
        with pytest.raises(httpx.ReadError):
            await fetch(transport, "GET", base + "/truncated")
        with pytest.raises(httpx.ConnectError):
            await fetch(transport, "GET", "http://127.0.0.1:9/nothing-listens-here")

    serve(test)


def test_httpx_client_on_the_transport():
    async def test(script, base, transport):
        async with httpx.AsyncClient(transport=transport, follow_redirects=True) as client:
            response = await client.post(base + "/json", json={"prompt": "a cat"})
            assert response.json() == {"method": "POST", "body": len(b'{"prompt":"a cat"}')}
            assert script.seen[-1][1]["content-type"] == "application/json"
            response = await client.get(base + "/redirect")
            assert response.status_code == 200 and str(response.url).endswith("/json")
            async with client.stream("GET", base + "/chunked") as streamed:
                assert b"".join([c async for c in streamed.aiter_bytes()]) == b"hello world"
        assert script.connections == 1

    serve(test)


def test_the_environment_proxy_carries_both_kinds_of_call(monkeypatch):
    for name in ("https_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy", "NO_PROXY",
                 "no_proxy"):
        monkeypatch.delenv(name, raising=False)

    async def proxied(script, base, transport):
        monkeypatch.setenv("HTTP_PROXY", base)  # the scripted server is the proxy
        monkeypatch.setenv("http_proxy", base)
        transport = make_transport()  # the session reads the proxy settings when made
        try:
            reply = await fetch(transport, "GET", "http://images.invalid/json")
            assert reply.json() == {"method": "GET", "body": 0}
            async with httpx.AsyncClient(transport=transport) as client:
                assert (await client.get("http://queue.invalid/json")).status_code == 200
        finally:
            await transport.aclose()
        # both calls reached the proxy, asking for the absolute URLs
        assert [seen[0] for seen in script.seen] == ["GET http://images.invalid/json",
                                                     "GET http://queue.invalid/json"]

    serve(proxied)


def test_fal_client_calls_go_through_the_given_transport():
    pytest.importorskip("fal_client")
    from autojudge.generators.fal_transport import fal_client_on

    seen = []

    def queue(request):
        seen.append((request.method, request.url.path, request.headers["authorization"]))
        base = "https://queue.example/fal-ai/flux/requests/r1"
        return httpx.Response(200, json={"request_id": "r1", "response_url": base,
                                         "status_url": base + "/status",
                                         "cancel_url": base + "/cancel"})

    client = fal_client_on(httpx.MockTransport(queue), "id:secret", 5.0)
    handle = asyncio.run(client.submit("fal-ai/flux/schnell", {"prompt": "a cat"}))
    assert handle.request_id == "r1"
    assert seen == [("POST", "/fal-ai/flux/schnell", "Key id:secret")]
