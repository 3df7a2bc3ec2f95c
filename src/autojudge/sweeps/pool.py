"""`python -m autojudge.compare RUN_DIR... [--out DIR]`: pool finished runs into one board.

A multirun's sweep folder counts as its jobs. The pooled run has every distinct model of
every job (autojudge.sweeps.pool_jobs: equal config = same model; a label used by different
configs gets distinct labels such as `typeset[max_font_size=24]`), and every judge fights
every pair of models on every (prompt, seed) they share. Nothing is generated: the images
are the runs' own, from the store. Pointwise judges' scores are read from the store's
cache (keyed by judge fingerprint, image and prompt), so pooling a sweep judged by OCR
or CLIP judges nothing; a pairwise judge judges (and caches) only the pairs no run met.
The output folder holds the same files as a run (leaderboard.json/csv, battles.jsonl,
generations.jsonl, scores.jsonl, models.csv, images/, report.html, plots/) and can
itself be pooled again.

Every pooled image is hashed in the store before judging. A damaged one is made again
where its model can do that for nothing and byte for byte (generators that declare
`cheap_to_remake`: baselines, folder models); any other stays damaged: its battles are
skipped (never a loss), it counts as a failed image (`damaged_image`) in the models table
and the cache line, and the console names it with the fix (`python -m autojudge.store
repair`, then the run that made it again).

Exit 0, or 2 with one `error:` line (bad folder, different stores or judge settings).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any, Sequence

from autojudge.errors import AutojudgeError
from autojudge.sweeps.pool_jobs import (DAMAGED, Job, check_images, job_requests, load_job,
                                        mark_damaged, pool_judges, pool_models, shared_store)
from autojudge.types import Failure, Generation, Prompt

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompareOptions:
    """Settings of one pooling (None: the first job's own setting)."""

    out: Path
    bootstrap_rounds: int | None = None
    seed: int | None = None
    store: str | None = None
    logger: str = "none"
    report: bool = True
    progress: bool = True


def pooled_prompts(jobs: Sequence[Job]) -> tuple[dict[str, Prompt], list[tuple[Prompt, int]]]:
    """Every job's (prompt, seed) requests, pooled in order: exactly those the jobs
    generated (pool_jobs.job_requests: with suite.only_judged a run leaves out the
    prompts none of its judges applies to). One line when two jobs hold different
    prompts under one id (their cached scores would not be comparable)."""
    prompts: dict[str, Prompt] = {}
    requests: dict[tuple[str, int], tuple[Prompt, int]] = {}
    for job in jobs:
        for prompt, seed in job_requests(job):
            known = prompts.setdefault(prompt.id, prompt)
            if known.content() != prompt.content():
                raise AutojudgeError(f"prompt {prompt.id!r} differs between the pooled runs "
                                     f"({job.run_dir}); pool runs of the same suite")
            requests.setdefault((prompt.id, seed), (known, seed))
    return prompts, list(requests.values())


def pooled_generations(jobs: Sequence[Job], mapping: dict[tuple[int, str], str],
                       prompts: dict[str, Prompt]) -> list[Generation]:
    """One generation per (pooled model, prompt, seed), from the first job that has it."""
    seen: dict[tuple[str, str, int], Generation] = {}
    for i, job in enumerate(jobs):
        for row in job.generations:
            model = mapping.get((i, row["model"]))
            prompt = prompts.get(row["prompt_id"])
            if model is None or prompt is None:
                continue
            key = (model, prompt.id, int(row["seed"]))
            if key in seen:
                continue
            # an image a pooled run found damaged is checked again: it may be mended since
            failure = Failure(str(row.get("failure_kind")), str(row.get("failure_message")
                                                                 or "")) \
                if row.get("status") != "ok" and not (
                    row.get("failure_kind") == DAMAGED and row.get("image_sha256")) else None
            seen[key] = Generation(model, prompt, int(row["seed"]), row.get("image_sha256"),
                                   row.get("image_path"), float(row.get("latency_s") or 0),
                                   float(row.get("cost_usd") or 0), failure, cached=True,
                                   meta=dict(row.get("meta") or {}))
    return list(seen.values())


def battle_plan(models: Sequence[str], generations: Sequence[Generation],
                requests: Sequence[tuple[Prompt, int]], applies: Any
                ) -> list[tuple[Prompt, int, str, str]]:
    """Every pair of models that both have an image of a (prompt, seed) the judge takes."""
    have: dict[tuple[str, int], set[str]] = {}
    for g in generations:
        have.setdefault((g.prompt.id, g.seed), set()).add(g.model)
    plan = []
    for prompt, seed in requests:
        if not applies(prompt):
            continue
        present = [m for m in models if m in have.get((prompt.id, seed), set())]
        plan.extend((prompt, seed, a, b) for a, b in combinations(present, 2))
    return plan


def _rating_config(config: dict[str, Any], options: CompareOptions) -> Any:
    from omegaconf import OmegaConf

    from autojudge.experiment import build

    ratings = dict(config.get("ratings") or {})
    if options.bootstrap_rounds is not None:
        ratings["bootstrap_rounds"] = options.bootstrap_rounds
    if options.seed is not None:
        ratings["seed"] = options.seed
    ratings.setdefault("prior", None)
    ratings.setdefault("anchor", None)
    return build.rating_config(OmegaConf.create(ratings))


def _judge_all(judges: dict[str, Any], models: Sequence[str], generations: Sequence[Any],
               requests: Sequence[tuple[Prompt, int]], store: Any, failed_image: str,
               show: bool) -> tuple[list[Any], list[dict[str, Any]]]:
    from autojudge.runtime.progress import progress_bar
    from autojudge.stages.judge import run_judge
    from autojudge.stages.stage_progress import StageProgress

    battles, skipped = [], []
    with progress_bar(show, stderr=True) as bar:
        progress = StageProgress(bar)
        for label, judge in judges.items():
            plan = battle_plan(models, generations, requests, judge.applies)
            advance = progress.stage("judge", label, len(plan), tally=judge.counts,
                                     what="scores" if judge.pointwise else "verdicts")
            outcome = run_judge(judge, models, generations, requests, store, failed_image,
                                advance, plan=plan)
            battles.extend(outcome.battles)
            skipped.extend(outcome.skipped)
    return battles, skipped


def compare(paths: Sequence[Path], options: CompareOptions) -> dict[str, Any]:
    """Pool the runs at `paths` (see the module docstring); returns the leaderboard
    document written to `options.out`."""
    from autojudge.experiment import build
    from autojudge.sweeps.jobs import find_jobs

    started = time.time()
    jobs = [load_job(p) for p in find_jobs(paths)]
    first = jobs[0].config
    nodes, mapping = pool_models(jobs)
    models = list(nodes)
    if len(models) < 2:
        raise AutojudgeError(f"the runs hold one distinct model ({models[0]}): nothing to "
                             "compare; give runs whose models differ")
    judge_nodes = pool_judges(jobs)
    prompts, requests = pooled_prompts(jobs)
    generations = pooled_generations(jobs, mapping, prompts)
    from autojudge.store.index import Store

    with Store(Path(shared_store(jobs, options.store)).expanduser()) as store:
        images = check_images(generations, nodes, store)
        judges = build.build_judges(judge_nodes, store)
        failed_image = str((first.get("battles") or {}).get("failed_image", "skip"))
        # judged as made (a damaged image's battles are skipped, never lost), counted as
        # failed images everywhere else
        battles, skipped = _judge_all(judges, models, generations, requests, store,
                                      failed_image, options.progress)
        generations, summary = mark_damaged(generations, images, jobs, mapping, skipped,
                                            store)
        document = _document(jobs, nodes, mapping, judges, generations, battles, skipped,
                             prompts, requests, _rating_config(first, options), store)
        document["run"]["images"] = summary
        gen_counts = document["run"]["cache"]["generation"]
        gen_counts["computed"] = len(images.remade)  # made again, byte for byte
        gen_counts["cached"] -= len(images.remade)
        document["run"]["wall_s"] = round(time.time() - started, 3)
        _write(options, jobs, nodes, document, battles, generations, skipped, judges, prompts)
    return document


def _document(jobs: Sequence[Job], nodes: dict[str, Any], mapping: dict[tuple[int, str], str],
              judges: dict[str, Any], generations: Sequence[Generation], battles: Sequence[Any],
              skipped: Sequence[dict[str, Any]], prompts: dict[str, Prompt],
              requests: Sequence[tuple[Prompt, int]], rating_cfg: Any, store: Any
              ) -> dict[str, Any]:
    from autojudge.report.files import leaderboard_document
    from autojudge.results import run_info
    from autojudge.stages.agreement import compute_agreement
    from autojudge.stages.boards import BoardSpec, RunFacts, build_boards, model_stats

    config, models = jobs[0].config, list(nodes)
    from autojudge.experiment.schema import enum_value, stored_section

    report, ratings = stored_section(config, "report"), stored_section(config, "ratings")
    spec = BoardSpec(rating_cfg, report.per_tag_min_prompts, report.min_battles,
                     enum_value(ratings.overall_weighting), False)
    applicable = {label: sum(1 for p, _ in requests if j.applies(p))
                  for label, j in judges.items()}
    boards = build_boards(battles, models, list(judges), spec,
                          RunFacts(generations, skipped, applicable))
    agreement = compute_agreement(battles, boards, list(judges), rating_cfg)
    sources = [{"run_dir": str(job.run_dir), "swept": job.swept,
                "models": {label: mapping[(i, label)] for label in job.models}}
               for i, job in enumerate(jobs)]
    failed = sum(1 for g in generations if not g.ok)
    first = jobs[0].document["run"]
    run = run_info(rating_cfg, requests, name="compare", suite=first.get("suite"),
                   suite_path=first.get("suite_path"), models=models, judges=list(judges),
                   n_prompts=len(prompts), n_battles=len(battles), n_skipped=len(skipped),
                   judge_stats={label: s for label, j in judges.items()
                                if (s := j.run_stats()) is not None},
                   notes=[f"pooled {len(jobs)} runs by autojudge.compare"],
                   store=str(store.root), compare={"sources": sources},
                   cache={"generation": {"cached": len(generations) - failed,
                                         "computed": 0, "failed": failed},
                          "judges": {label: j.counts.as_dict()
                                     for label, j in judges.items()}})
    return leaderboard_document(run, boards, model_stats(generations, models), agreement)


def _write(options: CompareOptions, jobs: Sequence[Job], nodes: dict[str, Any],
           document: dict[str, Any], battles: Sequence[Any], generations: Sequence[Any],
           skipped: Sequence[dict[str, Any]], judges: dict[str, Any],
           prompts: dict[str, Prompt]) -> None:
    from autojudge.report.files import write_run_files
    from autojudge.report.html import write_report_files

    out = options.out
    scores = [row for j in judges.values() for row in j.score_rows(generations)]
    write_run_files(out, document, battles, generations, scores, skipped, images="link")
    config = {**jobs[0].config, "name": "compare", "model": nodes,
              "report": {**(jobs[0].config.get("report") or {}), "html": options.report}}
    write_report_files(out, config, list(prompts.values()))
    if options.logger == "wandb":
        from autojudge.report.wandb_log import log_to_wandb

        logger = {**(jobs[0].config.get("logger") or {}), "kind": "wandb"}
        log_to_wandb(logger, out, config, document)
