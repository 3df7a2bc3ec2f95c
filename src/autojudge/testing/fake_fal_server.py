"""The HTTP side of autojudge.testing.fake_fal: a keep-alive HTTP/1.1 server (optionally
TLS, with a self-signed certificate) on one asyncio loop in a thread, and the server-sent
status stream. The queue logic (what each path answers) is in fake_fal.route."""
from __future__ import annotations

import json
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

__all__ = ["Server", "Stream", "self_signed_cert"]


def self_signed_cert(folder: str | Path) -> tuple[Path, Path]:
    """(cert.pem, key.pem) for 127.0.0.1 and localhost, valid for a day."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized",
            404: "Not Found", 422: "Unprocessable Entity", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


@dataclass
class Stream:
    """A status stream to serve (the body is written as the status changes)."""

    rid: str


class Server:
    """HTTP/1.1 keep-alive (optionally TLS) on an asyncio loop in its own thread: one
    event loop serves every connection, so hundreds of polls a second cost little CPU."""

    def __init__(self, address: tuple[str, int], fal: Any, context: ssl.SSLContext | None,
                 route: Callable[..., tuple[int, Any, str]]):
        import socket

        self.fal, self.context, self.route = fal, context, route
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(address)
        self.sock.listen(512)
        self.server_address = self.sock.getsockname()
        self.loop: Any = None
        self._stopped: Any = None
        self._ready = threading.Event()

    def serve_forever(self, **_: Any) -> None:
        import asyncio

        self.loop = asyncio.new_event_loop()

        async def main() -> None:
            import asyncio as aio

            self._stopped = aio.Event()
            server = await aio.start_server(self._client, sock=self.sock, ssl=self.context,
                                            backlog=512)
            self._ready.set()
            async with server:
                await self._stopped.wait()

        try:
            self.loop.run_until_complete(main())
        finally:
            self.loop.close()

    def shutdown(self) -> None:
        self._ready.wait(10)
        if self.loop is not None and self._stopped is not None:
            self.loop.call_soon_threadsafe(self._stopped.set)

    def server_close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    async def _client(self, reader: Any, writer: Any) -> None:
        import asyncio

        with self.fal.lock:
            self.fal.connections += 1
        try:
            while True:
                try:  # the whole head at once: one await per request, not one per line
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    break
                line, *lines = head.decode("latin-1").split("\r\n")
                method, target, _ = line.split(" ", 2)
                headers: dict[str, str] = {}
                for raw in lines:
                    key, _, value = raw.partition(":")
                    if value:
                        headers[key.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                body = await reader.readexactly(length) if length else b""
                code, payload, ctype = self.route(self.fal, method, target, headers, body)
                if isinstance(payload, Stream):
                    await self._stream(writer, payload.rid)
                    continue
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                head = (f"HTTP/1.1 {code} {_REASONS.get(code, 'Status')}\r\n"
                        f"Content-Type: {ctype}\r\nContent-Length: {len(data)}\r\n"
                        f"x-fal-request-id: fake\r\n\r\n").encode("latin-1")
                writer.write(head + data)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, ValueError,
                OSError):
            pass
        finally:
            try:
                writer.close()
            except Exception:
                pass


    async def _stream(self, writer: Any, rid: str) -> None:
        """Server-sent events, one chunk per status change; the chunked body ends after
        COMPLETED, so the connection stays open for the next request."""
        import asyncio

        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Cache-Control: no-store\r\nTransfer-Encoding: chunked\r\n"
                     b"x-fal-request-id: fake\r\n\r\n")
        last, req = None, self.fal.requests[rid]
        req.streams += 1
        cut = req.streams <= req.behaviour.stream_cuts
        while True:
            _, payload = self.fal.status_of(req)
            if payload["status"] != last:
                last = payload["status"]
                event = f"data: {json.dumps(payload)}\n\n".encode()
                writer.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
                await writer.drain()
            if last == "COMPLETED" or req.cancelled or writer.is_closing() or cut:
                break  # a cancelled request's stream ends; so does one nobody reads
            await asyncio.sleep(min(self.fal.next_change(rid), 1.0))
        for _ in range(200 if req.behaviour.stream_open and not cut else 0):
            if writer.is_closing():
                return
            await asyncio.sleep(0.05)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
