"""A small OpenAI-compatible chat-completions server on 127.0.0.1 with a fixed service time.

For throughput measurements of the VLM judge (benchmarks/bench_vlm.py) and tests of its
concurrency: every `POST /v1/chat/completions` is answered after exactly `service_s`
seconds, with unlimited parallel capacity (one thread per connection, HTTP/1.1 keep-alive,
TCP_NODELAY, a deep listen backlog so a burst of connects is never refused). The answer is the JSON the
VLM judge parses, `{"rationale": ..., "winner": "A"|"B"}`, naming the image whose data URL
hashes higher, so the two orders of a pair always agree and a swap-debiased verdict is
never a tie. The images are never decoded: the server costs next to no CPU.

Rate limiting: `rate_limit_share` of the distinct requests (drawn from a hash of the
request body, so the same requests are limited on every run) are answered HTTP 429 with
`Retry-After: <retry_after_s>` on their first attempt, at once, and answered normally on
the next. `GET /stats` gives the counters (requests, answered, rate_limited, peak_in_flight:
the most requests the server held at once, retry_gap_min_s: the shortest time a client
waited between a 429 and asking again, null before any retry); `POST /reset` zeroes them.

    python -m autojudge.testing.fake_openai --port 8000 --service 0.5
"""
from __future__ import annotations

import argparse
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeOpenAI", "answer_for"]


def answer_for(image_urls: list[str]) -> str:
    """The answer for the images in the order shown: the image whose URL hashes higher
    wins (the same image wins in both orders)."""
    if len(image_urls) < 2:
        return json.dumps({"rationale": "fewer than two images", "winner": "tie"})
    first, second = (hashlib.sha256(u.encode()).hexdigest() for u in image_urls[:2])
    winner = "A" if first > second else "B"
    return json.dumps({"rationale": f"Image {winner} hashes higher.", "winner": winner})


def send_json(handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any],
              headers: dict[str, str] | None = None) -> None:
    """One JSON reply (a client that timed out and left is no error here)."""
    data = json.dumps(payload).encode()
    try:
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(data)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default 5 drops a burst of connects (1 s SYN retry)


class FakeOpenAI:
    """The server: `start()` it (a daemon thread), use `base_url`, `stop()` it (or `with`)."""

    def __init__(self, service_s: float = 0.5, rate_limit_share: float = 0.0,
                 retry_after_s: float = 1.0, port: int = 0):
        if service_s < 0 or not 0.0 <= rate_limit_share <= 1.0 or retry_after_s < 0:
            raise ValueError("service_s >= 0, 0 <= rate_limit_share <= 1, retry_after_s >= 0")
        self.service_s = service_s
        self.rate_limit_share = rate_limit_share
        self.retry_after_s = retry_after_s
        self._lock = threading.Lock()
        self._limited_at: dict[str, float | None] = {}  # body digest -> when it got 429
        self.counters: dict[str, Any] = {}
        self.reset()
        self._in_flight = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the client reuses its connections
            # headers and body in one write, sent at once: unbuffered writes with Nagle on
            # meet the client's delayed ACK and add ~40 ms to every answer
            wbufsize = -1
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/stats":
                    return server._send(self, 200, server.stats())
                return server._send(self, 404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                data = self.rfile.read(length)
                if self.path.rstrip("/") == "/reset":
                    server.reset()
                    return server._send(self, 200, {"ok": True})
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    return server._send(self, 404, {"error": {"message": "not found"}})
                server._complete(self, data)

        self.httpd = _Server(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True,
                                        name="fake-openai")

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "FakeOpenAI":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stats(self) -> dict[str, Any]:
        """The counters, and the CPU seconds this process has used (`cpu_s`)."""
        with self._lock:
            return {**self.counters, "cpu_s": round(time.process_time(), 3)}

    def reset(self) -> None:
        with self._lock:
            self.counters = {"requests": 0, "answered": 0, "rate_limited": 0,
                             "peak_in_flight": 0, "retry_gap_min_s": None}
            self._limited_at.clear()

    # ---------------------------------------------------------------------------------

    def _limited(self, digest: str) -> bool:
        """Whether this request is rate-limited: its first attempt, for the drawn share
        (a retry's wait since its 429 is kept; called under the lock)."""
        if self.rate_limit_share <= 0:
            return False
        now = time.monotonic()
        if digest in self._limited_at:
            limited_at = self._limited_at[digest]
            if limited_at is not None:
                gap, best = now - limited_at, self.counters["retry_gap_min_s"]
                self.counters["retry_gap_min_s"] = round(gap if best is None
                                                         else min(best, gap), 4)
                self._limited_at[digest] = None
            return False
        limited = int(digest[:8], 16) / 0xFFFFFFFF < self.rate_limit_share
        self._limited_at[digest] = now if limited else None
        return limited

    def _complete(self, handler: BaseHTTPRequestHandler, data: bytes) -> None:
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            self.counters["requests"] += 1
            limited = self._limited(digest)
            if limited:
                self.counters["rate_limited"] += 1
        if limited:  # a real limiter answers at once, without doing the work
            return self._send(handler, 429, {"error": {"message": "rate limit reached",
                                                       "type": "rate_limit", "code": 429}},
                              {"retry-after": f"{self.retry_after_s:g}"})
        with self._lock:
            self._in_flight += 1
            self.counters["peak_in_flight"] = max(self.counters["peak_in_flight"],
                                                  self._in_flight)
        try:
            started = time.perf_counter()
            body = json.loads(data)
            content = body["messages"][-1]["content"]
            urls = [part["image_url"]["url"] for part in content
                    if isinstance(part, dict) and part.get("type") == "image_url"]
            text = answer_for(urls)
            time.sleep(max(0.0, self.service_s - (time.perf_counter() - started)))
        finally:
            with self._lock:
                self._in_flight -= 1
        with self._lock:
            self.counters["answered"] += 1
        self._send(handler, 200, {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 20, "total_tokens": 1020}})

    _send = staticmethod(send_json)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--service", type=float, default=0.5, help="seconds per answer")
    parser.add_argument("--rate-limit-share", type=float, default=0.0)
    parser.add_argument("--retry-after", type=float, default=1.0)
    args = parser.parse_args(argv)
    try:
        server = FakeOpenAI(args.service, args.rate_limit_share, args.retry_after, args.port)
    except (ValueError, OSError) as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"fake OpenAI-compatible server on {server.base_url} (service {args.service:g} s)")
    with server:
        try:
            server._thread.join()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
