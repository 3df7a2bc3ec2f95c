"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1, for VLM judge tests.

The request's `model` picks the behaviour, so one server serves every scenario:

    prefer-brighter   answers JSON naming the brighter image (consistent under swap)
    noisy-brighter    the brighter image by Plackett-Luce: brightness / 40 plus Gumbel
                      noise drawn per request (a judge with a stated noise model)
    partial-order     K-wise: an order that leaves the last image out
    always-first      always "A" (pure position bias)
    markdown          like prefer-brighter, wrapped in ```json fences and prose
    garbage           "I like turtles" (unparseable)
    refuse            "I'm sorry, I can't help with that."
    flaky-429         first attempt of each distinct request: HTTP 429 (Retry-After: 0), then OK
    always-500        HTTP 500 every time
    slow              sleeps 2 s before answering (for client timeouts)
    unauthorized      HTTP 401 whose message echoes the key (as some servers do)

K-wise requests (the VLM judge's ranking prompts) get an order or the best by the same
rules. Every request is recorded (`server.requests`): model, Authorization header, the mean
brightness of each image in the order shown, the user text.
"""
from __future__ import annotations

import base64
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from autojudge.testing.fake_openai import send_json


def _brightness(data_url: str) -> float:
    from PIL import Image

    payload = data_url.split(",", 1)[1]
    with Image.open(io.BytesIO(base64.b64decode(payload))) as im:
        gray = im.convert("L")
        hist = gray.histogram()
        total = sum(hist)
        return sum(i * n for i, n in enumerate(hist)) / max(total, 1)


NOISE_SCALE = 40.0  # noisy-brighter: utility = brightness / 40 + Gumbel noise


def _utilities(light: list[float], key: str, nth: int) -> list[float]:
    """Plackett-Luce utilities of the images shown: brightness plus Gumbel noise drawn
    from the request (its images in order, its text) and how often it was asked, so
    two slot orders of one group are two independent draws."""
    import hashlib
    import math
    import random

    rng = random.Random(hashlib.sha256(f"{key}|{nth}".encode()).hexdigest())
    return [v / NOISE_SCALE - math.log(-math.log(rng.random())) for v in light]


def _noisy_pair(light: list[float], key: str, nth: int) -> dict[str, str]:
    u = _utilities(light, key, nth)
    return {"rationale": "noisy brightness", "winner": "A" if u[0] > u[1] else "B"}


def _ranking(model: str, light: list[float], text: str, key: str, nth: int) -> str:
    """K-wise answers: by brightness (ties grouped), noisy brightness, always slot
    order, or a broken answer, as an order or as the best (the request says which)."""
    k = len(light)
    if model == "garbage":
        return "I like turtles"
    if model == "refuse":
        return "I'm sorry, I can't help with that."
    if model == "partial-order":
        return json.dumps({"order": list(range(1, k))})
    if model == "noisy-brighter":
        u = _utilities(light, key, nth)
    else:
        u = [0.0] * k if model == "always-first" else list(light)
    slots = sorted(range(k), key=lambda i: (-u[i], i))
    if "Which of Images" in text:
        return json.dumps({"rationale": "best", "best": slots[0] + 1})
    order: list = []
    for i in slots:  # equal utilities: one tie group (always-first: slot order)
        if order and model != "always-first" and abs(u[i] - u[order[-1][0] - 1]) < 1e-9:
            order[-1].append(i + 1)
        else:
            order.append([i + 1])
    return json.dumps({"rationale": "by brightness",
                       "order": [g[0] if len(g) == 1 else g for g in order]})


class ScriptedVLM:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.seen: dict[str, int] = {}
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length))
                server.handle(self, body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> "ScriptedVLM":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # ---------------------------------------------------------------------------------

    def handle(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        model = body.get("model", "")
        content = body["messages"][-1]["content"]
        images = [part["image_url"]["url"] for part in content if part.get("type") == "image_url"]
        text = " ".join(part["text"] for part in content if part.get("type") == "text")
        light = [_brightness(u) for u in images]
        key = json.dumps([model, light, text])
        with self.lock:
            self.requests.append({"model": model, "auth": handler.headers.get("authorization"),
                                  "brightness": light, "text": text,
                                  "path": handler.path})
            self.seen[key] = self.seen.get(key, 0) + 1
            nth = self.seen[key]
        if model == "unauthorized":
            return self._error(handler, 401, "Incorrect API key provided: "
                               + str(handler.headers.get("authorization", "")).split()[-1])
        if model == "always-500":
            return self._error(handler, 500, "internal error")
        if model == "flaky-429" and nth == 1:
            return self._error(handler, 429, "slow down", {"retry-after": "0"})
        if model == "slow":
            time.sleep(2.0)
        if model == "garbage":
            return self._answer(handler, model, "I like turtles")
        if model == "refuse":
            return self._answer(handler, model, "I'm sorry, I can't help with that.")
        if "Rank Images" in text or "Which of Images" in text:  # K-wise (vlm_rank)
            return self._answer(handler, model, _ranking(model, light, text, key, nth))
        if model == "noisy-brighter":
            return self._answer(handler, model, json.dumps(_noisy_pair(light, key, nth)))
        if model == "always-first":
            return self._answer(handler, model, json.dumps(
                {"rationale": "The first one.", "winner": "A"}))
        if abs(light[0] - light[1]) < 1e-6:
            winner, why = "tie", "Equally bright."
        else:
            winner = "A" if light[0] > light[1] else "B"
            why = f"Image {winner} is brighter."
        answer = json.dumps({"rationale": why, "winner": winner})
        if model == "markdown":
            answer = f"Here is my judgment.\n```json\n{answer}\n```\nHope this helps."
        return self._answer(handler, model, answer)

    def _answer(self, handler: BaseHTTPRequestHandler, model: str, text: str) -> None:
        payload = {
            "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 50, "total_tokens": 1050},
        }
        self._send(handler, 200, payload)

    def _error(self, handler: BaseHTTPRequestHandler, status: int, message: str,
               headers: dict[str, str] | None = None) -> None:
        self._send(handler, status, {"error": {"message": message, "type": "test",
                                               "code": status}}, headers)

    _send = staticmethod(send_json)  # the shipped fake server's reply
