"""Where the server's time goes (`python -m autojudge.arena ... --timings FILE`).

Off by default. When on, every answered `POST /api/vote` is split into the stages it
passed through, from the moment the ASGI app gets the request to the moment its last
byte is handed to the socket:

    checks    request in -> vote handed to the writer thread (body, JSON, token, rate)
    queued    -> its group commit begins (waits for the commit before it, and for the GIL)
    commit    -> its transaction is on disk (INSERT + fsync of the whole batch)
    to_loop   -> the event loop sees the result (the handler looks at each of its next
                 turns, then the writer's callback sets it; the loop is busy meanwhile)
    resume    -> the vote's handler runs again (about 0 when it saw the result itself)
    answer    -> the answer's last byte is written (ratings, JSON, headers)

plus the server time of every request by route (`serve GET /img` ...), how late the
event loop wakes a timer (`loop_lag`: how long any ready callback waits), the votes per
commit (`batch`), and the CPU seconds of the server and of its refit worker. At exit the
summary is written to FILE as JSON (`Timings.summary`); the load benchmark prints it.

Example:
    >>> t = Timings(); t.add("commit", 0.002); t.add("commit", 0.004)
    >>> t.summary()["stages"]["commit"]["n"]
    2
"""
from __future__ import annotations

import asyncio
import collections
import contextvars
import gc
import json
import os
import resource
import time
from pathlib import Path
from typing import Any

VOTE_STAGES = ("checks", "queued", "commit", "to_loop", "resume", "answer")
# the stamps of the vote request being served (set by TimingMiddleware, None otherwise)
_STAMPS: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar(
    "arena_stamps", default=None)


def stamps() -> dict[str, float] | None:
    """The current request's stamps (None when timing is off): the vote writer adds
    its own (`enqueued`, `begin`, `end`, `settled`, `resumed`)."""
    return _STAMPS.get()


class Timings:
    """Samples per stage (seconds), kept in memory until the server stops."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}
        self.batches: list[int] = []
        self.votes: list[tuple[float, ...]] = []  # per answered vote, its stages
        self._cpu0 = time.process_time()
        self._wall0 = time.monotonic()

    def add(self, stage: str, seconds: float) -> None:
        self.samples.setdefault(stage, []).append(seconds)

    def vote(self, marks: dict[str, float]) -> None:
        """One answered vote's stages, from its stamps (incomplete ones: a refusal)."""
        order = ("in", "enqueued", "begin", "end", "settled", "resumed", "out")
        if any(name not in marks for name in order):
            return
        stages = tuple(marks[b] - marks[a] for a, b in zip(order, order[1:]))
        for stage, seconds in zip(VOTE_STAGES, stages):
            self.add(stage, seconds)
        self.votes.append(stages)

    def summary(self) -> dict[str, Any]:
        """Per stage: n, mean, p50, p99, max (ms) and total seconds; votes per commit;
        CPU seconds (server, refit worker) over the wall seconds served."""
        stages = {}
        for stage, values in self.samples.items():
            ordered = sorted(values)
            stages[stage] = {"n": len(ordered), "total_s": round(sum(ordered), 3),
                             **{key: round(1000 * value, 3) for key, value in (
                                 ("mean_ms", sum(ordered) / len(ordered)),
                                 ("p50_ms", _pct(ordered, 50)), ("p99_ms", _pct(ordered, 99)),
                                 ("max_ms", ordered[-1]))}}
        batches = sorted(self.batches)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        tracked = collections.Counter(type(o).__name__ for o in gc.get_objects())
        return {"stages": stages, "vote_stages": list(VOTE_STAGES),
                "slowest_votes": self._slowest(),
                "batch": {"commits": len(batches),
                          "mean": round(sum(batches) / len(batches), 2) if batches else 0,
                          "p99": _pct(batches, 99) if batches else 0,
                          "max": batches[-1] if batches else 0},
                "cpu_s": {"server": round(time.process_time() - self._cpu0, 2),
                          "refit_worker": round(children.ru_utime + children.ru_stime, 2)},
                "wall_s": round(time.monotonic() - self._wall0, 2),
                # what a full collection walks (frozen objects are left out)
                "gc_tracked": {"frozen": gc.get_freeze_count(),
                               "walked": sum(tracked.values()),
                               "most": dict(tracked.most_common(8))}}

    def _slowest(self, share: float = 0.01) -> dict[str, float]:
        """Mean ms of each stage over the slowest `share` of votes (by time in the app):
        where a p99 vote's time went."""
        if not self.votes:
            return {}
        ordered = sorted(self.votes, key=sum, reverse=True)
        tail = ordered[:max(1, int(len(ordered) * share))]
        means = [sum(v[k] for v in tail) / len(tail) for k in range(len(VOTE_STAGES))]
        return {"n": len(tail), "total_ms": round(1000 * sum(means), 3),
                **{stage: round(1000 * m, 3) for stage, m in zip(VOTE_STAGES, means)}}

    def write(self, path: str | Path) -> None:
        tmp = Path(f"{path}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(self.summary(), indent=1))
        tmp.replace(path)


def _pct(ordered: list, q: float) -> Any:
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


async def _probe_loop(timings: Timings, interval_s: float = 0.01) -> None:
    """Samples how late the event loop wakes a timer: the wait of any ready callback."""
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(interval_s)
        timings.add("loop_lag", max(0.0, loop.time() - before - interval_s))


class Probes:
    """The event-loop lag probe and the garbage collector's pauses (`gc genN`), from
    `start()` (in the event loop) to `stop()`."""

    def __init__(self, timings: Timings):
        self.timings = timings
        self._task: asyncio.Task | None = None
        self._gc_started = 0.0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(_probe_loop(self.timings))
        gc.callbacks.append(self._on_gc)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.timings.add(f"gc gen{info['generation']}",
                             time.perf_counter() - self._gc_started)


class TimingMiddleware:
    """Times every HTTP request by route, and a vote's stages (pure ASGI)."""

    def __init__(self, app: Any, timings: Timings):
        self.app = app
        self.timings = timings

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        route = "/img" if path.startswith("/img/") else "/static" \
            if path.startswith("/static/") else path
        name = f"serve {scope['method']} {route}"
        marks = {"in": time.perf_counter()}
        token = _STAMPS.set(marks if route == "/api/vote" else None)

        async def timed_send(message: dict) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                marks["out"] = time.perf_counter()
                if name != "serve GET /events":
                    self.timings.add(name, marks["out"] - marks["in"])
                if route == "/api/vote":
                    self.timings.vote(marks)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            _STAMPS.reset(token)
