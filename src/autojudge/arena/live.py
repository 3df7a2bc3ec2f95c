"""The live human board: online Elo on every vote, Bradley-Terry refits in the background,
and Server-Sent Events to every open leaderboard page.

- A K-wise vote (`--k K`) is broken into the pairs it orders
  (`autojudge.ratings.rankings.break_rankings`, clustered by its prompt), and each pair
  counts as a pairwise vote would, in the same fit; the board's battles are pairs, its
  vote count counts each ranking once.
- A vote updates the online Elo (Chatbot Arena's K=4, base 10, scale 400, in vote order,
  exactly `autojudge.ratings.elo`) and the win/loss/tie counts at once, in O(1), and
  schedules a push; pushes are coalesced to at most one per `push_interval_s`.
- The headline rating (BT with prompt-clustered bootstrap CIs, `rate_battles`, board
  semantics of `autojudge.ratings.boards`), each judge's agreement with people
  (`autojudge.ratings.agreement`, with its CI) and, with `--sampling adaptive`, the next
  adaptive picks are computed in a worker process (niced: requests come first), at most
  once per `refit_interval_s` and only after new votes. The worker keeps its own copy of
  the votes, so each refit sends only the votes cast since the last one. A vote never
  waits for a refit: it reads the last finished one.

Example:
    >>> columns = {"model_a": ["a"], "model_b": ["b"], "winner": ["model_a"],
    ...            "prompt_id": ["p"], "seed": [0]}
    >>> constants = {"models": ["a", "b"], "rating": {"bootstrap_rounds": 10}, "judges": {}}
    >>> compute(columns, constants)["board"]["models"][0]["model"]
    'a'
"""
from __future__ import annotations

import asyncio
import bisect
import concurrent.futures as futures
import math
import multiprocessing
import sys
import time
import uuid
from typing import Any, Mapping, Sequence

HUMAN = "human"
COLUMNS = ("model_a", "model_b", "winner", "prompt_id", "seed")
# worker side: arena key -> {"constants": ..., "columns": the votes received so far}
_STATE: dict[str, dict[str, Any]] = {}


class WorkerOutOfStep(Exception):
    """The worker's copy of the votes does not match the server's (a new worker): the
    server sends everything again."""


# -- worker side (runs in the refit process; plain data in, plain data out) ------------

def init_worker() -> None:
    """Leave CPU to the server first; exit when the server is gone."""
    import os
    import threading

    try:
        os.nice(5)  # refits are background work: requests come first on a busy machine
    except OSError:
        pass
    parent = os.getppid()

    def watch() -> None:  # a killed server (SIGKILL) must not leave its worker behind
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
    import autojudge.ratings  # noqa: F401  (import once, not on the first refit)


def judge_constants(models: Sequence[str], judge_battles: Sequence[Any],
                    judge_boards: Sequence[dict], rating: Mapping[str, Any],
                    adaptive: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a refit needs besides the votes: the models, rating settings, each judge's
    keyed battles and board, and the adaptive scheduler's pool (or None)."""
    from autojudge.ratings.agreement import battle_keys

    judges = {}
    for board in judge_boards:
        mine = [b for b in judge_battles if b.judge == board["judge"]]
        judges[board["judge"]] = {
            "keys": battle_keys([b.prompt_id for b in mine], [b.seed for b in mine],
                                [b.model_a for b in mine], [b.model_b for b in mine],
                                [b.winner for b in mine]),
            "board": board}
    return {"models": list(models), "rating": dict(rating), "judges": judges,
            "adaptive": adaptive}


def refit(job: Mapping[str, Any]) -> dict[str, Any]:
    """Worker entry: add the job's new votes to this arena's copy, then `compute`.

    Raises:
        WorkerOutOfStep: this worker lacks the earlier votes (it was restarted).
    """
    state = _STATE.get(job["key"])
    if job.get("constants") is not None:  # a reset: everything is in the job
        state = _STATE[job["key"]] = {"constants": job["constants"],
                                      "columns": {c: [] for c in COLUMNS}}
    if state is None or len(state["columns"]["winner"]) != job["start"]:
        raise WorkerOutOfStep(f"worker holds {0 if state is None else len(state['columns']['winner'])}"
                              f" votes, the job starts at {job['start']}")
    for name in COLUMNS:
        state["columns"][name].extend(job["append"][name])
    return compute(state["columns"], state["constants"], job.get("adaptive_seed"))


def compute(columns: Mapping[str, Sequence[Any]], constants: Mapping[str, Any],
            adaptive_seed: int | None = None) -> dict[str, Any]:
    """The human board, each judge's agreement with it, and the adaptive picks."""
    from autojudge.ratings import RatingConfig, board_structure, rate_battles
    from autojudge.ratings.agreement import battle_keys, pairwise_agreement, rank_correlation
    from autojudge.stages.agreement import comparable_ratings

    started = time.perf_counter()
    a, b, w, pid = (columns[c] for c in ("model_a", "model_b", "winner", "prompt_id"))
    config = RatingConfig(**constants["rating"])
    rows = rate_battles(a, b, w, pid, config=config, models=list(constants["models"]))
    board = {"judge": HUMAN, "tag": None, "method": "bt", "n_battles": len(w),
             "n_prompts": len(set(pid)), **board_structure(rows), "models": rows}
    human = battle_keys(pid, columns["seed"], a, b, w)
    agreement = []
    for judge, data in constants["judges"].items():
        res = pairwise_agreement(data["keys"], human, rounds=config.bootstrap_rounds,
                                 seed=config.seed, confidence=config.confidence)
        corr = rank_correlation(*comparable_ratings(data["board"], board))
        row = {"judge_a": judge, "judge_b": HUMAN, **res, **corr}
        agreement.append({k: round(v, 4) if isinstance(v, float) else v
                          for k, v in row.items()})
    picks = None
    if constants.get("adaptive") is not None and adaptive_seed is not None:
        from autojudge.arena.pairs import adaptive_picks

        picks = adaptive_picks(constants["adaptive"], a, b, w, pid, seed=adaptive_seed)
    return {"board": board, "agreement": agreement, "picks": picks, "n_votes": len(w),
            "seconds": time.perf_counter() - started}


# -- server side ---------------------------------------------------------------------

class Broadcaster:
    """Fans one message out to every subscriber; a slow subscriber only misses
    intermediate states (each message is the whole leaderboard), never the newest."""

    def __init__(self, depth: int = 4):
        self.depth = depth
        self._queues: set[asyncio.Queue] = set()

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=self.depth)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._queues.discard(queue)

    def publish(self, message: str) -> None:
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(message)

    def __len__(self) -> int:
        return len(self._queues)


class LiveRatings:
    """The human votes in memory and the latest board built from them.

    Args:
        constants: `judge_constants(...)`: models, rating settings (RatingConfig fields),
            judges, adaptive pool.
        refit_interval_s: least seconds between refits.
        workers: "process" (default: refits never compete with requests for the GIL)
            or "thread".

    `on_change(kind)` is called in the event loop when the board changed (a vote was
    counted, a refit landed); the app coalesces these into SSE pushes. `on_picks(picks)`
    receives the adaptive picks of each refit.
    """

    def __init__(self, constants: Mapping[str, Any], refit_interval_s: float = 2.0,
                 workers: str = "process"):
        self.models = list(constants["models"])
        rating = constants["rating"]
        self.rating = dict(rating)
        self.constants = dict(constants)
        self.refit_interval_s = refit_interval_s
        self.workers = workers
        self.key = uuid.uuid4().hex  # this arena's votes in the worker
        self._sent = 0  # votes the worker holds (0: send everything with the constants)
        self.k = float(rating.get("elo_k", 4.0))
        self.scale = float(rating.get("scale", 400.0))
        self.init = float(rating.get("init_rating", 1000.0))
        self.columns: dict[str, list] = {c: [] for c in COLUMNS}  # one entry per pair
        self._vote_ends: list[int] = []  # per vote, the pairs counted once it is in
        self.elo = {m: self.init for m in self.models}
        self.counts = {m: [0, 0, 0, 0] for m in self.models}  # battles, wins, losses, ties
        self.prompts: set[str] = set()
        self.board: dict[str, Any] = compute(self.columns, {
            **self.constants, "rating": {**self.rating, "bootstrap_rounds": 0}})["board"]
        self.agreement: list[dict[str, Any]] = []
        self.refit_n_votes = 0
        self.refit_at: float | None = None
        self.refit_seconds: float | None = None
        self.refit_error: str | None = None
        self.on_change = lambda kind: None
        self.on_picks = lambda picks: None
        self._dirty: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._pool: futures.Executor | None = None
        self._pool_worked = False

    @property
    def n_votes(self) -> int:
        """Votes counted (a ranking is one vote)."""
        return len(self._vote_ends)

    @property
    def n_pairs(self) -> int:
        """Pairs counted (a ranking counts the pairs it orders)."""
        return len(self.columns["winner"])

    def add(self, model_a: str, model_b: str, winner: str, prompt_id: str,
            seed: int | None) -> None:
        """Count one vote: online Elo and counts now, BT at the next refit."""
        self._add_pair(model_a, model_b, winner, prompt_id, seed)
        self._counted()

    def add_ranking(self, models: Sequence[str], ranks: Sequence[int | None],
                    prompt_id: str, seed: int | None) -> None:
        """Count one K-wise vote: the pairs it orders, as `add` counts a pair."""
        from autojudge.ratings.rankings import break_rankings

        broken = break_rankings([list(models)], [list(ranks)], clusters=[prompt_id])
        for a, b, winner, cluster in zip(broken.model_a, broken.model_b, broken.winner,
                                         broken.clusters):
            self._add_pair(str(a), str(b), str(winner), cluster, seed)
        self._counted()

    def _counted(self) -> None:
        self._vote_ends.append(self.n_pairs)
        if self._dirty is not None:
            self._dirty.set()
        self.on_change("vote")

    def _add_pair(self, model_a: str, model_b: str, winner: str, prompt_id: str,
                  seed: int | None) -> None:
        for name, value in zip(self.columns, (model_a, model_b, winner, prompt_id, seed)):
            self.columns[name].append(value)
        self.prompts.add(prompt_id)
        for m in (model_a, model_b):
            self.elo.setdefault(m, self.init)
            self.counts.setdefault(m, [0, 0, 0, 0])
        score = {"model_a": 1.0, "model_b": 0.0}.get(winner, 0.5)
        ra, rb = self.elo[model_a], self.elo[model_b]
        delta = self.k * (score - 1.0 / (1.0 + math.exp((rb - ra) * math.log(10) / self.scale)))
        self.elo[model_a], self.elo[model_b] = ra + delta, rb - delta
        for m, s in ((model_a, score), (model_b, 1.0 - score)):
            c = self.counts[m]
            c[0] += 1
            c[1 if s == 1.0 else 2 if s == 0.0 else 3] += 1

    def rows(self) -> list[dict[str, Any]]:
        """The human board's rows: BT rating and CI from the last refit, online Elo and
        counts as of the last vote."""
        out = []
        for row in self.board["models"]:
            battles, wins, losses, ties = self.counts.get(row["model"], [0, 0, 0, 0])
            live = {"battles": battles, "wins": wins, "losses": losses, "ties": ties,
                    "elo": self.elo[row["model"]] if battles else None}
            if row["rating"] is None and battles:
                live["unrated_reason"] = "rating pending: the next refit includes its votes"
            elif row["rating"] is None:
                live["unrated_reason"] = "no votes yet"
            out.append({**row, **live})
        return out

    def human_board(self) -> dict[str, Any]:
        return {**self.board, "n_battles": self.n_pairs,
                "n_prompts": len(self.prompts), "models": self.rows()}

    def _job(self) -> dict[str, Any]:
        """The votes the worker does not have yet (all of them, with the constants, when
        it has none)."""
        n = self.n_pairs
        job = {"key": self.key, "start": self._sent,
               "append": {c: v[self._sent:n] for c, v in self.columns.items()},
               "constants": self.constants if self._sent == 0 else None,
               "adaptive_seed": n if self.constants.get("adaptive") is not None else None}
        return job

    def refit_now(self) -> None:
        """A refit in this thread, now (tests; a server refits in the background)."""
        self._apply(compute(self.columns, self.constants, self.n_pairs))

    # -- background refits -------------------------------------------------------------
    async def start(self) -> None:
        """Start the worker and the refit loop (a first refit runs at once)."""
        self._dirty = asyncio.Event()
        self._dirty.set()
        self._pool = self._new_pool()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._pool is not None:  # waits for a refit in flight (under a second)
            self._pool.shutdown(wait=True, cancel_futures=True)
        _STATE.pop(self.key, None)  # a thread worker's copy of the votes

    def _new_pool(self) -> futures.Executor:
        if self.workers == "thread":
            return futures.ThreadPoolExecutor(max_workers=1)
        # spawn, not fork: the server's threads and event loop must not be copied
        return futures.ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"),
            initializer=init_worker)

    async def _loop(self) -> None:
        assert self._dirty is not None
        loop = asyncio.get_running_loop()
        last = -math.inf
        while True:
            await self._dirty.wait()
            wait = last + self.refit_interval_s - loop.time()
            if wait > 0:  # at most one refit per interval, however fast votes come
                await asyncio.sleep(wait)
            self._dirty.clear()
            last = loop.time()
            job = self._job()
            try:
                result = await loop.run_in_executor(self._pool, refit, job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a crashed worker must not stop the arena
                self._sent = 0  # whatever the worker holds, start it afresh
                self._refit_failed(exc)
                continue
            self._sent = result["n_votes"]
            self._pool_worked = True
            self._apply(result)

    def _refit_failed(self, exc: BaseException) -> None:
        self.refit_error = " ".join(f"{type(exc).__name__}: {exc}".split())
        then = "retrying with the next vote"
        if isinstance(exc, WorkerOutOfStep):
            self.refit_error = None  # a restarted worker: resend, no need to tell anyone
            if self._dirty is not None:
                self._dirty.set()
            return
        if isinstance(exc, futures.process.BrokenProcessPool):
            if not self._pool_worked:
                # A worker that never started (e.g. spawn cannot re-import the parent's
                # __main__) would fail forever: refit in a thread instead.
                self.workers = "thread"
                then = "refitting in a thread from now on"
            self._pool = self._new_pool()
            if self._dirty is not None:
                self._dirty.set()
        sys.stderr.write(f"warning: arena rating refit failed ({self.refit_error}); "
                         f"{then}\n")

    def _apply(self, result: Mapping[str, Any]) -> None:
        self.board = result["board"]
        self.agreement = result["agreement"]
        # the refit's pairs -> the votes they make up (a ranking's pairs go together)
        self.refit_n_votes = bisect.bisect_right(self._vote_ends, result["n_votes"])
        self.refit_at = time.time()
        self.refit_seconds = round(result["seconds"], 4)
        self.refit_error = None
        if result.get("picks") is not None:
            self.on_picks(result["picks"])
        self.on_change("refit")
