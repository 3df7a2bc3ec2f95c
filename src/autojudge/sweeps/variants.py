"""Sweeps inside one run (model variants) and the objective a Hydra sweeper optimises.

**Variants.** A `sweep` key inside a model's config node expands that model into one
model per combination of the listed values, each a model on the same board:

    python -m autojudge model=[sd15,blank] '+model.sd15.sweep.guidance_scale=[3,5,7]'
    python -m autojudge model=[sd15,blank] '+sweep.variants.sd15.guidance_scale=[3,5,7]'

gives models `sd15[guidance_scale=3]`, `sd15[guidance_scale=5]`, `sd15[guidance_scale=7]`
(several keys give their cartesian product, labels list the keys in the order given).

**Objective.** With `sweep.reference=MODEL`, every run measures one number that is
comparable across runs, because the reference model (same settings, same prompts, same
cached images) is the same in every job: the target model's rating minus the reference's
(`rating`, Elo points, default), its head-to-head win rate against the reference
(`win_rate`, ties count half) or its mean score minus the reference's on the same prompt
and seed (`score`, pointwise judges). `sweep.cost_weight` subtracts weight x $/image;
above `sweep.max_cost_per_image_usd` a setting is out of budget and scores -inf. The
Hydra task function returns it, so `hydra/sweeper=optuna` can maximise it
(docs/sweeps.md).

Example:
    >>> expand_variants({"t": {"kind": "typeset", "sweep": {"max_font_size": [8, 24]}}})
    {'t[max_font_size=8]': {'kind': 'typeset', 'max_font_size': 8}, 't[max_font_size=24]': {'kind': 'typeset', 'max_font_size': 24}}
"""
from __future__ import annotations

import itertools
import logging
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from autojudge.errors import AutojudgeError

OBJECTIVES = ("rating", "win_rate", "score")
SWEEP_KEY = "sweep"


# --------------------------------------------------------------------------- variants

def format_value(value: Any) -> str:
    """A parameter value as it appears in a variant label (compact, YAML-like)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if value is None:
        return "null"
    return str(value)


def variant_label(base: str, params: Sequence[tuple[str, Any]]) -> str:
    """E.g. variant_label("sd15", [("guidance_scale", 5)]) -> 'sd15[guidance_scale=5]'."""
    return f"{base}[" + ",".join(f"{k}={format_value(v)}" for k, v in params) + "]"


def _set_path(node: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `a.b.c` inside a nested dict (variants of nested plugin params)."""
    *parents, leaf = dotted.split(".")
    for part in parents:
        child = node.get(part)
        node[part] = child = dict(child) if isinstance(child, Mapping) else {}
        node = child
    node[leaf] = value


def _sweep_axes(label: str, spec: Any) -> list[tuple[str, list[Any]]]:
    if not isinstance(spec, Mapping) or not spec:
        raise AutojudgeError(f"model.{label}.sweep: expected a mapping of parameter -> list of "
                             f"values, e.g. '+model.{label}.sweep.guidance_scale=[3,5,7]'")
    axes = []
    for key, values in spec.items():
        if key in ("kind", SWEEP_KEY):
            raise AutojudgeError(f"model.{label}.sweep.{key}: '{key}' cannot be swept inside "
                                 "one model; choose several models instead")
        if not isinstance(values, (list, tuple)) or not values:
            raise AutojudgeError(f"model.{label}.sweep.{key}: expected a non-empty list of "
                                 f"values, got {values!r}; e.g. model.{label}.sweep.{key}=[1,2]")
        axes.append((str(key), list(values)))
    return axes


def expand_variants(models: Mapping[str, Any],
                    variants: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """label -> plugin node, with every model that has a sweep spec replaced by its
    variants (in config order). The spec is the `sweep` key inside the model's node or
    `variants[label]` (the run's `sweep.variants`, for plugin nodes that are typed).

    Raises:
        AutojudgeError: (one line) a malformed spec, a spec for a model not in the run,
            or two variants with the same label.
    """
    variants = dict(variants or {})
    unknown = [label for label in variants if label not in models]
    if unknown:
        raise AutojudgeError(f"sweep.variants.{unknown[0]}: not a model of this run; models: "
                             f"{', '.join(models)}")
    out: dict[str, Any] = {}
    for label, node in models.items():
        spec = variants.get(label)
        if isinstance(node, Mapping) and node.get(SWEEP_KEY) is not None:
            spec = {**dict(node[SWEEP_KEY]), **dict(spec or {})}
        if not spec:
            _add(out, label, node)
            continue
        axes = _sweep_axes(label, spec)
        base = {k: v for k, v in dict(node).items() if k != SWEEP_KEY}
        for combo in itertools.product(*(values for _, values in axes)):
            params = [(key, value) for (key, _), value in zip(axes, combo)]
            variant = dict(base)
            for key, value in params:
                _set_path(variant, key, value)
            _add(out, variant_label(label, params), variant)
    return out


def _add(out: dict[str, Any], label: str, node: Any) -> None:
    if label in out:
        raise AutojudgeError(f"model '{label}' appears twice after expanding sweeps; give "
                             "each variant distinct values")
    out[label] = node


# --------------------------------------------------------------------------- objective

def objective_settings(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The run's `sweep` section when an objective is asked for (reference set)."""
    sweep = dict(config.get("sweep") or {})
    return sweep if sweep.get("reference") else None


def check_objective(config: Mapping[str, Any]) -> None:
    """Before any work: the reference, target and judge exist and the objective fits the
    judge. Uses the expanded model labels and the config's judges."""
    sweep = objective_settings(config)
    if sweep is None:
        return
    models, judges = list(config.get("model") or {}), list(config.get("judge") or {})
    target_model(sweep, models)
    kind = str(sweep.get("objective") or "rating")
    if kind not in OBJECTIVES:
        raise AutojudgeError(f"sweep.objective={kind!r}: must be one of {', '.join(OBJECTIVES)}")
    judge = str(sweep.get("judge") or "all")
    if judge != "all" and judge not in judges:
        raise AutojudgeError(f"sweep.judge={judge!r}: not a judge of this run; use one of "
                             f"{', '.join(judges)} or 'all'")
    if kind == "score" and judge == "all":
        raise AutojudgeError("sweep.objective=score compares one judge's scores: set "
                             f"sweep.judge to a pointwise judge, e.g. sweep.judge={judges[0]}")
    for key in ("cost_weight", "max_cost_per_image_usd"):
        value = sweep.get(key)
        if value is not None and (not isinstance(value, (int, float)) or value < 0):
            raise AutojudgeError(f"sweep.{key}={value!r}: must be a number >= 0")


def target_model(sweep: Mapping[str, Any], models: Sequence[str]) -> str:
    """The model whose settings are tuned: `sweep.target`, else the one model besides
    the reference."""
    reference, target = sweep.get("reference"), sweep.get("target")
    for key, name in (("sweep.reference", reference), ("sweep.target", target)):
        if name is not None and name not in models:
            raise AutojudgeError(f"{key}={name!r}: not a model of this run; models: "
                                 f"{', '.join(models)}")
    if target is not None:
        if target == reference:
            raise AutojudgeError("sweep.target and sweep.reference name the same model")
        return str(target)
    others = [m for m in models if m != reference]
    if len(others) != 1:
        raise AutojudgeError(f"sweep.target is not set and the run has {len(others)} models "
                             f"besides the reference ({', '.join(others)}); name the tuned "
                             "one with sweep.target=...")
    return others[0]


def compute_objective(config: Mapping[str, Any], document: Mapping[str, Any],
                      battles: Sequence[Any]) -> dict[str, Any] | None:
    """The objective record written to leaderboard.json (`run.objective`): value (None
    when the data give none, with `reason`), what it measures, and the cost it paid."""
    sweep = objective_settings(config)
    if sweep is None:
        return None
    models = list(document["run"]["models"])
    reference, target = str(sweep["reference"]), target_model(sweep, models)
    kind = str(sweep.get("objective") or "rating")
    judge, tag = str(sweep.get("judge") or "all"), sweep.get("tag")
    value, reason, n = _measure(kind, judge, tag, target, reference, document, battles)
    low, high, confidence = (None, None, None) if value is None else \
        _interval(kind, _head(battles, judge, tag, target, reference), target, reference,
                  dict(config.get("ratings") or {}))
    stats = {m["model"]: m for m in document.get("models", [])}
    cost = (stats.get(target) or {}).get("cost_per_image_usd")
    record = {"objective": kind, "judge": judge, "tag": tag, "target": target,
              "reference": reference, "raw_value": value, "n": n,
              "cost_per_image_usd": cost, "cost_weight": float(sweep.get("cost_weight") or 0),
              "max_cost_per_image_usd": sweep.get("max_cost_per_image_usd"),
              "direction": "maximize"}
    limit = sweep.get("max_cost_per_image_usd")
    if value is not None and limit is not None and cost is not None and cost > float(limit):
        value, reason = None, f"over budget: ${cost:.6f}/image > ${float(limit):.6f}"
        record["over_budget"] = True
    elif value is not None and record["cost_weight"]:
        value -= record["cost_weight"] * float(cost or 0.0)
        low, high = (None if b is None else b - record["cost_weight"] * float(cost or 0.0)
                     for b in (low, high))
    if value is None:
        low = high = None
    record.update(value=value, reason=reason, ci_low=low, ci_high=high,
                  confidence=confidence)
    return record


def _head(battles: Sequence[Any], judge: str, tag: Any, target: str, reference: str
          ) -> list[Any]:
    """The battles between target and reference that the objective reads."""
    return [b for b in battles if {b.model_a, b.model_b} == {target, reference}
            and (b.judge == judge or (judge == "all" and b.judge != "human"))
            and (tag is None or tag in b.tags)]


def _interval(kind: str, head: Sequence[Any], target: str, reference: str,
              ratings: Mapping[str, Any]) -> tuple[float | None, float | None, float]:
    """(low, high, confidence) of the raw objective: a prompt-clustered bootstrap, as
    the boards' CIs, so trials that the data cannot tell apart are seen as such. For
    `rating`, of target minus reference on their head-to-head battles (the BT path of
    the release gate); None sides where the data bound none."""
    import numpy as np

    from autojudge.experiment.schema import stored_section

    settings = stored_section({"ratings": ratings}, "ratings")  # the schema's defaults
    confidence, rounds, seed = settings.confidence, settings.bootstrap_rounds, settings.seed
    if kind == "rating":
        return (*_rating_interval(head, target, reference, rounds, seed, confidence),
                confidence)
    pairs = [(b.prompt_id, v) for b in head
             if (v := (_won(b, target) if kind == "win_rate" else _score_diff(b, target)))
             is not None]
    if not pairs or rounds <= 0:
        return None, None, confidence
    from autojudge.ratings.bootstrap import draw_counts, percentile_interval

    _, clusters = np.unique([p for p, _ in pairs], return_inverse=True)
    k = int(clusters.max()) + 1
    sums = np.bincount(clusters, weights=[v for _, v in pairs], minlength=k)
    counts = np.bincount(clusters, minlength=k).astype(float)
    weights = draw_counts(np.random.default_rng(seed), k, np.full(k, 1.0 / k), rounds)
    low, high = percentile_interval((weights @ sums) / (weights @ counts), confidence)
    return float(low), float(high), confidence


def _rating_interval(head: Sequence[Any], target: str, reference: str, rounds: int,
                     seed: int, confidence: float) -> tuple[float | None, float | None]:
    from autojudge.ratings.bootstrap import cluster_codes
    from autojudge.ratings.bradley_terry import encode_battles
    from autojudge.ratings.gate_stats import rating_difference

    if not head:
        return None, None
    battles = encode_battles([b.model_a for b in head], [b.model_b for b in head],
                             [b.winner for b in head])
    diff = rating_difference(battles, cluster_codes([b.prompt_id for b in head], len(head)),
                             battles.names.index(reference), battles.names.index(target),
                             rounds=rounds, seed=seed, confidence=confidence, paths=False)
    return diff.ci_low, diff.ci_high


def _won(battle: Any, target: str) -> float:
    winner = _winner(battle)
    return 1.0 if winner == target else 0.5 if winner is None else 0.0


def _measure(kind: str, judge: str, tag: Any, target: str, reference: str,
             document: Mapping[str, Any], battles: Sequence[Any]
             ) -> tuple[float | None, str | None, int]:
    if kind == "rating":
        board = next((b for b in document["boards"]
                      if b["judge"] == judge and b["tag"] == tag), None)
        if board is None:
            return None, f"no board for judge {judge} tag {tag}", 0
        rows = {r["model"]: r for r in board["models"]}
        t, r = rows.get(target, {}), rows.get(reference, {})
        if t.get("rating") is None or r.get("rating") is None:
            return None, "target or reference is unrated on this board", 0
        if t.get("component") != r.get("component"):
            return None, "target and reference were never linked by battles", 0
        return t["rating"] - r["rating"], None, int(t.get("battles") or 0)
    head = _head(battles, judge, tag, target, reference)
    if not head:
        return None, "no battles between target and reference", 0
    if kind == "win_rate":
        return sum(_won(b, target) for b in head) / len(head), None, len(head)
    diffs = [_score_diff(b, target) for b in head]
    diffs = [d for d in diffs if d is not None]
    if not diffs:
        return None, f"judge {judge} gave no scores (objective=score needs a pointwise judge)", 0
    return sum(diffs) / len(diffs), None, len(diffs)


def _winner(battle: Any) -> str | None:
    if battle.winner == "model_a":
        return battle.model_a
    if battle.winner == "model_b":
        return battle.model_b
    return None


def _score_diff(battle: Any, target: str) -> float | None:
    if battle.score_a is None or battle.score_b is None:
        return None
    diff = float(battle.score_a) - float(battle.score_b)
    return diff if battle.model_a == target else -diff


def task_return(document: Mapping[str, Any]) -> float | None:
    """What the Hydra task function returns: the objective (higher is better), -inf when
    the run gave none (out of budget, unrated), None when no objective was asked for."""
    record = (document.get("run") or {}).get("objective")
    if not record:
        return None
    value = record.get("value")
    return float(value) if value is not None and math.isfinite(value) else float("-inf")


# --------------------------------------------------------------------------- sweepers

def check_sweeper(sweeper: Any, config: Mapping[str, Any]) -> None:
    """An optimising sweeper (Optuna) needs an objective and must maximise it: fail in
    one line before the first trial does any work."""
    target = str((sweeper or {}).get("_target_", "")) if sweeper is not None else ""
    if "optuna" not in target.lower():
        return
    if objective_settings(config) is None:
        raise AutojudgeError("hydra/sweeper=optuna needs an objective: set sweep.reference="
                             "MODEL (a fixed model every trial is measured against); see "
                             "docs/sweeps.md")
    direction = sweeper.get("direction")
    direction = getattr(direction, "name", direction)
    if str(direction) != "maximize":
        raise AutojudgeError(f"hydra.sweeper.direction={direction}: autojudge's objective is "
                             "higher-is-better; pass hydra.sweeper.direction=maximize")


# --------------------------------------------------------------------------- best set

def _bounds(record: Mapping[str, Any]) -> tuple[float, float]:
    """(low, high) of a trial's objective: its CI, an open side as infinite; a record
    without an interval (written before they were) as its point value."""
    value = float(record["value"])
    if record.get("confidence") is None:
        return value, value
    low, high = record.get("ci_low"), record.get("ci_high")
    return (-math.inf if low is None else float(low), math.inf if high is None else float(high))


def best_settings(sweep_dir: str | Path, extra_keys: Sequence[str] = ()
                  ) -> dict[str, Any] | None:
    """The CI-aware best trials of a sweep folder: every finished job whose objective's
    CI reaches the CI of the job with the highest objective (the data do not put it
    below the top), best first; None when no job measured an objective. A trial's
    settings are its values of the swept keys (`autojudge.sweeps.jobs.swept_params`), of the keys
    the sweeper's pick names and of `extra_keys` (swept on this command line).

    Returns:
        {"best": [{"job", "params", "value", "ci_low", "ci_high"}, ...], "confidence",
         "n_trials" (with a value), "n_without" (no value: over budget, unrated, ...),
         "optuna" (the sweeper's best_params, if it wrote optimization_results.yaml)}
    """
    from autojudge.results import read_leaderboard
    from autojudge.sweeps.jobs import is_pooled, is_run, swept_params

    sweep_dir = Path(sweep_dir)
    pick = _optuna_pick(sweep_dir)
    keys = list(dict.fromkeys([*extra_keys, *(pick or {})]))
    trials, without = [], 0
    for job in sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()):
        if not is_run(job) or is_pooled(job):
            continue
        record = read_leaderboard(job).run.objective
        if not record:
            continue
        if record.get("value") is None or not math.isfinite(record["value"]):
            without += 1
            continue
        trials.append({"job": job.name, "params": swept_params(job, keys),
                       "value": record["value"],
                       "ci_low": record.get("ci_low"), "ci_high": record.get("ci_high"),
                       "confidence": record.get("confidence"), "bounds": _bounds(record)})
    if not trials and not without:
        return None
    trials.sort(key=lambda t: -t["value"])
    floor = trials[0]["bounds"][0] if trials else math.inf
    best = [{k: v for k, v in t.items() if k not in ("bounds", "confidence")}
            for t in trials if t["bounds"][1] >= floor]
    return {"best": best, "confidence": trials[0]["confidence"] if trials else None,
            "n_trials": len(trials), "n_without": without, "optuna": pick}


def _optuna_pick(sweep_dir: Path) -> dict[str, Any] | None:
    path = sweep_dir / "optimization_results.yaml"
    if not path.is_file():
        return None
    import yaml

    try:
        return dict((yaml.safe_load(path.read_text(encoding="utf-8")) or {})
                    .get("best_params") or {}) or None
    except (OSError, ValueError, yaml.YAMLError, TypeError):
        return None


def best_settings_text(summary: Mapping[str, Any]) -> str:
    """What a sweep prints at its end, beside the sweeper's own single best pick."""
    def fmt(v: Any) -> str:
        return "open" if v is None else f"{v:.4g}"

    def params(p: Mapping[str, Any]) -> str:
        return " ".join(f"{k}={format_value(v)}" for k, v in p.items()) or "(no swept key)"

    best, pick = summary["best"], summary.get("optuna")
    if not best:
        return (f"best settings: none of the {summary['n_without']} trials measured an "
                "objective (see run.objective.reason in their leaderboard.json)")
    level = f"{summary['confidence']:.0%} " if summary.get("confidence") else ""
    lines = [f"best settings, CI-aware: {len(best)} of {summary['n_trials']} trials whose "
             f"{level}CI reaches the top one's (the data do not separate them)"
             + (f"; {summary['n_without']} trials measured no objective"
                if summary["n_without"] else "")]
    marked = False
    for t in best:
        chosen = pick is not None and all(t["params"].get(k) == v for k, v in pick.items())
        marked = marked or chosen
        lines.append(f"  {params(t['params'])}: objective {t['value']:.4g} "
                     f"[{fmt(t['ci_low'])}, {fmt(t['ci_high'])}] (job {t['job']})"
                     + ("  <- the sweeper's best_params" if chosen else ""))
    if marked and len(best) > 1:
        lines.append("  the sweeper's single pick is one of these; choose among them by "
                     "cost or latency, or judge more prompts to separate them")
    return "\n".join(lines)


def best_settings_callback() -> Any:
    """A Hydra callback (conf/config.yaml `hydra.callbacks`) that prints the CI-aware
    best settings when a multirun whose jobs measured an objective ends. It also notes,
    as the multirun starts, whether its sweep folder existed: a refused job removes the
    folder only if this multirun made it (autojudge.sweeps.jobs.refused_job)."""
    from hydra.experimental.callback import Callback

    class BestSettings(Callback):
        def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
            from autojudge.sweeps.jobs import remember_sweep_dir

            remember_sweep_dir(str(config.hydra.sweep.dir))  # before the sweeper makes it

        def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
            try:
                from autojudge.sweeps.jobs import argv_swept_keys

                summary = best_settings(str(config.hydra.sweep.dir), argv_swept_keys())
                if summary is not None:
                    print(best_settings_text(summary), flush=True)
            except Exception as exc:  # noqa: BLE001  the jobs' results are written
                logging.getLogger(__name__).warning(
                    "best settings not listed (%s: %s); pool the sweep with "
                    "python -m autojudge.compare", type(exc).__name__, exc)

    return BestSettings()
