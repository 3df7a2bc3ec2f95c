"""One experiment, end to end: suite -> generate -> judge -> battles -> rate -> report.

Everything is checked before any work (config, suite, plugins' `check()`), then every
stage asks the store before it computes. Outputs are written once, atomically, at the end.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from autojudge import app
from autojudge.errors import AutojudgeError
from autojudge.stages.battles import count_pairs, run_judge
from autojudge.stages.boards import BoardSpec, RunFacts, build_boards, model_stats
from autojudge.stages.generate import expand_requests, run_generation
from autojudge.store import Store


def plain_config(cfg: Any) -> dict[str, Any]:
    """The resolved config as plain containers; a required value left as ??? is one line."""
    from omegaconf import OmegaConf
    from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True,
                                      enum_to_str=True)
    except MissingMandatoryValue as exc:
        key = getattr(exc, "full_key", "") or str(exc).splitlines()[0]
        raise AutojudgeError(f"config value '{key}' is required: set it on the command line, "
                             f"e.g. {key}=...") from None
    except InterpolationResolutionError as exc:
        raise AutojudgeError(f"config: {str(exc).splitlines()[0]}") from None


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Any]:
    """A rich progress bar (or a silent stand-in) shared by generation and judging."""
    if not enabled:
        class Silent:
            def add_task(self, *args: Any, **kwargs: Any) -> int:
                return 0

            def advance(self, *args: Any, **kwargs: Any) -> None:
                pass

        yield Silent()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), transient=False) as progress:
        yield progress


def run(cfg: Any, run_dir: Path) -> dict[str, Any]:
    """Run the experiment described by `cfg`, write outputs to `run_dir`, return the
    leaderboard document."""
    config = plain_config(cfg)
    suite = app.load_suite_from_config(cfg.suite)
    generators = app.build_generators(config["model"])
    store = Store(config["store"]["root"])
    judges = app.build_judges(config["judge"], store)
    rating_cfg = app.rating_config(cfg.ratings)
    if config["battles"]["failed_image"] not in ("skip", "loss"):
        raise AutojudgeError(f"battles.failed_image must be 'skip' or 'loss', got "
                             f"'{config['battles']['failed_image']}'")
    if config["battles"]["schedule"] not in ("all_pairs", "adaptive"):
        raise AutojudgeError(f"battles.schedule must be 'all_pairs' or 'adaptive', got "
                             f"'{config['battles']['schedule']}'")
    votes_cfg = config.get("human_votes") or {}
    if votes_cfg.get("path") and "human" in judges:
        raise AutojudgeError("a judge is labelled 'human' and human_votes.path is set; "
                             "rename the judge (human votes are judge 'human')")
    for plugin in [*generators.values(), *judges.values()]:
        plugin.check()
    models = list(generators)
    requests = suite.requests()
    started = time.time()
    counts: dict[str, Any] = {"generation": {"cached": 0, "computed": 0, "failed": 0},
                              "judges": {}}
    generations, battles, skipped = [], [], []
    schedules: dict[str, Any] = {}
    judge_stats: dict[str, Any] = {}
    with progress_bar(bool(config.get("progress", True))) as progress:
        for label, generator in generators.items():
            task = progress.add_task(f"generate {label}", total=len(requests))
            gens, c = run_generation(label, generator, expand_requests(requests), store,
                                     lambda n, t=task: progress.advance(t, n))
            generations.extend(gens)
            for k, v in c.as_dict().items():
                counts["generation"][k] += v
        for label, judge in judges.items():
            total = count_pairs(models, requests, judge.applies)
            task = progress.add_task(f"judge {label}", total=total)
            if config["battles"]["schedule"] == "adaptive":
                from autojudge.stages.adaptive import run_judge_adaptive, schedule_config

                outcome, schedules[label] = run_judge_adaptive(
                    judge, models, generations, requests, store,
                    config["battles"]["failed_image"], lambda n, t=task: progress.advance(t, n),
                    schedule_config(config["battles"], judge, rating_cfg))
            else:
                outcome = run_judge(judge, models, generations, requests, store,
                                    config["battles"]["failed_image"],
                                    lambda n, t=task: progress.advance(t, n))
            battles.extend(outcome.battles)
            skipped.extend(outcome.skipped)
            counts["judges"][label] = judge.counts.as_dict()
    for label, judge in judges.items():  # after all judges: shared-backbone counts are final
        stats = judge.run_stats()  # e.g. VLM position-bias rate, CLIP truncations
        if stats is not None:
            judge_stats[label] = stats
    board_judges, human_summary = list(judges), None
    if votes_cfg.get("path"):
        from autojudge.human_votes import load_human_votes

        votes, human_summary = load_human_votes(
            app.resolve_path(votes_cfg["path"], "human_votes.path"), suite.prompts, models,
            votes_cfg.get("models") or {}, str(votes_cfg.get("preference", "imgsys")))
        battles.extend(votes)
        board_judges.append("human")
    spec = BoardSpec(rating_cfg, int(config["report"]["per_tag_min_prompts"]),
                     int(config["report"].get("min_battles", 0)),
                     str(config["ratings"].get("overall_weighting", "equal")),
                     bool(config["ratings"].get("overall_includes_human", False)))
    applicable = {label: sum(1 for p, _ in requests if judge.applies(p))
                  for label, judge in judges.items()}
    boards = build_boards(battles, models, board_judges, spec,
                          RunFacts(generations, skipped, applicable))
    from autojudge.stages.agreement import compute_agreement

    agreement = compute_agreement(battles, boards, board_judges, rating_cfg)
    run_info = {"name": config["name"], "suite": suite.name, "suite_path": suite.source,
                "models": models, "judges": list(judges), "n_prompts": len(suite.prompts),
                "n_requests": len(requests), "seeds": sorted({s for _, s in requests}),
                "n_battles": len(battles), "n_skipped": len(skipped),
                "ratings": {"bootstrap_rounds": rating_cfg.bootstrap_rounds,
                            "seed": rating_cfg.seed, "confidence": rating_cfg.confidence,
                            "prior": rating_cfg.prior, "anchor": rating_cfg.anchor,
                            "cluster": "prompt_id"},
                "schedule": config["battles"]["schedule"], "schedules": schedules,
                "human_votes": human_summary,
                "judge_stats": judge_stats,
                "cache": counts, "wall_s": round(time.time() - started, 3),
                "store": str(store.root)}
    from autojudge.report.files import leaderboard_document, write_run_files

    document = leaderboard_document(run_info, boards, model_stats(generations, models),
                                    agreement)
    scores = _score_rows(judges, generations) if config["report"]["write_scores"] else []
    write_run_files(run_dir, document, battles, generations, scores, skipped)
    from autojudge.report.wandb_log import log_to_wandb

    log_to_wandb(config["logger"], run_dir, config, document)
    store.close()
    return document


def _score_rows(judges: dict[str, Any], generations: list[Any]) -> list[dict[str, Any]]:
    """Per-image scores of every pointwise judge, one row per (judge, model, prompt, seed)."""
    return [row for judge in judges.values() for row in judge.score_rows(generations)]
