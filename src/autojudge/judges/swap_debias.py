"""Swap-debiasing rules for any pairwise judge: keep only what survives the swap.

A pairwise judge that sees (A, B) and (B, A) should name the same image both times. When it
does not, the judge showed a position preference, not a preference between the images: the
battle is a "tie" and the inconsistency is recorded in the verdict's raw, so a run can
report each judge's position-bias rate. The judge runner (`stages.runner`) asks both
orders in one call to the plugin and combines each pair's two verdicts with `combine`:

    both orders agree         -> that winner          raw.consistent = True
    orders disagree           -> "tie"                raw.consistent = False, raw.bias =
                                                      "first" / "second" (the slot it kept
                                                      picking) or "partial" (a tie + a win)
    either order failed       -> Verdict(None, failure)  (a failed judgment never wins)

Example:
    >>> from autojudge.types import Verdict
    >>> combine(Verdict("model_a"), Verdict("model_b")).winner   # B-first order picked slot 2 = A
    'model_a'
    >>> v = combine(Verdict("model_a"), Verdict("model_a"))        # always the first slot
    >>> v.winner, v.raw["consistent"], v.raw["bias"]
    ('tie', False, 'first')
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from autojudge.types import Failure, PairItem, Verdict

__all__ = ["combine", "swap_pair", "unswap_winner", "summarize_verdicts", "SwapCounts"]

_FLIP = {"model_a": "model_b", "model_b": "model_a"}


def swap_pair(pair: PairItem) -> PairItem:
    return PairItem(pair.prompt, pair.b, pair.a)


def unswap_winner(winner: str | None) -> str | None:
    """A winner of the swapped pair, in the original pair's terms."""
    return _FLIP.get(winner, winner) if winner is not None else None


def _slot(winner: str | None) -> str:
    return {"model_a": "first", "model_b": "second"}.get(winner or "", "tie")


def combine(forward: Verdict, backward: Verdict) -> Verdict:
    """One verdict from the (a, b) verdict and the (b, a) verdict (in swapped terms)."""
    orders = {"ab": _order_raw(forward), "ba": _order_raw(backward)}
    if forward.failure is not None or backward.failure is not None or \
            forward.winner is None or backward.winner is None:
        failure = forward.failure or backward.failure or Failure("judge_error", "no winner")
        retryable = any(v.failure is not None and v.failure.retryable for v in (forward, backward))
        which = "a-first" if forward.failure is not None else "b-first"
        failure = Failure(failure.kind, f"{which} order: {failure.message}", retryable)
        return Verdict(None, raw={"orders": orders, "consistent": None, "bias": None},
                       failure=failure)
    back = unswap_winner(backward.winner)
    score_a = _mean(forward.score_a, backward.score_b)
    score_b = _mean(forward.score_b, backward.score_a)
    if forward.winner == back:
        rationale = forward.rationale or backward.rationale
        return Verdict(forward.winner, score_a, score_b, rationale,
                       raw={"orders": orders, "consistent": True, "bias": None})
    slots = {_slot(forward.winner), _slot(backward.winner)}
    bias = slots.pop() if len(slots) == 1 else "partial"
    rationale = (f"inconsistent under swap (tie): a-first said {forward.winner}, b-first said "
                 f"{back}")
    return Verdict("tie", score_a, score_b, rationale,
                   raw={"orders": orders, "consistent": False, "bias": bias})


def _mean(x: float | None, y: float | None) -> float | None:
    return None if x is None or y is None else (float(x) + float(y)) / 2


def _order_raw(v: Verdict) -> dict[str, Any]:
    return {"winner": v.winner, "rationale": v.rationale, **dict(v.raw),
            **({"failure": v.failure.kind} if v.failure else {})}


@dataclass
class SwapCounts:
    pairs: int = 0
    consistent: int = 0
    inconsistent: int = 0
    failed: int = 0

    def position_bias_rate(self) -> float | None:
        judged = self.consistent + self.inconsistent
        return round(self.inconsistent / judged, 4) if judged else None


def summarize_verdicts(verdicts: Sequence[Verdict]) -> dict[str, Any]:
    """Run-level numbers from swap-debiased verdicts: position-bias rate (share of pairs
    whose two orders disagreed), which slot a biased judge kept picking, failures, cost."""
    counts = SwapCounts()
    bias: dict[str, int] = {}
    failures: dict[str, int] = {}
    cost = 0.0
    priced = False
    for v in verdicts:
        counts.pairs += 1
        raw = dict(v.raw)
        if v.failure is not None:
            counts.failed += 1
            failures[v.failure.kind] = failures.get(v.failure.kind, 0) + 1
        elif raw.get("consistent") is True:
            counts.consistent += 1
        elif raw.get("consistent") is False:
            counts.inconsistent += 1
            bias[str(raw.get("bias"))] = bias.get(str(raw.get("bias")), 0) + 1
        if raw.get("cost_usd") is not None:
            cost += float(raw["cost_usd"])
            priced = True
    return {"pairs": counts.pairs, "consistent": counts.consistent,
            "inconsistent": counts.inconsistent, "failed": counts.failed,
            "position_bias_rate": counts.position_bias_rate(), "bias_slots": bias,
            "failures": failures, "cost_usd": round(cost, 6) if priced else None}
