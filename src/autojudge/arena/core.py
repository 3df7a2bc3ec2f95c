"""The arena's state and logic behind every route, without HTTP: runs, sampler, tokens,
votes, live board. `autojudge.arena.app` puts it on the web.

Example:
    >>> arena = Arena(ArenaConfig(runs=["runs/demo"]))               # doctest: +SKIP
    >>> pair = arena.pair(session_id, tag=None)                       # doctest: +SKIP
    >>> await arena.vote(session_id, {"token": pair["token"], "choice": "left"})  # doctest: +SKIP
"""
from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from autojudge.arena.images import ImageCache, ImageUnavailable
from autojudge.arena.kwise import FORMS, KwiseArena
from autojudge.arena.live import Broadcaster, LiveRatings, judge_constants
from autojudge.arena.pairs import Sampler
from autojudge.arena.runs import ArenaRuns, load_runs
from autojudge.arena.timing import Probes, Timings
from autojudge.arena.tokens import Keys, Refusal, TokenBook
from autojudge.arena.votes import CHOICES, Vote, VoteStore, default_votes_path
from autojudge.arena.writer import VoteWriter
from autojudge.report.terminal import format_ci

_PAIR_TRIES = 20  # pairs tried per request before giving up on unservable ones
_UNSERVABLE = ("an image of this pair can no longer be served, so it cannot be voted on; "
               "nothing was recorded: fetch a new pair from GET /api/pair")


@dataclass
class ArenaConfig:
    """How to serve the arena (the CLI flags of `python -m autojudge.arena`).

    Attributes:
        runs: run folders or sweep folders.
        tags: serve only prompts with any of these tags (`--tag`).
        sampling: "undervoted" or "adaptive" (`autojudge.arena.pairs`).
        read_only: publish the leaderboard; no voting.
        votes_path: the votes database; None: `default_votes_path(runs)`.
        token_ttl_s: seconds a pair token stays valid.
        votes_per_minute: per-session vote rate limit (0: none); `burst` votes at once.
        refit_interval_s: least seconds between BT refits.
        push_interval_s: least seconds between two live pushes (votes are coalesced).
        bootstrap_rounds: bootstrap rounds of the human board and agreement CIs (None:
            the run's setting).
        workers: "process" or "thread" for refits.
        secret: HMAC key (None: random per server start).
        clock: time source (tests pass a fake one).
        seed: seed of the pair sampler's tie-breaks (None: random).
        k: images shown at once (`--k`): 2 is the pairwise arena; more serves K-wise
            groups (`autojudge.arena.kwise`) on the vote page and at GET /api/group.
        timings_path: where to write where the server's time went when it stops
            (`autojudge.arena.timing`; `--timings`); None: not measured.
    """

    runs: Sequence[str | Path]
    tags: Sequence[str] = ()
    sampling: str = "undervoted"
    read_only: bool = False
    votes_path: str | Path | None = None
    token_ttl_s: float = 900.0
    votes_per_minute: float = 120.0
    burst: float = 10.0
    refit_interval_s: float = 2.0
    push_interval_s: float = 0.1
    bootstrap_rounds: int | None = None
    workers: str = "process"
    secret: bytes | None = None
    clock: Callable[[], float] = time.time
    seed: int | None = None
    k: int = 2
    timings_path: str | Path | None = None


class Arena:
    """The arena's state and the logic behind every route (no HTTP in here)."""

    def __init__(self, config: ArenaConfig):
        self.config = config
        self.runs: ArenaRuns = load_runs(config.runs, config.tags)
        self.store = VoteStore(config.votes_path or default_votes_path(config.runs))
        self.writer: VoteWriter | None = None  # started with the server (start())
        self.sampler = Sampler(self.runs.pairs, {k: v.tags for k, v in self.runs.prompts.items()},
                               self.runs.models, config.sampling, config.seed)
        if config.k < 2:
            raise ValueError(f"k={config.k}: a vote compares at least 2 images")
        self.kwise = KwiseArena(self, _reveal) if config.k > 2 else None
        self.tokens = TokenBook(Keys(config.secret), config.token_ttl_s,
                                config.votes_per_minute, config.burst, clock=config.clock,
                                on_pending=self.sampler.on_pending,
                                on_group_pending=self.kwise.sampler.on_pending
                                if self.kwise else lambda group, delta: None)
        self.images = ImageCache()
        self.tags = self.runs.tags()
        self.broadcaster = Broadcaster()
        self.rating = self._rating_settings()
        adaptive = self.sampler.adaptive_pool(k=config.k) \
            if config.sampling == "adaptive" else None
        self.live = LiveRatings(judge_constants(self.runs.models, self.runs.judge_battles,
                                                self.runs.judge_boards, self.rating, adaptive),
                                config.refit_interval_s, config.workers)
        self._load_votes()
        self.timings = Timings() if config.timings_path is not None else None
        self._probes = Probes(self.timings) if self.timings is not None else None
        self._push_handle: asyncio.TimerHandle | None = None
        self._last_push = 0.0
        self._cache: tuple[Any, str] | None = None

    def _rating_settings(self) -> dict[str, Any]:
        r = self.runs.rating  # the first run's `ratings`, defaults filled by its reader
        rounds = self.config.bootstrap_rounds
        return {"bootstrap_rounds": int(r["bootstrap_rounds"] if rounds is None else rounds),
                "seed": int(r["seed"]), "confidence": float(r["confidence"]),
                **({"prior": float(r["prior"])} if r["prior"] is not None else {})}

    def _load_votes(self) -> None:
        """Votes from earlier sessions of this arena count again: on the board when all
        their models are still served, in the samplers' counts when their pair (group)
        is; pairwise and K-wise votes in the order cast, as the online Elo saw them."""
        models = set(self.runs.models)
        rows: list[dict[str, Any]] = list(self.store.rows())
        rankings = self.store.ranking_rows()
        if rankings:  # a stable sort keeps each table's own order
            rows = sorted([*rows, *rankings], key=lambda row: row["tstamp"])
        for row in rows:
            if "ranks" in row:
                if set(row["models"]) <= models:
                    if self.kwise is not None:
                        self.kwise.record_stored(row)
                    self.live.add_ranking(row["models"], row["ranks"], row["prompt_id"],
                                          row["seed"])
                continue
            if not {row["model_left"], row["model_right"]} <= models:
                continue
            pair = self.sampler.find(row["prompt_id"], row["seed"], row["model_left"],
                                     row["model_right"])
            if pair is not None:
                self.sampler.record_vote(pair)
            self.live.add(row["model_left"], row["model_right"], row["winner"],
                          row["prompt_id"], row["seed"])

    # -- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        self.writer = VoteWriter(self.store, self.timings)
        if self._probes is not None:
            self._probes.start()
        self.live.on_change = self._changed
        # the adaptive picks steer groups on a K-wise arena, else pairs
        self.live.on_picks = self.kwise.sampler.set_queue if self.kwise \
            else self.sampler.set_queue
        await self.live.start()

    async def stop(self) -> None:
        await self.live.stop()
        writer, self.writer = self.writer, None  # votes from now on: 503, try again
        if writer is not None:
            writer.close()  # after the votes already handed over are stored
        self.store.close()
        if self._probes is not None:
            self._probes.stop()
        if self.timings is not None and self.config.timings_path is not None:
            self.timings.write(self.config.timings_path)  # after the refit worker's exit

    def _changed(self, kind: str) -> None:
        """Coalesce pushes: at most one per push_interval_s, the newest state."""
        if self._push_handle is not None or not len(self.broadcaster):
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._last_push + self.config.push_interval_s - loop.time())
        self._push_handle = loop.call_later(delay, self._push)

    def _push(self) -> None:
        self._push_handle = None
        self._last_push = asyncio.get_running_loop().time()
        self.broadcaster.publish(self.leaderboard_json())

    # -- voting ---------------------------------------------------------------------
    def _check_writable(self) -> None:
        if self.config.read_only:
            raise Refusal(403, "this arena is read-only: voting is off")

    def pair(self, sid: str, tag: str | None) -> dict[str, Any]:
        """Issue the next pair for session `sid` (only a pair whose images can be served)."""
        self._check_writable()
        if tag is not None and tag not in self.tags:
            raise Refusal(404, f"no pairs with tag {tag!r}; tags: {', '.join(self.tags[:40])}")
        self.tokens.allow_pair(sid)
        for _ in range(_PAIR_TRIES):
            index = self.sampler.choose(self.tokens.session(sid).seen, tag)
            if index is None:
                raise Refusal(503, "no pair" + (f" with tag {tag!r}" if tag else "")
                              + " whose images can be served; the arena's operator has "
                                "been told (server log)")
            if self._servable(index):
                break
        else:
            raise Refusal(503, "could not find a pair whose images can be served; try again")
        pair = self.sampler.pairs[index]
        swapped = secrets.randbelow(2) == 1  # random sides: position bias averages out
        token = self.tokens.issue(sid, index, swapped)
        prompt = self.runs.prompts[pair.prompt_id]
        return {"token": token, "prompt": prompt.text, "tags": list(prompt.tags),
                "left": {"image_url": f"/img/{token}/left"},
                "right": {"image_url": f"/img/{token}/right"},
                "expires_in": self.config.token_ttl_s}

    def group(self, sid: str, tag: str | None) -> dict[str, Any]:
        """Issue the next K-wise group for session `sid` (`autojudge.arena.kwise`)."""
        self._check_writable()
        if self.kwise is None:
            raise Refusal(404, "this arena shows pairs (started without --k); fetch one "
                               "from GET /api/pair, or start it with --k 4 for groups")
        if tag is not None and tag not in self.tags:
            raise Refusal(404, f"no groups with tag {tag!r}; tags: {', '.join(self.tags[:40])}")
        self.tokens.allow_pair(sid)
        return self.kwise.group(sid, tag)

    def _servable(self, index: int) -> bool:
        """Both images of pair `index` can be served (read, checked and cached now);
        otherwise the pair is never chosen again and the server log says why."""
        if not self.sampler.usable[index]:
            return False
        pair = self.sampler.pairs[index]
        try:
            self.images.get(pair.image_x)
            self.images.get(pair.image_y)
        except ImageUnavailable as exc:
            self.sampler.disable(index)
            # the path is for the operator only: responses never name server files
            sys.stderr.write(f"warning: arena: {exc}; its pair ({pair.model_x} vs "
                             f"{pair.model_y}, prompt {pair.prompt_id}) is no longer "
                             "served\n")
            return False
        return True

    def image(self, sid: str | None, token: str, side: str) -> tuple[bytes, str]:
        """The image on `side` of a pair issued to `sid` (Refusal 404 otherwise)."""
        self._check_writable()
        try:
            issue = self.tokens.lookup(token, sid)
        except Refusal:
            raise Refusal(404, "no such image for this session") from None
        if issue.order is not None and self.kwise is not None:
            return self.kwise.image(issue, side)
        if side not in ("left", "right"):
            raise Refusal(404, "no such image; the side is left or right")
        if not self._servable(issue.pair):
            raise Refusal(410, _UNSERVABLE)
        pair = self.sampler.pairs[issue.pair]
        refs = (pair.image_y, pair.image_x) if issue.swapped else (pair.image_x, pair.image_y)
        try:
            return self.images.get(refs[0] if side == "left" else refs[1])
        except ImageUnavailable:  # evicted from the cache and changed since: rare
            self.sampler.disable(issue.pair)
            raise Refusal(410, _UNSERVABLE) from None

    async def vote(self, sid: str | None, body: Any) -> dict[str, Any]:
        """Count one vote; Refusal (4xx, nothing changed) for anything else."""
        self._check_writable()
        if isinstance(body, dict) and any(form in body for form in FORMS):
            if self.kwise is None:
                raise Refusal(400, "this arena shows pairs (started without --k): send "
                                   '{"token": ..., "choice": "left|right|tie|bothbad"}')
            return await self.kwise.vote(sid, body)
        if not isinstance(body, dict) or not isinstance(body.get("token"), str):
            raise Refusal(400, 'send JSON {"token": ..., "choice": "left|right|tie|bothbad"}')
        choice = body.get("choice")
        if not isinstance(choice, str) or choice not in CHOICES:
            raise Refusal(400, f"choice must be one of {', '.join(CHOICES)} (a string)")
        # refuse bad tokens before the rate limit
        pending = self.tokens.lookup(body["token"], sid)
        if pending.order is not None:
            raise Refusal(400, "this token is for a group of images: send "
                               '{"token": ..., "best": SLOT} or {"token": ..., "order": [...]}')
        if not self._servable(pending.pair):  # a pair nobody could see is no vote
            raise Refusal(410, _UNSERVABLE)
        self.tokens.allow_vote(sid)
        if self.writer is None:
            raise Refusal(503, "the arena is starting or stopping; try again")
        issue = self.tokens.redeem(body["token"], sid)
        pair = self.sampler.pairs[issue.pair]
        left, right = (pair.model_y, pair.model_x) if issue.swapped else (pair.model_x,
                                                                          pair.model_y)
        images = (pair.image_y, pair.image_x) if issue.swapped else (pair.image_x,
                                                                     pair.image_y)
        prompt = self.runs.prompts[pair.prompt_id]
        vote = Vote(self.config.clock(), issue.session, body["token"], issue.issued,
                    pair.prompt_id, prompt.text, pair.seed, prompt.tags, left, right,
                    images[0].sha, images[1].sha, choice)

        def settled(result: Any) -> None:
            """Runs in the loop when the commit ends (even if the voter hung up)."""
            if isinstance(result, BaseException):
                if not isinstance(result, sqlite3.IntegrityError):
                    self.tokens.unredeem(body["token"])  # not stored: the token stays good
                return
            self.tokens.stored(body["token"])
            self.sampler.record_vote(issue.pair)
            self.live.add(left, right, vote.winner, pair.prompt_id, pair.seed)

        try:
            await self.writer.append(vote, settled)
        except sqlite3.IntegrityError:
            raise Refusal(409, "this pair was already voted on; fetch a new one") from None
        except sqlite3.Error as exc:
            sys.stderr.write(f"warning: arena: a vote could not be stored ({exc})\n")
            raise Refusal(503, "the vote could not be stored; try again") from None
        rows = {r["model"]: r for r in self.live.rows()}
        return {"left": left, "right": right, "choice": choice, "winner": vote.winner,
                "ratings": {"left": _reveal(rows[left]), "right": _reveal(rows[right])},
                "n_votes": self.live.n_votes}

    # -- leaderboard ----------------------------------------------------------------
    def leaderboard(self) -> dict[str, Any]:
        """The boards in leaderboard.json's schema, human board first, plus `live`."""
        live = self.live
        boards = [_display_board(live.human_board()),
                  *(_display_board(b) for b in self.runs.judge_boards)]
        return {"schema": 1,
                "run": {"arena": {"sampling": self.config.sampling, "k": self.config.k,
                                  "read_only": self.config.read_only,
                                  "tags": list(self.config.tags),
                                  "n_pairs": len(self.runs.pairs)},
                        # the folders' names, not their paths: no server path is published
                        "runs": [{k: v for k, v in r.items() if k != "path"}
                                 for r in self.runs.runs],
                        "models": self.runs.models,
                        "ratings": self.rating},
                "boards": boards, "models": self.runs.model_stats,
                "agreement": [_display_agreement(a) for a in live.agreement],
                "live": {"n_votes": live.n_votes, "refit_n_votes": live.refit_n_votes,
                         "refit_at": live.refit_at, "refit_seconds": live.refit_seconds,
                         # the error itself (which may name files) is in the server's log
                         "refit_error": "see the arena's log" if live.refit_error else None,
                         "time": time.time()}}

    def leaderboard_json(self) -> str:
        key = (self.live.n_votes, self.live.refit_at)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, json.dumps(self.leaderboard(), allow_nan=False))
        return self._cache[1]


def _reveal(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("model", "rating", "ci_low", "ci_high", "rank", "elo", "battles")
    return {**{k: row.get(k) for k in keys}, **_texts(row)}


def _texts(row: dict[str, Any]) -> dict[str, str]:
    """How a row shows: "unrated", and the CI with open sides (`format_ci`)."""
    rated = row.get("rating") is not None
    return {"rating_text": f"{row['rating']:.0f}" if rated else "unrated",
            "ci_text": format_ci(row.get("ci_low"), row.get("ci_high"),
                                 rated and row.get("ci_method") is not None)}


def _display_board(board: dict[str, Any]) -> dict[str, Any]:
    return {**board, "models": [{**r, **_texts(r)} for r in board["models"]]}


def _display_agreement(row: dict[str, Any]) -> dict[str, Any]:
    low, high = row.get("ci_low"), row.get("ci_high")
    return {**row, "ci_text": "-" if low is None or high is None
            else f"{low:.0%} .. {high:.0%}"}


