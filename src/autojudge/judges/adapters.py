"""Wrappers that add cross-cutting behaviour to any judge: caching and pointwise->pairwise.

Each wrapper implements the same protocol it wraps, so they stack:

    PointwiseAsPairwise(CachedPointwise(OCRJudge(...), store), tie_margin=0.02)

is a pairwise judge whose per-image scores are computed once and kept in the store.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from autojudge.judges.base import PairwiseJudge, PointwiseJudge
from autojudge.store import Store, failure_columns, now
from autojudge.types import Failure, JudgeItem, PairItem, Prompt, Score, Verdict, stable_hash


@dataclass
class Counts:
    """How much of a stage came from the store and how much was computed now."""

    cached: int = 0
    computed: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"cached": self.cached, "computed": self.computed, "failed": self.failed}


def fingerprint_hash(fingerprint: Mapping[str, Any]) -> str:
    return stable_hash(dict(fingerprint))


class CachedPointwise:
    """Scores each (judge fingerprint, image, prompt) once; later calls read the store.

    Also remembers every score it returned this run (with its timestamp), so the pipeline
    can write per-image scores without asking the store again.
    """

    def __init__(self, inner: PointwiseJudge, store: Store):
        self.inner = inner
        self.store = store
        self.name = inner.name
        self.score_range = inner.score_range
        self.batch_size = inner.batch_size
        self.counts = Counts()
        self.seen: dict[str, tuple[JudgeItem, Score, float]] = {}
        self._fp = fingerprint_hash(inner.fingerprint())
        store.remember_fingerprint(self._fp, inner.fingerprint())

    def fingerprint(self) -> Mapping[str, Any]:
        return self.inner.fingerprint()

    def check(self) -> None:
        self.inner.check()

    def applies(self, prompt: Prompt) -> bool:
        return self.inner.applies(prompt)

    def key(self, item: JudgeItem) -> str:
        return stable_hash([self._fp, item.image_sha, item.prompt.content()])

    def score(self, items: Sequence[JudgeItem]) -> list[Score]:
        keys = [self.key(item) for item in items]
        # Scores already returned this run come from memory and are not counted again.
        new_keys = [k for k in dict.fromkeys(keys) if k not in self.seen]
        found = self.store.get_many("scores", new_keys)
        missing_keys = [k for k in new_keys if k not in found]
        missing = [keys.index(k) for k in missing_keys]
        self.counts.cached += len(new_keys) - len(missing_keys)
        fresh: dict[str, tuple[Score, float]] = {}
        for start in range(0, len(missing), max(1, self.batch_size)):
            batch = missing[start:start + self.batch_size]
            scores = self.inner.score([items[i].materialized() for i in batch])
            stamp = now()
            rows = [self._row(keys[i], items[i], s, stamp) for i, s in zip(batch, scores)]
            self.store.put_many("scores", rows)
            for i, s in zip(batch, scores):
                fresh[keys[i]] = (s, stamp)
                self.counts.computed += 1
                self.counts.failed += s.failure is not None
        out = []
        for item, k in zip(items, keys):
            if k not in self.seen:
                score, stamp = fresh[k] if k in fresh else _score_from_row(found[k])
                self.seen[k] = (item, score, stamp)
            out.append(self.seen[k][1])
        return out

    def _row(self, key: str, item: JudgeItem, score: Score, stamp: float) -> dict[str, Any]:
        return {"key": key, "fingerprint": self._fp, "image_sha": item.image_sha,
                "value": score.value, "raw": json.dumps(dict(score.raw), default=str),
                **failure_columns(score.failure), "created": stamp}


def _score_from_row(row: Any) -> tuple[Score, float]:
    values = row.values
    return Score(values["value"], json.loads(values["raw"]), row.failure), values["created"]


@dataclass(frozen=True)
class TimedVerdict:
    """A verdict plus when its evidence was computed (the battle log's tstamp)."""

    verdict: Verdict
    tstamp: float


class PointwiseAsPairwise:
    """Turns a pointwise judge into a pairwise one: higher score wins, within
    `tie_margin` it is a tie, and two images both at the bottom of the score range are a
    "tie (bothbad)" (e.g. neither image shows any of the expected text).

    Each distinct image in a batch of pairs is scored once.
    """

    def __init__(self, scorer: CachedPointwise, tie_margin: float = 0.0):
        if tie_margin < 0:
            raise ValueError("tie_margin must be >= 0")
        self.scorer = scorer
        self.tie_margin = float(tie_margin)
        self.name = scorer.name
        self.batch_size = max(1, scorer.batch_size)
        self.counts = scorer.counts

    def fingerprint(self) -> Mapping[str, Any]:
        return {"adapter": "pointwise_as_pairwise", "tie_margin": self.tie_margin,
                "inner": dict(self.scorer.fingerprint())}

    def check(self) -> None:
        self.scorer.check()

    def applies(self, prompt: Prompt) -> bool:
        return self.scorer.applies(prompt)

    def compare(self, pairs: Sequence[PairItem]) -> list[Verdict]:
        return [tv.verdict for tv in self.compare_timed(pairs)]

    def compare_timed(self, pairs: Sequence[PairItem]) -> list[TimedVerdict]:
        unique: dict[str, JudgeItem] = {}
        for pair in pairs:
            for item in (pair.a, pair.b):
                unique.setdefault(self.scorer.key(item), item)
        keys = list(unique)
        scores = dict(zip(keys, self.scorer.score([unique[k] for k in keys])))
        out = []
        for pair in pairs:
            ka, kb = self.scorer.key(pair.a), self.scorer.key(pair.b)
            verdict = self._decide(scores[ka], scores[kb])
            stamp = max(self.scorer.seen[ka][2], self.scorer.seen[kb][2])
            out.append(TimedVerdict(verdict, stamp))
        return out

    def _decide(self, a: Score, b: Score) -> Verdict:
        if a.failure or b.failure or a.value is None or b.value is None:
            failure = a.failure or b.failure or Failure("judge_error", "missing score")
            return Verdict(None, a.value, b.value, failure=failure)
        low = self.scorer.score_range[0]
        diff = a.value - b.value
        if abs(diff) <= self.tie_margin:
            both_bad = a.value <= low and b.value <= low
            winner = "tie (bothbad)" if both_bad else "tie"
        else:
            winner = "model_a" if diff > 0 else "model_b"
        rationale = f"{self.name} score {a.value:.4g} vs {b.value:.4g} (tie margin {self.tie_margin:g})"
        return Verdict(winner, a.value, b.value, rationale)


class CachedPairwise:
    """Keeps each (judge fingerprint, prompt, image a, image b) verdict in the store."""

    def __init__(self, inner: PairwiseJudge, store: Store):
        self.inner = inner
        self.store = store
        self.name = inner.name
        self.batch_size = max(1, inner.batch_size)
        self.counts = Counts()
        #: every verdict returned this run (fresh or cached), by key: run-level judge stats
        #: such as a VLM's position-bias rate count cached verdicts too
        self.seen: dict[str, TimedVerdict] = {}
        self._fp = fingerprint_hash(inner.fingerprint())
        store.remember_fingerprint(self._fp, inner.fingerprint())

    def fingerprint(self) -> Mapping[str, Any]:
        return self.inner.fingerprint()

    def check(self) -> None:
        self.inner.check()

    def applies(self, prompt: Prompt) -> bool:
        return self.inner.applies(prompt)

    def key(self, pair: PairItem) -> str:
        return stable_hash([self._fp, pair.prompt.content(), pair.a.image_sha, pair.b.image_sha])

    def compare(self, pairs: Sequence[PairItem]) -> list[Verdict]:
        return [tv.verdict for tv in self.compare_timed(pairs)]

    def compare_timed(self, pairs: Sequence[PairItem]) -> list[TimedVerdict]:
        keys = [self.key(p) for p in pairs]
        found = self.store.get_many("verdicts", keys)
        missing = [i for i, k in enumerate(keys) if k not in found]
        self.counts.cached += len(pairs) - len(missing)
        fresh: dict[str, TimedVerdict] = {}
        for start in range(0, len(missing), self.batch_size):
            batch = missing[start:start + self.batch_size]
            ready = [PairItem(pairs[i].prompt, pairs[i].a.materialized(),
                              pairs[i].b.materialized()) for i in batch]
            verdicts = self.inner.compare(ready)
            stamp = now()
            self.store.put_many("verdicts", [
                self._row(keys[i], pairs[i], v, stamp) for i, v in zip(batch, verdicts)])
            for i, v in zip(batch, verdicts):
                fresh[keys[i]] = TimedVerdict(v, stamp)
                self.counts.computed += 1
                self.counts.failed += v.failure is not None
        out = [fresh[k] if k in fresh else _verdict_from_row(found[k]) for k in keys]
        self.seen.update(zip(keys, out))
        return out

    def _row(self, key: str, pair: PairItem, v: Verdict, stamp: float) -> dict[str, Any]:
        return {"key": key, "fingerprint": self._fp, "image_a": pair.a.image_sha,
                "image_b": pair.b.image_sha, "winner": v.winner, "score_a": v.score_a,
                "score_b": v.score_b, "rationale": v.rationale,
                "raw": json.dumps(dict(v.raw), default=str), **failure_columns(v.failure),
                "created": stamp}


def _verdict_from_row(row: Any) -> TimedVerdict:
    v = row.values
    verdict = Verdict(v["winner"], v["score_a"], v["score_b"], v["rationale"],
                      json.loads(v["raw"]), row.failure)
    return TimedVerdict(verdict, v["created"])
