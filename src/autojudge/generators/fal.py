"""fal.ai generator on the official fal-client async queue API.

One model config = one fal endpoint family: `endpoint` for text-to-image, optional
`img2img_endpoint` and `inpaint_endpoint` for editing prompts (the init image and mask go
as data: URIs in `image_url` / `mask_url`). Requests run concurrently through
`fal_client.AsyncClient.submit` -> fal's status stream (server-sent events; status polls
where a server has none) -> result:

- at most `concurrency` requests are queued or running at fal at once (an asyncio
  semaphore, freed when fal reports COMPLETED: fetching the result and the image does
  not hold a slot);
- every call goes through one keep-alive aiohttp session (fal_http; fal-client's own
  calls too, under its httpx client), kept open on generate()'s own event loop thread
  from one call to the next; the status stream, result and image GETs skip httpx's
  client layer (see fal_http for the CPU this saves);
- per-request `timeout_s` (submit to result); a timed-out request is cancelled through
  its cancel_url and recorded as `Failure("timeout", retryable=True)`, so a later run
  asks again;
- retries with exponential backoff (`backoff_s` * 2^n, capped at `backoff_max_s`) on
  HTTP 429 / 5xx, transport errors and malformed JSON, at most `max_retries` times;
  fal-client retries 408/409/429 and transport errors itself, so its own attempts per
  HTTP call are bounded by `client_max_attempts` (fal_client.client.MAX_ATTEMPTS is set
  for the duration of a call and restored after). Exhausted retries are retryable
  failures; 4xx (bad arguments, auth) and NSFW-flagged images are permanent;
- images arrive as https URLs (downloaded without the fal key, redirects followed) or
  data: URIs; either way the bytes are stored content-addressed, never only a URL;
- per image meta: request_id, inference_time_s (fal's metrics / timings), queue_wait_s
  (submit to COMPLETED minus inference time: queue + routing; without metrics, when the
  request was first seen out of the queue), attempts, seed returned, nsfw, width,
  height; latency_s is the wall time of the whole request;
- cost = price_per_image_usd + price_per_megapixel_usd * width * height / 1e6 for every
  completed request (NSFW-flagged ones too: fal bills them), 0 for failed ones.

Auth: FAL_KEY, or FAL_KEY_ID + FAL_KEY_SECRET; `check()` fails with one line when neither
is set. The key goes to the queue only (fal-client's headers, also on the status stream
and result GETs): never to image URLs, the fingerprint, the config, a failure message or
the meta. Host: fal-client reads FAL_RUN_HOST and FAL_QUEUE_RUN_HOST once at import; this
generator re-reads them at every call, so any fal-compatible endpoint works (it must
speak https; set SSL_CERT_FILE for a private CA).

Example:
    >>> gen = FalGenerator("flux_schnell", FalGenerator.Config(endpoint="fal-ai/flux/schnell"))
    >>> gen.fingerprint()["params"]["endpoint"]
    'fal-ai/flux/schnell'
"""
from __future__ import annotations

import asyncio
import base64
import logging
import mimetypes
import os
import random
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Sequence

from autojudge.errors import AutojudgeError
from autojudge.generators.fal_transport import (NoStream, Permanent, Slot, Transient,
                                                apply_host_env, cancel, classify,
                                                close_connections, decode_size, download,
                                                fal_client_on, follow_status, get_result,
                                                one_line, queue_host, serve_loop, stop_loop)
from autojudge.runtime.extras import require
from autojudge.sdk import Generator
from autojudge.types import Failure, GenOutput, GenRequest

__all__ = ["FalGenerator", "fal_key", "data_uri"]

_DECODE_INLINE_BYTES = 64 * 1024  # larger images decode on a thread (see _finish)
_MAX_ATTEMPTS_LOCK = threading.Lock()


def fal_key() -> str | None:
    """The fal API key from the environment (FAL_KEY, else FAL_KEY_ID:FAL_KEY_SECRET)."""
    key = os.environ.get("FAL_KEY", "").strip()
    if key:
        return key
    key_id = os.environ.get("FAL_KEY_ID", "").strip()
    secret = os.environ.get("FAL_KEY_SECRET", "").strip()
    return f"{key_id}:{secret}" if key_id and secret else None


def data_uri(path: str) -> str:
    """A file as a data: URI (how image inputs travel to fal endpoints)."""
    mime = mimetypes.guess_type(path)[0] or "image/png"
    with open(path, "rb") as handle:
        return f"data:{mime};base64,{base64.b64encode(handle.read()).decode()}"


def _default_arguments() -> Dict[str, Any]:
    return {}


class FalGenerator(Generator):
    """Images from a fal.ai endpoint (see the module docstring)."""

    kind = "fal"
    #: params that change how requests are sent, never what comes back
    non_semantic = ("price_per_image_usd", "price_per_megapixel_usd", "concurrency",
                    "timeout_s", "max_retries", "backoff_s", "backoff_max_s",
                    "client_max_attempts", "poll_interval_s", "batch_size")
    #: in a worker pool, one worker: it keeps `concurrency` requests in flight itself
    pool_resources = {"actors": 1}

    @dataclass
    class Config:
        """Params of the `fal` generator (request defaults are data: override any of them
        from the command line, e.g. model.flux_dev.num_inference_steps=20).

        Attributes:
            endpoint: text-to-image endpoint id, e.g. "fal-ai/flux/schnell".
            img2img_endpoint: endpoint for img2img / style prompts ("" = unsupported:
                those prompts fail with kind "unsupported_task").
            inpaint_endpoint: endpoint for inpainting prompts ("" = unsupported).
            image_size: fal size preset (square_hd, square, portrait_4_3, portrait_16_9,
                landscape_4_3, landscape_16_9); "" sends none. Not sent for editing
                prompts (the init image sets the size).
            width, height: explicit size in pixels; both > 0 override image_size.
            num_inference_steps, guidance_scale: sent when not null.
            negative_prompt: sent when not empty.
            strength: default img2img/inpaint strength when the prompt has none (null:
                the endpoint's default).
            enable_safety_checker: fal's NSFW filter; flagged images are recorded as
                permanent "nsfw" failures.
            output_format: "jpeg" or "png" (as the endpoint accepts).
            sync_mode: ask for data: URIs instead of CDN URLs.
            send_seed: send the request's seed (same seed -> same image on fal).
            arguments: any other endpoint argument, sent as is (e.g. {acceleration: high}).
            price_per_image_usd, price_per_megapixel_usd: the endpoint's price, as data.
            concurrency: requests in flight at once.
            timeout_s: per request, submit to result; then it is cancelled.
            max_retries: retries of one request on 429/5xx/transport/malformed JSON.
            backoff_s, backoff_max_s: exponential backoff between retries (with jitter).
            client_max_attempts: fal-client's own attempts per HTTP call.
            poll_interval_s: status polling interval (servers without the status stream).
            batch_size: requests per generate() call from the pipeline (a killed run
                loses at most one batch in flight).
        """

        endpoint: str = "fal-ai/flux/schnell"
        img2img_endpoint: str = ""
        inpaint_endpoint: str = ""
        image_size: str = "square_hd"
        width: int = 0
        height: int = 0
        num_inference_steps: Optional[int] = None
        guidance_scale: Optional[float] = None
        negative_prompt: str = ""
        strength: Optional[float] = None
        enable_safety_checker: bool = True
        output_format: str = "jpeg"
        sync_mode: bool = False
        send_seed: bool = True
        arguments: Dict[str, Any] = field(default_factory=_default_arguments)
        price_per_image_usd: float = 0.0
        price_per_megapixel_usd: float = 0.0
        concurrency: int = 16
        timeout_s: float = 120.0
        max_retries: int = 3
        backoff_s: float = 1.0
        backoff_max_s: float = 30.0
        client_max_attempts: int = 3
        poll_interval_s: float = 0.1
        batch_size: int = 64

    def __init__(self, name: str, config: "FalGenerator.Config | None" = None):
        super().__init__(name, config)
        c = self.config
        where = self.where
        if c.concurrency < 1:
            raise AutojudgeError(f"{where}: concurrency must be >= 1, got {c.concurrency}")
        if c.timeout_s <= 0:
            raise AutojudgeError(f"{where}: timeout_s must be > 0, got {c.timeout_s}")
        if c.max_retries < 0 or c.client_max_attempts < 1:
            raise AutojudgeError(f"{where}: max_retries must be >= 0 and client_max_attempts "
                                 f">= 1")
        if c.price_per_image_usd < 0 or c.price_per_megapixel_usd < 0:
            raise AutojudgeError(f"{where}: prices must be >= 0")
        if (c.width > 0) != (c.height > 0):
            raise AutojudgeError(f"{where}: set both width and height (or neither, to use "
                                 f"image_size)")
        self._inference_times: deque[float] = deque(maxlen=64)
        self._status_stream = True  # until a server answers that it has none
        self._reset_loop()

    def _reset_loop(self) -> None:
        self._loop: Any = None  # generate()'s event loop, on its own thread
        self._loop_pid = 0
        self._loop_lock = threading.Lock()
        self._kept: dict[str, Any] = {}  # "now": (identity, transport, fal client) on it

    def __getstate__(self) -> dict[str, Any]:  # a copy gets its own loop and connections
        return {k: v for k, v in self.__dict__.items()
                if k not in ("_loop", "_loop_pid", "_loop_lock", "_kept")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_loop()

    def _typical_inference_s(self) -> float:
        """Median inference time fal reported for this generator's recent requests."""
        times = sorted(self._inference_times)
        return times[len(times) // 2] if times else 0.0

    # ------------------------------------------------------------------ identity

    def fingerprint_params(self) -> dict[str, Any]:
        params = super().fingerprint_params()
        params["queue_host"] = queue_host()  # another host may serve other weights
        return params

    def check(self) -> None:
        where = f"model '{self.name}'"
        require("fal", where)  # first
        if not self.config.endpoint.strip():
            raise AutojudgeError(f"{where}: no fal endpoint; set model.{self.name}.endpoint, "
                                 f"e.g. fal-ai/flux/schnell")
        if fal_key() is None:
            raise AutojudgeError(f"{where}: fal needs an API key: set FAL_KEY (or FAL_KEY_ID "
                                 f"and FAL_KEY_SECRET) in the environment "
                                 f"(keys: https://fal.ai/dashboard/keys)")

    # ------------------------------------------------------------------ requests

    def endpoint_for(self, request: GenRequest) -> str:
        task = getattr(request.prompt, "task", "txt2img")
        return {"txt2img": self.config.endpoint, "img2img": self.config.img2img_endpoint,
                "inpaint": self.config.inpaint_endpoint}.get(task, "")

    def arguments(self, request: GenRequest) -> dict[str, Any]:
        """The JSON arguments sent for `request` (image inputs as data: URIs)."""
        c = self.config
        prompt = request.prompt
        task = getattr(prompt, "task", "txt2img")
        args: dict[str, Any] = {"prompt": prompt.generation_text(), "num_images": 1,
                                "enable_safety_checker": c.enable_safety_checker,
                                "output_format": c.output_format, "sync_mode": c.sync_mode}
        if c.send_seed:
            args["seed"] = int(request.seed)
        if task == "txt2img":
            if c.width > 0 and c.height > 0:
                args["image_size"] = {"width": c.width, "height": c.height}
            elif c.image_size:
                args["image_size"] = c.image_size
        if c.num_inference_steps is not None:
            args["num_inference_steps"] = c.num_inference_steps
        if c.guidance_scale is not None:
            args["guidance_scale"] = c.guidance_scale
        if c.negative_prompt:
            args["negative_prompt"] = c.negative_prompt
        args.update(dict(c.arguments))
        if task in ("img2img", "inpaint"):
            args["image_url"] = data_uri(prompt.init_image)
            strength = prompt.strength if prompt.strength is not None else c.strength
            if strength is not None:
                args["strength"] = float(strength)
        if task == "inpaint":
            args["mask_url"] = data_uri(prompt.mask)
        return args

    # ------------------------------------------------------------------ generate

    def generate(self, requests: Sequence[GenRequest]) -> list[GenOutput]:
        """Runs on this generator's own event loop (a daemon thread, also when called
        from inside another loop), where connections stay open from one call to the
        next: a batch does not pay the TLS handshakes again."""
        if not requests:
            return []
        with self._loop_lock:
            if self._loop is None or self._loop_pid != os.getpid():  # none yet, or forked
                self._loop, self._loop_pid, self._kept = asyncio.new_event_loop(), \
                    os.getpid(), {}
                threading.Thread(target=serve_loop, args=(self._loop,), daemon=True,
                                 name=f"fal-{self.name}").start()
                # once this generator is gone: close its connections, end the thread
                weakref.finalize(self, stop_loop, self._loop, self._kept)
        future = asyncio.run_coroutine_threadsafe(self.agenerate(requests), self._loop)
        try:
            return future.result()
        except BaseException:  # interrupted (Ctrl-C): stop this call's requests too
            future.cancel()
            raise

    async def _connections(self) -> tuple[Any, Any, bool]:
        """(transport, fal client, whether to close them after this call): kept on
        generate()'s loop while the key and certificate settings stay the same."""
        from autojudge.generators.fal_http import make_transport  # imports aiohttp

        def fresh() -> tuple[Any, Any]:
            transport = make_transport()
            return transport, fal_client_on(transport, fal_key(), self.config.timeout_s)

        if asyncio.get_running_loop() is not self._loop:
            return (*fresh(), True)
        import urllib.request

        identity = (fal_key(), os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"),
                    sorted(urllib.request.getproxies().items()))
        kept = self._kept.get("now")
        if kept is None or kept[0] != identity:
            if kept is not None:
                await close_connections(*kept[1:])
            kept = self._kept["now"] = (identity, *fresh())
        return (*kept[1:], False)

    async def agenerate(self, requests: Sequence[GenRequest]) -> list[GenOutput]:
        """generate() for callers that already run an event loop."""
        import fal_client.client as fal_module

        apply_host_env(fal_module)
        for noisy in ("httpx", "httpcore"):  # one INFO line per HTTP call otherwise
            logging.getLogger(noisy).setLevel(logging.WARNING)
        # one connection layer for every call (see fal_http: httpx's default transport cost
        # most of the client's CPU at 32+ requests in flight)
        transport, client, close = await self._connections()
        semaphore = asyncio.Semaphore(self.config.concurrency)
        downloads = asyncio.Semaphore(self.config.concurrency)
        with _MAX_ATTEMPTS_LOCK:
            saved = fal_module.MAX_ATTEMPTS
            fal_module.MAX_ATTEMPTS = self.config.client_max_attempts
        try:
            async def bounded(request: GenRequest) -> GenOutput:
                # the slot is held while the request is queued or running at fal; fetching
                # its result and image happens after the slot is free for the next request
                await semaphore.acquire()
                slot = Slot(semaphore)
                try:
                    step = await self._one(client, transport, request, slot.release)
                finally:
                    slot.release()
                if isinstance(step, GenOutput):
                    return step
                async with downloads:
                    return await self._finish(transport, *step)

            return list(await asyncio.gather(*(bounded(r) for r in requests)))
        finally:
            with _MAX_ATTEMPTS_LOCK:
                fal_module.MAX_ATTEMPTS = saved
            if close:
                await close_connections(transport, client)

    async def _one(self, client: Any, transport: Any, request: GenRequest,
                   on_completed: Callable[[], None] = lambda: None) -> Any:
        """A failed GenOutput, or what `_finish` needs to download the image.

        `on_completed` is called once fal reports the request COMPLETED (its slot at fal
        is free; the result is fetched after)."""
        start = time.perf_counter()
        endpoint = self.endpoint_for(request)
        task = getattr(request.prompt, "task", "txt2img")
        meta: dict[str, Any] = {"endpoint": endpoint, "task": task, "attempts": 0}

        def failed(kind: str, message: str, retryable: bool, cost: float = 0.0) -> GenOutput:
            return GenOutput(None, time.perf_counter() - start, cost, meta=meta,
                             failure=Failure(kind, one_line(f"model '{self.name}': {message}"),
                                             retryable))

        if not endpoint:
            return failed("unsupported_task", f"no endpoint for task {task} (set "
                          f"{'img2img' if task == 'img2img' else 'inpaint'}_endpoint)", False)
        try:
            args = self.arguments(request)
        except OSError as exc:
            return failed("bad_input", f"cannot read the init image or mask ({exc})", False)
        state: dict[str, Any] = {"handle": None, "on_completed": on_completed}
        from autojudge.generators.fal_http import within  # no extra task, unlike wait_for

        try:
            result = await within(self.config.timeout_s,
                                  self._run(client, transport, endpoint, args, state, meta))
        except (asyncio.TimeoutError, TimeoutError):
            handle = state.get("handle")
            if handle is not None:
                meta["request_id"] = handle.request_id
                meta["cancelled"] = await cancel(handle)
            return failed("timeout", f"no result within {self.config.timeout_s:g}s"
                          f"{' (cancelled)' if meta.get('cancelled') else ''}", True)
        except Permanent as exc:
            return failed(exc.kind, str(exc), False)
        except Transient as exc:
            return failed(exc.kind, f"{exc} (gave up after {meta['attempts']} attempts)", True)
        except Exception as exc:  # an unexpected client bug: fail this request only
            return failed("generator_error", f"{type(exc).__name__}: {exc}", True)
        return result, meta, start, failed

    async def _run(self, client: Any, transport: Any, endpoint: str, args: dict[str, Any],
                   state: dict[str, Any], meta: dict[str, Any]) -> Any:
        """Submit (once it is accepted), wait and fetch, retrying transient errors."""
        c = self.config
        retries = 0
        while True:
            meta["attempts"] += 1
            try:
                if state["handle"] is None:
                    submitted = time.perf_counter()
                    handle = await client.submit(endpoint, args)
                    state["handle"], state["submitted"] = handle, submitted
                    meta["request_id"] = handle.request_id
                handle = state["handle"]
                if "completed" not in state:  # COMPLETED is final: a retry only refetches
                    await self._wait(handle, transport, state)
                metrics = state["metrics"]
                if isinstance(metrics.get("inference_time"), (int, float)):
                    meta["inference_time_s"] = float(metrics["inference_time"])
                    self._inference_times.append(meta["inference_time_s"])
                    # time to completion not spent inferring: queue + routing (+ polling)
                    meta["queue_wait_s"] = round(max(
                        0.0, state["completed"] - meta["inference_time_s"]), 4)
                else:  # no metrics: when the request was first seen out of the queue
                    meta["queue_wait_s"] = round(state["left_queue"], 4)
                return await get_result(handle, transport)
            except Exception as exc:
                error = classify(exc)
                if isinstance(error, Permanent) or retries >= c.max_retries:
                    raise error from exc
                retries += 1
                delay = min(c.backoff_s * 2 ** (retries - 1), c.backoff_max_s)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))

    async def _wait(self, handle: Any, transport: Any, state: dict[str, Any]) -> None:
        """Until fal reports the request COMPLETED: its status stream where the server has
        one, else status polls (the first after the median inference time seen so far, at
        least poll_interval_s, then every poll_interval_s)."""
        from fal_client import Completed, Queued

        def seen(status: Any) -> bool:
            if not isinstance(status, Queued) and "left_queue" not in state:
                state["left_queue"] = time.perf_counter() - state["submitted"]
            if not isinstance(status, Completed):
                return False
            state["metrics"] = status.metrics or {}
            state["completed"] = time.perf_counter() - state["submitted"]
            state["on_completed"]()
            return True

        if self._status_stream:
            try:
                return await follow_status(handle, transport, seen)
            except NoStream:
                self._status_stream = False  # this server only answers polls
        c = self.config
        delay = max(c.poll_interval_s, min(self._typical_inference_s(), 30.0))
        while True:
            await asyncio.sleep(delay)
            delay = c.poll_interval_s
            if seen(await handle.status(with_logs=False)):
                return

    async def _finish(self, transport: Any, result: Any, meta: dict[str, Any], start: float,
                      failed: Any) -> GenOutput:
        images = result.get("images") if isinstance(result, dict) else None
        if not images or not isinstance(images[0], dict) or not images[0].get("url"):
            detail = result.get("detail") if isinstance(result, dict) else None
            return failed("bad_response", f"no image in the response"
                          f"{f' ({detail})' if detail else ''}", True)
        image = images[0]
        if result.get("seed") is not None:
            meta["seed"] = result["seed"]
        timings = result.get("timings") or {}
        if "inference_time_s" not in meta and isinstance(timings, dict) \
                and timings.get("inference") is not None:
            meta["inference_time_s"] = float(timings["inference"])
        nsfw = result.get("has_nsfw_concepts") or []
        meta["nsfw"] = bool(nsfw[0]) if isinstance(nsfw, list) and nsfw else False
        try:
            data = await download(transport, image["url"])
            # a full-size image takes milliseconds to decode: off the event loop (PIL
            # releases the GIL), where it would delay every other request's next step
            width, height = decode_size(data) if len(data) < _DECODE_INLINE_BYTES \
                else await asyncio.to_thread(decode_size, data)
        except Transient as exc:
            return failed(exc.kind, str(exc), True)
        meta.update({"width": width, "height": height, "image_source":
                     "data_uri" if str(image["url"]).startswith("data:") else "url"})
        c = self.config
        cost = c.price_per_image_usd + c.price_per_megapixel_usd * width * height / 1e6
        if meta["nsfw"]:
            return failed("nsfw", "the endpoint's safety checker flagged the image "
                          "(has_nsfw_concepts)", False, cost)
        return GenOutput(data, time.perf_counter() - start, cost, meta=meta)
