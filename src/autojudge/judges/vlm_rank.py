"""K-wise mode of the VLM judge: one request shows k images of a prompt and asks for an
order (best first, ties as inner lists) or for the best one (`rank_answer`).

Parsing is as strict as the pairwise answer's: a refusal, an answer with no order, an
order that leaves images out (`partial_order`) or names an image twice or one that was
not shown (`malformed_order`) is a typed failure, never a ranking. The runner
(`stages.kwise`) picks the groups, the slot orders, asks the second order and combines.

Example:
    >>> parse_ranking('{"order": [3, [1, 4], 2], "rationale": "3 spells it"}', 4, "order")
    ((2, 4, 1, 2), '3 spells it', None)
    >>> parse_ranking('{"best": 2}', 3, "best")
    ((None, 1, None), '', None)
    >>> parse_ranking('{"order": [1, 2]}', 3, "order")[2].kind
    'partial_order'
"""
from __future__ import annotations

import json
import re
from typing import Any, Sequence

from autojudge.judges.vlm_prompts import REFUSAL
from autojudge.runtime.resources import JUDGES_DIR
from autojudge.types import Failure, RankItem, RankVerdict

RANK_ANSWERS = ("auto", "order", "best")
#: the shipped ranking prompts (a templates file's rank_* keys override them)
RANK_TEMPLATES = JUDGES_DIR / "vlm_rank_templates.yaml"
_DEFAULTS: dict[str, str] = {}  # the shipped rank templates, read once


def _label(value: Any, k: int) -> int | None:
    """An image number 1..k from 3, "3", "Image 3"; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 1 <= value <= k else None
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(?:image\s*)?#?\s*(\d+)\s*", value, re.I)
        return _label(int(m.group(1)), k) if m else None
    return None


def _objects(text: str) -> list[dict[str, Any]]:
    body = re.sub(r"```(?:json)?", "", text or "").strip()
    found = []
    for start in [m.start() for m in re.finditer(r"\{", body)]:
        try:
            obj, _ = json.JSONDecoder().raw_decode(body[start:])
        except ValueError:
            continue
        if isinstance(obj, dict):
            found.append({str(key).lower(): v for key, v in obj.items()})
    return found


def _order_ranks(order: Any, k: int) -> tuple[tuple[int | None, ...] | None, Failure | None]:
    if not isinstance(order, list):
        return None, Failure("malformed_order", f"order {order!r} is not a list")
    ranks: list[int | None] = [None] * k
    position = 1
    for entry in order:
        group = entry if isinstance(entry, list) else [entry]
        labels = [_label(v, k) for v in group]
        if not group or None in labels:
            return None, Failure("malformed_order",
                                 f"order names {entry!r}, not an image 1..{k}")
        for label in labels:
            if ranks[label - 1] is not None:
                return None, Failure("malformed_order", f"order names image {label} twice")
            ranks[label - 1] = position
        position += len(group)
    missing = [i + 1 for i, r in enumerate(ranks) if r is None]
    if missing:
        return None, Failure("partial_order", f"order leaves out image(s) "
                                              f"{', '.join(map(str, missing))} of {k}")
    return tuple(ranks), None


def _best_ranks(best: Any, k: int) -> tuple[tuple[int | None, ...] | None, Failure | None]:
    group = best if isinstance(best, list) else [best]
    labels = [_label(v, k) for v in group]
    if not group or None in labels or len(set(labels)) != len(labels):
        return None, Failure("malformed_order", f"best {best!r} is not an image 1..{k}")
    return tuple(1 if i + 1 in labels else None for i in range(k)), None


def parse_ranking(text: str | None, k: int, mode: str
                  ) -> tuple[tuple[int | None, ...] | None, str, Failure | None]:
    """(ranks per image in shown order, rationale, None) or (None, "", the failure)."""
    keys = ("order", "ranking", "rank") if mode == "order" else ("best", "winner")
    for obj in _objects(text or ""):
        for key in keys:
            if key in obj:
                ranks, failure = (_order_ranks if mode == "order" else _best_ranks)(obj[key], k)
                why = str(obj.get("rationale") or obj.get("reason") or "")
                return (ranks, why, None) if failure is None else (None, "", failure)
    if REFUSAL.match(text or ""):
        return None, "", Failure("refusal", f"the model declined: {(text or '')[:200]}")
    return None, "", Failure("unparseable", f"no {keys[0]} in the answer: {(text or '')[:200]!r}")


def rank_templates(templates: dict[str, Any]) -> dict[str, str]:
    """The rank_* texts of a templates file, the shipped defaults where it has none."""
    if not _DEFAULTS:
        import yaml

        shipped = yaml.safe_load(RANK_TEMPLATES.read_text()) or {}
        _DEFAULTS.update({key: str(shipped[key]) for key in
                          ("rank_system", "rank_user_order", "rank_user_best")})
    return {key: str(templates.get(key) or default) for key, default in _DEFAULTS.items()}


def rank_mode(config: Any) -> str:
    """order | best: "auto" is order, except a local model answering by log-likelihood
    (`local_answer: choice`), which can only pick the best of k."""
    mode = config.rank_answer
    if mode == "auto":
        local_choice = config.backend == "transformers" and config.local_answer == "choice"
        return "best" if local_choice else "order"
    return mode


def rank_messages(judge: Any, item: RankItem) -> list[dict[str, Any]]:
    """The chat request for one group: rubric text, then "Image i:" and each image."""
    t = judge._template_text()
    texts = rank_templates(judge.templates())
    user = texts[f"rank_user_{rank_mode(judge.config)}"].format(
        prompt=item.prompt.text, criterion_name=t["criterion_name"], rubric=t["rubric"],
        k=len(item.items))
    content: list[dict[str, Any]] = [{"type": "text", "text": user}]
    for i, it in enumerate(item.items, start=1):
        content.append({"type": "text", "text": f"Image {i}:"})
        url = judge._data_url(it.image, it.image_sha)  # encoded once for both slot orders
        content.append({"type": "image_url", "image_url": {"url": url}})
    return [{"role": "system", "content": texts["rank_system"]},
            {"role": "user", "content": content}]


def rank_one(judge: Any, item: RankItem) -> RankVerdict:
    """One group: bounded retries (the judge's `_call`), strict parsing."""
    k, mode = len(item.items), rank_mode(judge.config)

    def read(response: Any, seconds: float) -> tuple[Any, Failure | None, dict[str, Any]]:
        info = judge._answer_info(response, seconds)
        refusal = info.pop("refusal")
        ranks, rationale, failure = parse_ranking(info.pop("text"), k, mode)
        if failure is not None and failure.kind == "unparseable" and refusal:
            failure = Failure("refusal", f"the model declined: {refusal[:200]}")
        if failure is not None:
            info["error"] = failure.kind
            return None, Failure(failure.kind, judge._scrub(failure.message)), info
        return RankVerdict(ranks, judge._scrub(rationale)[:1000],
                           {**info, "ranks": list(ranks)}), None, info

    extra = None
    if judge.config.backend == "transformers" and judge.config.local_answer == "choice":
        # scored by log-likelihood: the k possible answers of a best-of-k request
        extra = {"candidates": {str(i): json.dumps({"best": i}) for i in range(1, k + 1)}}
    found, raw, failure = judge._call(rank_messages(judge, item), read, extra)
    if found is None:
        return RankVerdict(None, raw=raw, failure=failure)
    return RankVerdict(found.ranks, found.rationale, {**dict(found.raw), **raw})


def rank_all(judge: Any, groups: Sequence[RankItem]) -> list[RankVerdict]:
    """Every group on the judge's `concurrency` request threads."""
    if judge.config.concurrency == 1 or not groups:
        return [rank_one(judge, g) for g in groups]
    return list(judge.requests_pool.map(lambda g: rank_one(judge, g), groups))
