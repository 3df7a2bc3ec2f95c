"""One experiment, end to end: suite -> generate -> judge -> battles -> rate -> report.

Everything is checked before any work (config, suite, plugins' `check()`), then every
stage asks the store before it computes. Outputs are written once, atomically, at the end.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from autojudge.experiment import build
from autojudge.experiment import preflight
from autojudge.experiment.schema import Schedule, enum_value, typed_settings
from autojudge.errors import AutojudgeError
from autojudge.runtime.progress import progress_bar, to_log_file
from autojudge.stages.judge import count_pairs, run_judge
from autojudge.stages.kwise import count_groups, run_kwise_judge
from autojudge.stages.boards import BoardSpec, RunFacts, build_boards, model_stats
from autojudge.stages.generate import expand_requests, run_generation
from autojudge.store.index import Store
from autojudge.types import RankingBattle
from autojudge.suites.load import JudgeScope

log = logging.getLogger(__name__)


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


@dataclass
class Experiment:
    """Everything a run works from, built and checked before any work is done."""

    config: dict[str, Any]  # plain: plugin params, config.json, the sweep's objective
    suite: Any
    generators: dict[str, Any]
    judges: dict[str, Any]
    store: Store
    rating_cfg: Any
    models: list[str]
    requests: list[tuple[Any, int]]
    votes: Any = None  # config.HumanVotesConfig, its path resolved
    notes: list[str] = field(default_factory=list)
    # where batches run (autojudge.executors); None: here. Only this process writes the store.
    executor: Any = None
    # the typed settings tree (config.AutojudgeConfig): what every stage reads
    settings: Any = None

    @property
    def progress(self) -> bool:
        return bool(self.settings.progress)

    def runs_on(self) -> Any:
        """The executor, the local one when none was built."""
        if self.executor is None:
            from autojudge.executors.local import LocalExecutor

            self.executor = LocalExecutor()
        return self.executor


@dataclass
class Judged:
    """What the judge stage produced (battle log rows, skipped pairs, counts, schedules)."""

    battles: list[Any] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    schedules: dict[str, Any] = field(default_factory=dict)


def prepare(cfg: Any, config: dict[str, Any], store: Store,
            settings: Any = None) -> Experiment:
    """Build every object and run every check (`preflight`): no image is generated and
    no judge is asked before this returns. `settings`: the typed tree of `config`
    (`config.typed_settings`), built here when not given."""
    settings = settings if settings is not None else typed_settings(config)
    models, judge_labels = list(config["model"]), list(config["judge"])
    votes = settings.human_votes
    if votes.path:
        if "human" in judge_labels:
            raise AutojudgeError("a judge is labelled 'human' and human_votes.path is set; "
                                 "rename the judge (human votes are judge 'human')")
        judge_labels.append("human")
    preflight.check_settings(config, models, judge_labels, settings)
    preflight.check_models(models)
    store.use_blobs(settings.store.blobs)  # shared storage, if set
    generators = build.build_generators(config["model"])
    from autojudge.executors import build_executor

    executor = build_executor(config, store)  # no worker starts before the first batch
    # the runners stay here; their plugin calls go where the executor says
    judges = build.build_judges(config["judge"], store, executor.judge_compute)
    preflight.check_control(settings.ratings.control,
                            [getattr(j.plugin, "kind", None) for j in judges.values()])
    # only the prompts a judge looks at are generated (suite.only_judged): built judges first
    suite = build.load_suite_from_config(cfg.suite, JudgeScope.of(
        judges, only_judged=settings.suite.only_judged, human_votes=bool(votes.path)))
    if votes.path:
        votes.path = str(build.resolve_path(votes.path, "human_votes.path"))
    for plugin in [*generators.values(), *judges.values()]:
        plugin.check()
    requests = suite.requests()
    notes = [*suite.notes, *preflight.check_applicability(judges, suite.prompts)]
    notes += preflight.check_folders(generators, expand_requests(requests))
    return Experiment(config, suite, generators, judges, store,
                      build.rating_config(settings.ratings), models, requests, votes, notes,
                      executor, settings)


def generate_all(exp: Experiment, progress: Any) -> tuple[list[Any], dict[str, int]]:
    """Every model's image for every request (from the store where possible)."""
    counts = {"cached": 0, "computed": 0, "failed": 0}
    generations: list[Any] = []
    for label, generator in exp.generators.items():
        started = time.time()
        advance = progress.stage("generate", label, total=len(exp.requests))
        gens, c = run_generation(label, generator, expand_requests(exp.requests), exp.store,
                                 advance, exp.runs_on().generation_dispatch(label, generator))
        exp.runs_on().release("model", label)  # frees its workers' GPUs for the next model
        generations.extend(gens)
        for k, v in c.as_dict().items():
            counts[k] += v
        log.info("generate %s: %d images (%d from the store, %d new, %d failed) in %.1f s",
                 label, len(gens), c.cached, c.computed, c.failed, time.time() - started)
    return generations, counts


def judge_all(exp: Experiment, generations: list[Any], progress: Any) -> Judged:
    """Every judge's battles over the generations (all pairs, or the adaptive schedule)."""
    out = Judged()
    battles_cfg = exp.settings.battles
    failed_image = enum_value(battles_cfg.failed_image)
    for label, judge in exp.judges.items():
        started = time.time()
        k = judge.settings.k
        total = count_groups(exp.models, k, exp.requests, judge.applies) if k > 2 else \
            count_pairs(exp.models, exp.requests, judge.applies)
        advance = progress.stage("judge", label, total, tally=judge.counts,
                                 what="scores" if judge.pointwise else
                                 "rankings" if k > 2 else "verdicts")
        if battles_cfg.schedule == Schedule.adaptive:  # pairs, or groups when k > 2
            from autojudge.stages.adaptive import run_judge_adaptive, schedule_config

            outcome, out.schedules[label] = run_judge_adaptive(
                judge, exp.models, generations, exp.requests, exp.store,
                failed_image, advance, schedule_config(battles_cfg, judge, exp.rating_cfg),
                k=k)
        elif k > 2:  # one call ranks k images (stages.kwise)
            outcome = run_kwise_judge(judge, k, exp.models, generations, exp.requests,
                                      exp.store, advance)
        else:
            outcome = run_judge(judge, exp.models, generations, exp.requests, exp.store,
                                failed_image, advance)
        exp.runs_on().release("judge", label)
        out.battles.extend(outcome.battles)
        out.skipped.extend(outcome.skipped)
        out.counts[label] = judge.counts.as_dict()
        note = judge.failure_note()  # items a plugin failed on: counted, the run goes on
        if note:
            exp.notes.append(note)  # the report's and leaderboard.json's run notes
            if exp.progress:
                print(f"note: {note}")
                to_log_file(f"judge: {note}", name=__name__)
            else:
                log.warning("note: %s", note)
        log.info("judge %s: %d battles, %d skipped; %s in %.1f s", label,
                 len(outcome.battles), len(outcome.skipped), judge.counts.as_dict(),
                 time.time() - started)
    return out


def rate(exp: Experiment, generations: list[Any], judged: Judged
         ) -> tuple[dict[str, Any], list[Any]]:
    """Boards, agreement and the leaderboard document (human votes joined here).

    Returns:
        (the leaderboard document, every battle rated, human votes included)."""
    from autojudge.report.files import leaderboard_document
    from autojudge.results import run_info
    from autojudge.stages.agreement import compute_agreement

    judge_stats = {label: stats for label, judge in exp.judges.items()
                   if (stats := judge.run_stats()) is not None}  # after all judges ran
    logged = [b for b in judged.battles if isinstance(b, RankingBattle)]  # K-wise rows
    battles = [p for b in judged.battles
               for p in (b.pairs() if isinstance(b, RankingBattle) else [b])]
    board_judges, human_summary = list(exp.judges), None
    if exp.votes.path:
        from autojudge.battles.human_votes import load_human_votes

        votes, human_summary = load_human_votes(
            exp.votes.path, exp.suite.prompts, exp.models, dict(exp.votes.models),
            enum_value(exp.votes.preference))
        battles.extend(votes)
        board_judges.append("human")
    rating_cfg, settings = exp.rating_cfg, exp.settings
    spec = BoardSpec(rating_cfg, settings.report.per_tag_min_prompts,
                     settings.report.min_battles,
                     enum_value(settings.ratings.overall_weighting),
                     settings.ratings.overall_includes_human, store=exp.store)
    applicable = {label: sum(1 for p, _ in exp.requests if judge.applies(p))
                  for label, judge in exp.judges.items()}
    boards = build_boards(battles, exp.models, board_judges, spec,
                          RunFacts(generations, judged.skipped, applicable))
    agreement = compute_agreement(battles, boards, board_judges, rating_cfg)
    style, battles, logged = style_stage(exp, battles, generations, board_judges, boards,
                                         logged)
    run = run_info(rating_cfg, exp.requests, name=settings.name, suite=exp.suite.name,
                   suite_path=exp.suite.source, models=exp.models, judges=list(exp.judges),
                   n_prompts=len(exp.suite.prompts), n_battles=len(battles),
                   n_skipped=len(judged.skipped),
                   schedule=enum_value(settings.battles.schedule),
                   schedules=judged.schedules, human_votes=human_summary,
                   judge_stats=judge_stats, notes=exp.notes, store=str(exp.store.root))
    document = leaderboard_document(run, boards, model_stats(generations, exp.models),
                                    agreement, style)
    return document, [b for b in battles if b.judge not in {r.judge for r in logged}] + logged


def style_stage(exp: Experiment, battles: list[Any], generations: Sequence[Any],
                judges: Sequence[str], boards: Sequence[Mapping[str, Any]],
                logged: list[Any]) -> tuple[list[dict[str, Any]], list[Any], list[Any]]:
    """`ratings.control`: the controlled boards, and the battles (pairs) and K-wise rows
    (`logged`) carrying their images' features (so the log rates with `rate --control`
    and gates with `gate --control`). Nothing is computed when no feature is asked for."""
    from autojudge.stages.style import (image_feature_table, ocr_text_areas,
                                        style_control_boards, with_features)

    features = list(exp.settings.ratings.control)
    if not features:
        return [], battles, logged
    areas: dict[str, float] = {}
    for runner in exp.judges.values():
        if getattr(runner.plugin, "kind", None) == "ocr":
            areas.update(ocr_text_areas(runner.score_rows(generations)))
    table = image_feature_table(generations, exp.store, areas)
    style = style_control_boards(battles, generations, judges, features, exp.store,
                                 exp.rating_cfg, boards, table)
    return (style, with_features(battles, generations, table),
            with_features(logged, generations, table))


def run(cfg: Any, run_dir: Path, wandb_session: Any = None) -> dict[str, Any]:
    """Run the experiment described by `cfg`, write outputs to `run_dir`, return the
    leaderboard document. `wandb_session`: a `report.wandb_session.WandbSession` started
    earlier (its W&B import under way); None: one is started here. Either way it is
    closed here."""
    from autojudge.report.wandb_session import WandbSession, logger_on
    from autojudge.sweeps import variants as sweeps

    config = plain_config(cfg)
    config["model"] = build.expand_model_variants(config)  # sweep variants -> models
    sweeps.check_objective(config)
    try:
        settings = typed_settings(config)
        # W&B loads in a child process while this one works (stopped if refused)
        if wandb_session is None:
            wandb_session = WandbSession(start=logger_on(config["logger"]))
        with Store(settings.store.root) as store:
            exp = prepare(cfg, config, store, settings)
            # past pre-flight: W&B may write into the run folder now
            wandb_session.bind(config["logger"], run_dir)
            for note in exp.notes:  # said once on the console; always in the log file
                if exp.progress:
                    print(f"note: {note}")
                    to_log_file(f"pre-flight: {note}", name=__name__)
                else:
                    log.info("pre-flight: %s", note)
            document = _run_stages(exp, config, run_dir)
            timed("W&B logging", wandb_session.log, config, document)
            for part, seconds in wandb_session.timing.items():  # in its own process
                to_log_file(f"timing: W&B child {part} {seconds:.3f} s", name=__name__)
    finally:
        if wandb_session is not None:
            wandb_session.close()
    return document


def timed(what: str, call: Any, *args: Any) -> Any:
    """call(*args), its wall time in the run's log file (where a warm re-run's time goes:
    benchmarks/bench_pipeline.py reads these lines)."""
    started = time.perf_counter()
    try:
        return call(*args)
    finally:
        to_log_file(f"timing: {what} {time.perf_counter() - started:.3f} s", name=__name__)


def _run_stages(exp: Experiment, config: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """Generate, judge, rate and write the run folder; the leaderboard document."""
    from autojudge.report.files import write_run_files
    from autojudge.report.html import write_report_files
    from autojudge.stages.stage_progress import StageProgress
    from autojudge.sweeps import variants as sweeps

    started = time.time()
    try:
        with progress_bar(exp.progress) as bar:
            progress = StageProgress(bar)  # store vs new counts and an ETA per stage
            generations, gen_counts = timed("generate", generate_all, exp, progress)
            judged = timed("judge", judge_all, exp, generations, progress)
    finally:
        exp.runs_on().close()  # no worker keeps a GPU; a Ray this run started stops
    document, battles = timed("rate", rate, exp, generations, judged)
    document["run"]["cache"] = {"generation": gen_counts, "judges": judged.counts}
    document["run"]["wall_s"] = round(time.time() - started, 3)
    document["run"]["objective"] = sweeps.compute_objective(
        config, document, [p for b in battles
                           for p in (b.pairs() if isinstance(b, RankingBattle) else [b])])
    scores = [row for judge in exp.judges.values()
              for row in judge.score_rows(generations)] \
        if exp.settings.report.write_scores else []
    timed("run files", write_run_files, run_dir, document, battles, generations, scores,
          judged.skipped, enum_value(exp.settings.report.images))
    # report.html, config.json
    timed("report", write_report_files, run_dir, config, exp.suite.prompts)
    wrote = f"wrote {run_dir} ({len(battles)} battles, {len(document['boards'])} boards)"
    if exp.progress:  # the report's last line says it on the console
        to_log_file(wrote, name=__name__)
    else:
        log.info(wrote)
    return document


def no_answer(document: dict[str, Any]) -> str | None:
    """Why a finished run answered nothing (no board rated any model: every board empty,
    or every model unrated because its images failed), as one line; None when some board
    rated something. Partial failures are an answer: the report shows them."""
    boards = document.get("boards") or []
    if any(board.get("n_rated") for board in boards):
        return None
    if not boards:
        return "no board was built"
    overall = next((b for b in boards if b.get("judge") == "all" and b.get("tag") is None),
                   boards[0])
    reasons = [f"{m['model']}: {m['unrated_reason']}" for m in overall.get("models") or []
               if m.get("unrated_reason")]
    shown = "; ".join(reasons[:4]) + (f"; and {len(reasons) - 4} more" if len(reasons) > 4
                                      else "")
    return f"no model could be rated ({shown or 'no battles'})"
