"""K-wise judge validation: does a judge that ranks k images per call (`judge.<label>.k`
> 2) still find the known better image, and does it agree with its own pairwise verdicts?

A real VLM may rank four images worse than it compares two, so for such a judge
`validate` runs each family twice on the same images: the pairwise controlled pairs
(`validation.build_pairs`), and groups of k holding each pair's two images plus k - 2
further known-worse variants of the same prompt (other misspellings, other shuffled
captions' images, other degradations), shown in a slot order drawn from the prompt
(`stages.kwise.slot_orders`) and asked through the runner's K-wise path (both slot
orders with `swap`, the rankings cache, failure isolation). Reported per family:

- accuracy over the known pairs each ranking orders (the better image against every
  worse one; a pair the two slot orders disagree on is a tie, counted half right), with
  a Wilson interval;
- agreement with the pairwise call on the same two images: the share of pairs where
  the ranking's verdict (better, worse or tie) is the pairwise verdict, with a Wilson
  interval, over the pairs both judged.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from autojudge.types import JudgeItem, Prompt

BETTER = "better"


def _stronger(spec: dict[str, Any], level: int) -> dict[str, Any]:
    """A degradation `level` steps stronger than `spec` (another, distinct worse image)."""
    kind = spec["kind"]
    if kind == "blur":
        return {**spec, "radius": float(spec.get("radius", 4)) * (level + 1)}
    if kind == "noise":
        return {**spec, "sigma": float(spec.get("sigma", 48)) * (level + 1)}
    return {**spec, "quality": max(1, int(spec.get("quality", 4)) // (level + 1))}


def _worse_variants(family: str, i: int, count: int, cases: dict[str, Any],
                    images_dir: Path | None) -> list[Any]:
    """`count` distinct known-worse images for case i; the first is the worse side of
    the pairwise case i (`validation.build_pairs`), so the two runs share its images."""
    from autojudge.experiment import validation as v

    if family == "text":
        text = list(cases["text"])[i % len(cases["text"])]
        wrong: list[str] = []
        attempt = i
        while len(wrong) < count and attempt < i + 50 * count:
            word = v.misspell(text, attempt) if not wrong else \
                v.misspell(v.misspell(text, attempt), attempt + 1)
            if word != text and word not in wrong:
                wrong.append(word)
            attempt += 7
        return [v._typeset(w) for w in wrong]
    if family == "alignment":
        user = v._user_images(images_dir) if images_dir else ([], None)
        captions = user[1] or list(cases["alignment"])
        pictures = user[0] if user[1] else [v._typeset(c) for c in captions]
        j, first = i % len(captions), v.shuffled_caption(i, len(captions))
        others = [first] + [x for x in range(len(captions)) if x not in (j, first)]
        return [pictures[x] for x in others[:count]]
    user = v._user_images(images_dir)[0] if images_dir else []
    clean = user[i % len(user)] if user else v._scene(i)
    specs = list(cases["quality"]["degradations"])
    return [v.degrade(clean, _stronger(specs[(i + t) % len(specs)], t // len(specs)), seed=i)
            for t in range(count)]


def build_groups(family: str, n: int, k: int, cases: dict[str, Any],
                 images_dir: Path | None = None) -> list[tuple[Prompt, dict[str, JudgeItem]]]:
    """(prompt, name -> item) x n: `BETTER`, then `worse1` (the pair's worse image) ..
    `worse{k-1}`; groups with fewer than k distinct images are left out."""
    from autojudge.experiment import validation as v

    pairs = v.build_pairs(family, n, cases, images_dir)
    out = []
    for i, (pair, better_side, _) in enumerate(pairs):
        better = pair.a if better_side == "model_a" else pair.b
        worse = _worse_variants(family, i, k - 1, cases, images_dir)
        items = {BETTER: better, **{f"worse{t + 1}": v._item(pair.prompt, image)
                                    for t, image in enumerate(worse)}}
        if len({it.image_sha for it in items.values()}) == k:
            out.append((pair.prompt, items))
    return out


def validate_kwise(label: str, judge: Any, family: str, k: int,
                   groups: Sequence[tuple[Prompt, dict[str, JudgeItem]]],
                   pairwise: dict[str, str | None], confidence: float) -> dict[str, Any]:
    """One K-wise result row. `judge` is a runner whose plugin ranks (build refuses
    k > 2 otherwise); `pairwise` maps a prompt id to the pairwise verdict on its pair
    ("better", "worse", "tie"; None: failed)."""
    from autojudge.experiment.validation import FamilyResult, wilson_interval
    from autojudge.stages.kwise import KwiseRunner, slot_orders

    shown = []
    for prompt, items in groups:
        names = sorted(items)
        first, _ = slot_orders(prompt.id, 0, names)
        shown.append((prompt, [names[s] for s in first]))
    results = KwiseRunner(judge, k).rank([(p, [items[n] for n in order]) for (p, items), (_, order)
                                          in zip(groups, shown)])
    result = FamilyResult(label, f"{family} k={k}", confidence=confidence)
    same = compared = 0
    for (prompt, order), ranking in zip(shown, results):
        result.pairs += k - 1
        if ranking.failure is not None or ranking.ranks is None:
            kind = ranking.failure.kind if ranking.failure else "no_ranking"
            result.failed += k - 1
            result.failures[kind] = result.failures.get(kind, 0) + k - 1
            continue
        outcomes = _better_outcomes(order, ranking.ranks)
        for name, outcome in outcomes.items():
            setattr(result, outcome, getattr(result, outcome) + 1)
        if pairwise.get(prompt.id) is not None and "worse1" in outcomes:
            compared += 1
            same += _as_verdict(outcomes["worse1"]) == pairwise[prompt.id]
    row = result.as_dict()
    low, high = wilson_interval(same, compared, confidence)
    row.update(k=k, groups=len(groups), agreement_n=compared,
               agreement=round(same / compared, 4) if compared else None,
               agreement_ci_low=round(low, 4) if compared else None,
               agreement_ci_high=round(high, 4) if compared else None)
    return row


def _better_outcomes(order: list[str], ranks: tuple) -> dict[str, str]:
    """worse image name -> "correct" / "wrong" / "ties" for the better image against it,
    from the pairs the ranking orders (two calls: their consensus)."""
    from autojudge.battles.rankings import ranking_pairs

    out = {}
    for a, b, winner in ranking_pairs(list(order), [list(r) for r in ranks]):
        if BETTER not in (a, b):
            continue
        other = b if a == BETTER else a
        if winner.startswith("tie"):
            out[other] = "ties"
        else:
            won = (winner == "model_a") == (a == BETTER)
            out[other] = "correct" if won else "wrong"
    return out


def _as_verdict(outcome: str) -> str:
    return {"correct": "better", "wrong": "worse", "ties": "tie"}[outcome]


def agreement_line(row: dict[str, Any]) -> str:
    """The table line under a K-wise row."""
    if not row["agreement_n"]:
        return "  vs its pairwise verdicts on the same two images: no pair judged both ways"
    return (f"  vs its pairwise verdicts on the same two images: {row['agreement']:.1%} the "
            f"same of {row['agreement_n']} ({row['agreement_ci_low']:.1%} .. "
            f"{row['agreement_ci_high']:.1%}, {row['confidence']:.0%} Wilson)")
