"""Judge protocols: pointwise (image -> score) and pairwise (pair -> verdict).

The structural contract the core relies on. `autojudge.sdk` states the whole contract and
gives base classes (`sdk.PointwiseJudge`, `sdk.PairwiseJudge`) that satisfy these
protocols and declare every optional hook with its default; a plugin that only satisfies
a protocol here works too (each hook it lacks takes the SDK's default).

A plugin implements one of them and nothing more: caching, pair orientation,
swap-debiasing, cost metering and run stats are the judge runner's
(`autojudge.stages.runner`). The optional hooks (`JudgeHooks`) are read by name.
"""
from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

from autojudge.types import (JudgeItem, PairItem, Prompt, RankItem, RankVerdict, Score,
                             Verdict)


@runtime_checkable
class PointwiseJudge(Protocol):
    """Scores images one at a time (batched). Higher is better.

    Attributes:
        name: label used in the battle log and boards (the config key, e.g. "ocr").
        score_range: (low, high) bounds every score lies in.
        batch_size: how many items `score` prefers at once.
    """

    name: str
    score_range: tuple[float, float]
    batch_size: int

    def fingerprint(self) -> Mapping[str, Any]:
        """Name, version and resolved params; a change here invalidates cached scores."""

    def check(self) -> None:
        """Raise AutojudgeError if the judge cannot work at all (missing weights...)."""

    def applies(self, prompt: Prompt) -> bool:
        """Whether this judge has anything to say about images of `prompt`."""

    def score(self, items: Sequence[JudgeItem]) -> list[Score]:
        """One Score per item, in order; a failed item gets Score(None, failure=...)."""


@runtime_checkable
class PairwiseJudge(Protocol):
    """Decides which of two images of one prompt is better (batched)."""

    name: str
    batch_size: int

    def fingerprint(self) -> Mapping[str, Any]:
        """Name, version and resolved params; a change here invalidates cached verdicts."""

    def check(self) -> None:
        """Raise AutojudgeError if the judge cannot work at all."""

    def applies(self, prompt: Prompt) -> bool:
        """Whether this judge has anything to say about images of `prompt`."""

    def compare(self, pairs: Sequence[PairItem]) -> list[Verdict]:
        """One Verdict per pair, in order; a failed pair gets Verdict(None, failure=...)."""


class JudgeHooks(Protocol):
    """Optional attributes a judge plugin may define (each is looked for by name; the
    defaults are `autojudge.sdk.Judge`'s).

    A pairwise plugin may also put `cost_usd` (float) in a verdict's raw: the runner sums
    it over fresh verdicts, so cost budgets use what was spent.
    """

    def attach_store(self, store: Any) -> None:
        """Receive the run's store; SDK judges get only its narrow view
        (`sdk.PluginCache`: vectors by namespace and image sha) in `attach_cache`."""

    def run_stats(self) -> Mapping[str, Any]:
        """Run-level numbers for the report (e.g. truncated prompts, cache counts)."""

    def rank(self, groups: Sequence[RankItem]) -> list[RankVerdict]:
        """Pairwise judges that can rank k images in one call (`judge.<label>.k` > 2):
        one RankVerdict per group, ranks per slot (1 = best; None = unranked)."""

    def rank_fingerprint(self) -> Mapping[str, Any]:
        """What besides `fingerprint()` decides a ranking (the ranking prompt): part of
        the K-wise cache key only."""

    #: what `applies` needs, in words, e.g. "prompts with expected_text"; the pre-flight
    #: check names it when a judge applies to none of the selected prompts
    needs: str
    #: families of controlled pairs `autojudge.validate` runs (None: every family)
    validation_families: tuple[str, ...] | None
    #: "pool" or "driver": where an executor may run its batches
    placement: str
    #: path of its judge card
    card: Any
