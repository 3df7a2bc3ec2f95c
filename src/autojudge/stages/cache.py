"""What the stages keep in the store: counts of cached vs computed work, fingerprint
hashes, and score / verdict rows (with the judge's raw output and typed failure).

Example:
    >>> c = Counts(cached=2, computed=1)
    >>> c.as_dict()
    {'cached': 2, 'computed': 1, 'failed': 0}
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Protocol

from autojudge.store.index import StoredRow, failure_columns
from autojudge.types import JudgeItem, PairItem, Score, Verdict, stable_hash


@dataclass
class Counts:
    """How much of a stage came from the store and how much was computed now."""

    cached: int = 0
    computed: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"cached": self.cached, "computed": self.computed, "failed": self.failed}


class Advance(Protocol):
    """What a runner reports as it goes: `n` more items done, `from_store` of them answered
    by the store without computing (the progress display counts them apart, and leaves
    them out of its ETA)."""

    def __call__(self, n: int, from_store: int = 0) -> None: ...


def no_progress(n: int, from_store: int = 0) -> None:
    """The `Advance` that reports to no one."""


@dataclass(frozen=True)
class TimedVerdict:
    """A verdict plus when its evidence was computed (the battle log's tstamp)."""

    verdict: Verdict
    tstamp: float


def fingerprint_hash(fingerprint: Mapping[str, Any]) -> str:
    """The store key of a plugin's identity."""
    return stable_hash(dict(fingerprint))


def score_key(fp_hash: str, item: JudgeItem) -> str:
    """A pointwise score is keyed by the judge, the image content and the prompt."""
    return stable_hash([fp_hash, item.image_sha, item.prompt.content()])


def verdict_key(fp_hash: str, pair: PairItem) -> str:
    """A pairwise verdict is keyed by the judge, the prompt and both images, in order."""
    return stable_hash([fp_hash, pair.prompt.content(), pair.a.image_sha, pair.b.image_sha])


def score_row(key: str, fp_hash: str, item: JudgeItem, score: Score, stamp: float
              ) -> dict[str, Any]:
    return {"key": key, "fingerprint": fp_hash, "image_sha": item.image_sha,
            "value": score.value, "raw": json.dumps(dict(score.raw), default=str),
            **failure_columns(score.failure), "created": stamp}


def score_from_row(row: StoredRow) -> tuple[Score, float]:
    values = row.values
    return Score(values["value"], json.loads(values["raw"]), row.failure), values["created"]


def verdict_row(key: str, fp_hash: str, pair: PairItem, v: Verdict, stamp: float
                ) -> dict[str, Any]:
    return {"key": key, "fingerprint": fp_hash, "image_a": pair.a.image_sha,
            "image_b": pair.b.image_sha, "winner": v.winner, "score_a": v.score_a,
            "score_b": v.score_b, "rationale": v.rationale,
            "raw": json.dumps(dict(v.raw), default=str), **failure_columns(v.failure),
            "created": stamp}


def verdict_from_row(row: StoredRow) -> TimedVerdict:
    v = row.values
    verdict = Verdict(v["winner"], v["score_a"], v["score_b"], v["rationale"],
                      json.loads(v["raw"]), row.failure)
    return TimedVerdict(verdict, v["created"])
