"""A small fal-compatible queue server on 127.0.0.1, reached through fal-client itself.

It speaks the queue protocol fal-client 1.0 uses (read from fal-client's source):

    POST /<owner>/<alias>[/<path>]        -> {request_id, status_url, response_url, cancel_url}
    GET  .../requests/<id>/status         -> IN_QUEUE{queue_position} | IN_PROGRESS{logs}
                                             | COMPLETED{logs, metrics{inference_time}}
    GET  .../requests/<id>/status/stream  -> server-sent events, one `data:` line per status
                                             change, closed after COMPLETED (fal's status
                                             stream; `status_stream=False` answers 404)
    GET  .../requests/<id>                -> {images:[{url,width,height,content_type}], seed,
                                              timings{inference}, has_nsfw_concepts, prompt}
    PUT  .../requests/<id>/cancel         -> 202 {status: CANCELLATION_REQUESTED}
    GET  /files/<name>                    -> image bytes (for URL images)

fal-client always speaks https, so the server runs TLS with a self-signed certificate
(`self_signed_cert`, in fake_fal_server); point `SSL_CERT_FILE` at it and `FAL_QUEUE_RUN_HOST` at
`127.0.0.1:<port>`. Images are flat colours derived from (prompt, seed), so the same
request gives the same bytes.

Faults are scripted per request by tokens in the prompt text (or by `FakeFal.script`):

    fault:429x2          the first 2 submits of this prompt get HTTP 429
    fault:500x1          the first submit gets HTTP 500
    fault:422            every submit gets HTTP 422 (a permanent validation error)
    fault:slow           the request takes `slow_s` seconds (past a client timeout)
    fault:badsubmitx1    the first submit answers malformed JSON (after queueing nothing)
    fault:badresultx1    the first result fetch answers malformed JSON
    fault:nsfw           has_nsfw_concepts: [true] and a black image
    fault:streamcutx1    the first status stream ends before COMPLETED
    fault:streamopen     the status stream stays open after COMPLETED (until the client
                         hangs up, at most 10 s)
    image:data           the image comes back as a data: URI (else the request's
                         sync_mode decides: true -> data URI, false -> https URL)
    service:0.5          this request's service time in seconds

Counters (`submits`, `accepted`, `cancelled`, `status_polls`, `status_streams`,
`result_gets`, `connections`) let tests check what reached the server. Run standalone for a dry run:

    python -m autojudge.testing.fake_fal --port 8443 --service 0.2
"""
from __future__ import annotations

import base64
import functools
import io
import json
import re
import ssl
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from autojudge.testing.fake_fal_server import Server, Stream, self_signed_cert

__all__ = ["FakeFal", "Behaviour", "self_signed_cert"]

IMAGE_SIZES = {"square_hd": (1024, 1024), "square": (512, 512), "portrait_4_3": (768, 1024),
               "portrait_16_9": (576, 1024), "landscape_4_3": (1024, 768),
               "landscape_16_9": (1024, 576)}


@dataclass
class Behaviour:
    """What the server does with one prompt (parsed from `fault:` tokens by default)."""

    service_s: float = 0.05
    submit_errors: list[int] = field(default_factory=list)  # status per submit attempt
    always_status: int | None = None
    bad_submits: int = 0
    bad_results: int = 0
    nsfw: bool = False
    stream_cuts: int = 0
    stream_open: bool = False
    image_mode: str | None = None  # "url" | "data" | None (follow sync_mode)


_TOKEN = re.compile(r"(fault|image|service):([A-Za-z0-9_.]+)")


def parse_behaviour(text: str, default_service_s: float, slow_s: float) -> Behaviour:
    b = Behaviour(service_s=default_service_s)
    for kind, value in _TOKEN.findall(text or ""):
        if kind == "image":
            b.image_mode = value
        elif kind == "service":
            b.service_s = float(value)
        else:
            name, _, times = value.partition("x")
            n = int(times) if times.isdigit() else 1
            if name.isdigit() and times:
                b.submit_errors += [int(name)] * n
            elif name.isdigit():
                b.always_status = int(name)
            elif name == "slow":
                b.service_s = slow_s
            elif name == "badsubmit":
                b.bad_submits = n
            elif name == "badresult":
                b.bad_results = n
            elif name == "nsfw":
                b.nsfw = True
            elif name == "streamcut":
                b.stream_cuts = n
            elif name == "streamopen":
                b.stream_open = True
    return b


@dataclass
class _Request:
    id: str
    app: str
    body: dict[str, Any]
    behaviour: Behaviour
    created: float
    done_at: float
    cancelled: bool = False
    streams: int = 0


@functools.lru_cache(maxsize=1024)  # the same request again is served from memory
def _png(width: int, height: int, color: tuple[int, int, int]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG")
    return buf.getvalue()


class FakeFal:
    """The server; use as a context manager or call start()/stop().

    Args:
        tls_dir: folder for the self-signed certificate (None: plain http, for clients
            that patch fal_client's URL formats).
        service_s: default service time of a request (from submit to COMPLETED).
        queue_s: time a request reports IN_QUEUE before IN_PROGRESS.
        slow_s: service time of `fault:slow` requests.
        expected_key: if set, every queue call must carry `Authorization: Key <it>`.
        status_stream: serve the SSE status stream (False: 404, as a server without it).
    """

    def __init__(self, tls_dir: str | Path | None = None, *, service_s: float = 0.05,
                 queue_s: float = 0.0, slow_s: float = 30.0, expected_key: str | None = None,
                 port: int = 0, script: Callable[[dict[str, Any]], Behaviour] | None = None,
                 status_stream: bool = True):
        self.service_s, self.queue_s, self.slow_s = service_s, queue_s, slow_s
        self.status_stream = status_stream
        self.expected_key = expected_key
        self.script = script
        self.lock = threading.Lock()
        self.requests: dict[str, _Request] = {}
        self.files: dict[str, bytes] = {}
        self.submits: Counter[str] = Counter()      # prompt text -> POSTs (incl. faulted)
        self.accepted: Counter[str] = Counter()     # prompt text -> queued requests
        self.cancelled: list[str] = []
        self.status_polls = 0
        self.status_streams = 0
        self._live: dict[str, float] = {}  # request id -> done_at, while queued or running
        self.peak_in_flight = 0  # most requests queued or running at fal at one time
        self.connections = 0  # TCP connections accepted (each a TLS handshake)
        self.result_gets = 0
        self._result_gets_per_prompt: Counter[str] = Counter()
        self.seen_auth: set[str] = set()  # Authorization headers of queue calls
        self.seen_file_auth: set[str] = set()  # ... and of image downloads
        self.cert_path: Path | None = None
        context = None
        if tls_dir is not None:
            self.cert_path, key_path = self_signed_cert(tls_dir)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.cert_path, key_path)
        self._server = Server(("127.0.0.1", port), self, context, route)
        self.port = self._server.server_address[1]
        self.scheme = "https" if context else "http"
        self.host = f"127.0.0.1:{self.port}"
        self.base_url = f"{self.scheme}://{self.host}"
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------- lifecycle

    def start(self) -> "FakeFal":
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self._server._ready.wait(10)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        if self._thread is not None:
            self._thread.join(10)
        self._server.server_close()

    def __enter__(self) -> "FakeFal":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------- logic

    def behaviour(self, body: dict[str, Any]) -> Behaviour:
        if self.script is not None:
            return self.script(body)
        return parse_behaviour(str(body.get("prompt", "")), self.service_s, self.slow_s)

    def submit(self, app: str, body: dict[str, Any]) -> tuple[int, Any]:
        prompt = str(body.get("prompt", ""))
        b = self.behaviour(body)
        with self.lock:
            self.submits[prompt] += 1
            attempt = self.submits[prompt]
        if b.always_status is not None:
            return b.always_status, {"detail": f"scripted {b.always_status}"}
        if attempt <= len(b.submit_errors):
            code = b.submit_errors[attempt - 1]
            return code, {"detail": f"scripted {code} (attempt {attempt})"}
        if attempt - len(b.submit_errors) <= b.bad_submits:
            return 200, b'{"request_id": "oops", '  # malformed JSON
        rid = uuid.uuid4().hex
        now = time.monotonic()
        req = _Request(rid, app, body, b, now, now + self.queue_s + b.service_s)
        with self.lock:
            self.requests[rid] = req
            self.accepted[prompt] += 1
            # only live requests are counted: a scan of every request ever made would make
            # the server's CPU grow with the length of a benchmark
            self._live = {k: t for k, t in self._live.items() if t > now}
            self._live[rid] = req.done_at
            self.peak_in_flight = max(self.peak_in_flight, len(self._live))
        base = f"{self.base_url}/{app}/requests/{rid}"
        return 200, {"request_id": rid, "status_url": base + "/status", "response_url": base,
                     "cancel_url": base + "/cancel", "queue_position": 0}

    def status(self, rid: str) -> tuple[int, Any]:
        with self.lock:
            self.status_polls += 1
            req = self.requests.get(rid)
        if req is None:
            return 404, {"detail": "request not found"}
        return self.status_of(req)

    def next_change(self, rid: str) -> float:
        """Seconds until the request's status changes next (0 once it is COMPLETED)."""
        req = self.requests[rid]
        now = time.monotonic()
        later = [t for t in (req.created + self.queue_s, req.done_at) if t > now]
        return min(later) - now if later else 0.0

    def status_of(self, req: _Request) -> tuple[int, Any]:
        rid = req.id
        now = time.monotonic()
        if now < req.created + self.queue_s:
            return 202, {"status": "IN_QUEUE", "queue_position": 0, "request_id": rid}
        if now < req.done_at:
            return 202, {"status": "IN_PROGRESS", "logs": [], "request_id": rid}
        return 200, {"status": "COMPLETED", "logs": [], "request_id": rid,
                     "metrics": {"inference_time": req.behaviour.service_s}}

    def result(self, rid: str) -> tuple[int, Any]:
        with self.lock:
            self.result_gets += 1
            req = self.requests.get(rid)
            if req is not None:
                self._result_gets_per_prompt[rid] += 1
                nth = self._result_gets_per_prompt[rid]
        if req is None:
            return 404, {"detail": "request not found"}
        if time.monotonic() < req.done_at:
            return 400, {"detail": "request is still in progress"}
        b = req.behaviour
        if nth <= b.bad_results:
            return 200, b'{"images": [ {"url": '
        body = req.body
        width, height = _size(body.get("image_size"))
        seed = int(body.get("seed", 0) or 0)
        if b.nsfw:
            color = (0, 0, 0)
        else:
            import hashlib

            digest = hashlib.sha256(f"{body.get('prompt')}|{seed}|{req.app}".encode()).digest()
            color = (digest[0], digest[1], digest[2])
        data = _png(width, height, color)
        mode = b.image_mode or ("data" if body.get("sync_mode") else "url")
        if mode == "data":
            url = "data:image/png;base64," + base64.b64encode(data).decode()
        else:
            name = f"{rid}.png"
            with self.lock:
                self.files[name] = data
            url = f"{self.base_url}/files/{name}"
        return 200, {"images": [{"url": url, "width": width, "height": height,
                                 "content_type": "image/png"}],
                     "seed": seed, "timings": {"inference": b.service_s},
                     "has_nsfw_concepts": [b.nsfw], "prompt": body.get("prompt")}

    def cancel(self, rid: str) -> tuple[int, Any]:
        with self.lock:
            req = self.requests.get(rid)
            if req is None:
                return 404, {"detail": "request not found"}
            req.cancelled = True
            self.cancelled.append(rid)
            self._live.pop(rid, None)
        return 202, {"status": "CANCELLATION_REQUESTED"}


def _size(value: Any) -> tuple[int, int]:
    if isinstance(value, dict):
        return int(value.get("width", 64)), int(value.get("height", 64))
    if isinstance(value, str) and value in IMAGE_SIZES:
        return IMAGE_SIZES[value]
    return 64, 64


def route(fal: FakeFal, method: str, path: str, headers: dict[str, str],
          body: bytes) -> tuple[int, Any, str]:
    """(status, payload, content type) for one HTTP request."""
    path = path.split("?")[0]
    if method == "GET" and path.startswith("/files/"):
        with fal.lock:
            fal.seen_file_auth.add(headers.get("authorization", ""))
        data = fal.files.get(path.rsplit("/", 1)[-1])
        return (404, {"detail": "no such file"}, "application/json") if data is None \
            else (200, data, "image/png")
    auth = headers.get("authorization", "")
    with fal.lock:
        fal.seen_auth.add(auth)
    if fal.expected_key is not None and auth != f"Key {fal.expected_key}":
        return 401, {"detail": "invalid key"}, "application/json"
    if method == "POST":
        try:
            data = json.loads(body or b"{}")
        except json.JSONDecodeError:
            data = {}
        return (*fal.submit(path.strip("/"), data if isinstance(data, dict) else {}),
                "application/json")
    match = re.search(r"/requests/([0-9a-f]+)(/status/stream|/status|/cancel)?$", path)
    if not match:
        return 404, {"detail": "unknown path"}, "application/json"
    rid, tail = match.group(1), match.group(2)
    if method == "PUT" and tail == "/cancel":
        return (*fal.cancel(rid), "application/json")
    if method == "GET" and tail == "/status":
        return (*fal.status(rid), "application/json")
    if method == "GET" and tail == "/status/stream" and fal.status_stream:
        with fal.lock:
            known = rid in fal.requests
            fal.status_streams += known
        return (200, Stream(rid), "text/event-stream") if known \
            else (404, {"detail": "request not found"}, "application/json")
    if method == "GET" and tail is None:
        return (*fal.result(rid), "application/json")
    return 404, {"detail": "unknown path"}, "application/json"


def main() -> None:  # pragma: no cover - manual dry runs
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--service", type=float, default=0.2)
    args = parser.parse_args()
    with FakeFal(tempfile.mkdtemp(), port=args.port, service_s=args.service) as fal:
        print(f"export FAL_QUEUE_RUN_HOST={fal.host} SSL_CERT_FILE={fal.cert_path} FAL_KEY=test",
              flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":  # pragma: no cover
    main()
