"""The HTTP side of the fal generator: error classes, result fetch, cancel, image download.

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


def apply_host_env(fal_module: Any) -> None:
    """Make fal-client follow FAL_RUN_HOST / FAL_QUEUE_RUN_HOST as they are now (it reads
    them once at import)."""
    if "FAL_RUN_HOST" in os.environ or "FAL_QUEUE_RUN_HOST" in os.environ:
        run_host = os.environ.get("FAL_RUN_HOST", "fal.run")
        fal_module.RUN_URL_FORMAT = f"https://{run_host}/"
        fal_module.QUEUE_URL_FORMAT = f"https://{queue_host()}/"


async def get_result(handle: Any) -> Any:
    """The result JSON of a request whose status said COMPLETED: one GET of its
    response_url on the handle's authenticated client (fal-client's `handle.get()` would
    poll the status once more first). HTTP errors raise fal-client's FalClientHTTPError,
    so they are classified like every other call."""
    from fal_client import FalClientHTTPError

    response = await handle.client.get(handle.response_url, timeout=poll_timeout())
    if response.status_code >= 400:
        try:
            body = response.json()
            detail = body.get("detail", response.text) if isinstance(body, dict) else response.text
        except ValueError:
            detail = response.text
        raise FalClientHTTPError(str(detail), response.status_code, dict(response.headers),
                                 response=response)
    return response.json()


def poll_timeout() -> Any:
    import httpx

    return httpx.Timeout(120.0, connect=30.0)  # as fal-client's QUEUE_POLL_TIMEOUT


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


async def download(client: Any, url: str) -> bytes:
    """Image bytes from a data: URI or an http(s) URL (3 tries on transient errors)."""
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
    last: Exception | None = None
    for attempt in range(3):
        try:
            response = await client.get(url)
            if response.status_code == 200:
                return response.content
            last = RuntimeError(f"HTTP {response.status_code}")
            if response.status_code < 500 and response.status_code != 429:
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
