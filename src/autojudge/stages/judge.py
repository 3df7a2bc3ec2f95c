"""Judge stage: every pair of models on every (prompt, seed), per judge -> battle log rows.

Pairs are planned in model order and oriented by the judge runner (which model's image is
in slot A is drawn per (prompt, seed, pair), `stages.runner.JudgeRunner.orient`), so the
battle log of a re-run or a resumed run is identical row for row. A battle whose stored
image is missing or damaged is skipped with the typed failure "damaged_image" (never counted
as a loss: the model made the image, the disk lost it).
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, Callable, Sequence

from autojudge.stages.cache import Advance, no_progress
from autojudge.store.index import DamagedBlobError, Store, store_command
from autojudge.types import Battle, Failure, Generation, JudgeItem, PairItem, Prompt


@dataclass
class JudgeOutcome:
    """What judging produced for one judge: battles plus every skipped pair, typed."""

    judge: str
    battles: list[Battle] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)


class BlobLoader:
    """A stored image, decoded only when a judge actually needs its pixels.

    Calling it returns the decoded image; an executor that ships images elsewhere reads
    `sha`/`ext` (or `read_bytes()`) instead, so a worker decodes exactly the same bytes.
    It raises DamagedBlobError (one line, with the fix) rather than use bytes that do not
    hash to the image's name; run_judge checks every image first, so this is reached
    only when a file is damaged while the judge runs."""

    def __init__(self, store: Store, generation: Generation):
        self.store, self.generation = store, generation
        self.sha, self.ext = str(generation.image_sha), _ext(generation)

    def read_bytes(self) -> bytes:
        data = self.store.read_blob(self.sha, self.ext)
        if data is None:
            raise DamagedBlobError(_damaged(self.store, self.generation).message)
        return data

    def __call__(self) -> Any:
        return decode_image(self.read_bytes())


def decode_image(data: bytes) -> Any:
    """Encoded image bytes -> a loaded PIL image (the one decoding every judge sees)."""
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def image_loader(store: Store, generation: Generation) -> Callable[[], Any]:
    """A `BlobLoader` for `generation`'s stored image."""
    return BlobLoader(store, generation)


def plan_pairs(models: Sequence[str], by_request: dict[tuple[str, int], dict[str, Generation]],
               requests: Sequence[tuple[Prompt, int]], applies: Callable[[Prompt], bool]):
    """(prompt, seed, model_a, model_b) for every pair of models on every applicable request."""
    for prompt, seed in requests:
        if not applies(prompt):
            continue
        gens = by_request[(prompt.id, seed)]
        for model_a, model_b in combinations(models, 2):
            yield prompt, seed, gens[model_a], gens[model_b]


def run_judge(judge: Any, models: Sequence[str], generations: Sequence[Generation],
              requests: Sequence[tuple[Prompt, int]], store: Store, failed_image: str = "skip",
              advance: Advance = no_progress,
              plan: Sequence[tuple[Prompt, int, str, str]] | None = None) -> JudgeOutcome:
    """Let `judge` (a `stages.runner.JudgeRunner`) fight every pair, or only the (prompt,
    seed, model_x, model_y) battles in `plan` (the adaptive schedule)."""
    by_request: dict[tuple[str, int], dict[str, Generation]] = {}
    for g in generations:
        by_request.setdefault((g.prompt.id, g.seed), {})[g.model] = g
    outcome = JudgeOutcome(judge.name)
    pairs: list[PairItem] = []
    contexts: list[tuple[Prompt, int, str, str]] = []
    planned = plan_pairs(models, by_request, requests, judge.applies) if plan is None else (
        (p, s, by_request[(p.id, s)][a], by_request[(p.id, s)][b]) for p, s, a, b in plan)
    damaged: dict[str, Failure | None] = {}
    for prompt, seed, gen_x, gen_y in planned:
        gen_a, gen_b = judge.orient(prompt.id, seed, gen_x, gen_y)
        if not (gen_a.ok and gen_b.ok):
            _failed_image_battle(outcome, judge.name, prompt, seed, gen_a, gen_b, failed_image)
            continue
        failure = _check_image(store, gen_a, damaged) or _check_image(store, gen_b, damaged)
        if failure is not None:
            outcome.skipped.append(_skip_row(judge.name, prompt, seed, gen_a.model,
                                             gen_b.model, failure))
            continue
        pairs.append(PairItem(prompt, _item(store, gen_a), _item(store, gen_b)))
        contexts.append((prompt, seed, gen_a.model, gen_b.model))
    # An executor with several workers wants several batches in flight per call.
    per_call = max(1, int(judge.batch_size) * int(getattr(judge, "parallelism", 1)))
    for start, stop in _chunks_by_request(contexts, per_call):
        computed_before = judge.counts.computed
        timed = judge.verdicts(pairs[start:stop])
        # a batch the store answered whole is no measure of how fast new work goes
        from_store = len(timed) if judge.counts.computed == computed_before else 0
        for (prompt, seed, model_a, model_b), tv in zip(contexts[start:stop], timed):
            verdict = tv.verdict
            if verdict.failure is not None or verdict.winner is None:
                failure = verdict.failure or Failure("judge_error", "no winner")
                outcome.skipped.append(_skip_row(judge.name, prompt, seed, model_a, model_b,
                                                 failure))
                continue
            outcome.battles.append(Battle(
                model_a, model_b, verdict.winner, judge.name, prompt.id, seed, prompt.tags,
                verdict.score_a, verdict.score_b, verdict.rationale, tv.tstamp))
        advance(len(timed), from_store=from_store)
    return outcome


def _chunks_by_request(contexts: Sequence[tuple[Prompt, int, str, str]], requests_per_chunk: int):
    """(start, stop) slices that never split the pairs of one (prompt, seed), so a
    pointwise judge sees all of a request's images in one batch and scores each once."""
    start, seen = 0, 0
    for i in range(1, len(contexts) + 1):
        boundary = i == len(contexts) or contexts[i][:2] != contexts[i - 1][:2]
        if boundary:
            seen += 1
            if seen == requests_per_chunk or i == len(contexts):
                yield start, i
                start, seen = i, 0


def count_pairs(models: Sequence[str], requests: Sequence[tuple[Prompt, int]],
                applies: Callable[[Prompt], bool]) -> int:
    per_request = len(models) * (len(models) - 1) // 2
    return per_request * sum(1 for prompt, _ in requests if applies(prompt))


def _ext(generation: Generation) -> str:
    return Path(generation.image_path or "").suffix.lstrip(".")


def _damaged(store: Store, generation: Generation) -> Failure:
    return Failure("damaged_image",
                   f"stored image {generation.image_path} is missing or damaged; run "
                   f"{store_command(store.root)}, then run again to generate it anew")


def _check_image(store: Store, generation: Generation,
                 seen: dict[str, Failure | None]) -> Failure | None:
    """A typed failure when the image's blob is missing or damaged (memoised per sha: the
    store hashes each blob once per run, here it costs a stat)."""
    sha = generation.image_sha
    if sha not in seen:
        ok = store.verified_blob(sha, _ext(generation)) is not None
        seen[sha] = None if ok else _damaged(store, generation)
    return seen[sha]


def _item(store: Store, generation: Generation) -> JudgeItem:
    return JudgeItem(generation.prompt, None, generation.image_sha,
                     loader=image_loader(store, generation))


def _failed_image_battle(outcome: JudgeOutcome, judge: str, prompt: Prompt, seed: int,
                         gen_a: Generation, gen_b: Generation, rule: str) -> None:
    """A failed image never wins: skip the battle, or (rule "loss") the failed side loses."""
    failure = gen_a.failure or gen_b.failure or Failure("missing_image", "no image")
    if rule == "loss" and gen_a.ok != gen_b.ok:
        winner = "model_a" if gen_a.ok else "model_b"
        failed = gen_b if gen_a.ok else gen_a
        outcome.battles.append(Battle(
            gen_a.model, gen_b.model, winner, judge, prompt.id, seed, prompt.tags, None, None,
            f"{failed.model} failed to generate ({failure.kind})", 0.0))
        return
    outcome.skipped.append(_skip_row(judge, prompt, seed, gen_a.model, gen_b.model, failure))


def _skip_row(judge: str, prompt: Prompt, seed: int, model_a: str, model_b: str,
              failure: Failure) -> dict[str, Any]:
    return {"judge": judge, "prompt_id": prompt.id, "seed": seed, "model_a": model_a,
            "model_b": model_b, "failure_kind": failure.kind,
            "failure_message": failure.message}
