"""`python -m autojudge.gate RUN_DIR --baseline A --candidate B`: a release gate for CI.

    python -m autojudge.gate runs/2026-01-01_release --baseline sdxl-v1 --candidate sdxl-v2 \
        --judge ocr --judge vlm --tag text_rendering --confidence 0.95 --margin 25

A non-inferiority test per check (each judge, default every judge in the run; the whole
suite and each `--tag`), with margin m = the regression a release may tolerate (Elo):

  PASS          the candidate-minus-baseline CI's lower bound is above -m: shown not
                worse by more than m (exit 0 when every check passes);
  REGRESSION    its upper bound is below -m: shown worse by more than m (exit 1);
  INCONCLUSIVE  anything else, including models never linked by battles (exit 1, or 0
                with --allow-inconclusive); the line says about how many prompts would
                likely decide it.

The estimate and its CI are described in `autojudge.ratings.gate_stats`. The family-wise
error of REGRESSION claims over all checks of one call is controlled by Holm's method
(`--correction none` turns it off); PASS needs every check to pass, which needs no
correction. Fewer than 200 bootstrap rounds are refused: the tails that decide are then
too coarse.

Exit codes: 0 pass (or inconclusive with --allow-inconclusive), 1 regression or
inconclusive, 2 bad usage or unreadable run (missing dir, no battles, unknown model,
judge or tag). It prints one line per check and one verdict line, and writes
RUN_DIR/gate.json (atomically) with the decision and every input.
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from autojudge.experiment.schema import Correction, GateConfig, RatingsConfig, enum_value, rule_of
from autojudge.errors import AutojudgeError

GATE_SCHEMA = 1
EXIT = {"pass": 0, "regression": 1, "inconclusive": 1}
# the `gate` settings' defaults and rules (config.GateConfig) serve the command line too
MIN_ROUNDS = int(rule_of(GateConfig, "bootstrap_rounds").low)
DEFAULT_MARGIN = GateConfig.margin
CORRECTIONS = tuple(c.value for c in Correction)


@dataclass(frozen=True)
class GateSettings:
    """Everything a gate decision depends on (recorded in gate.json)."""

    baseline: str
    candidate: str
    judges: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    confidence: float = GateConfig.confidence
    margin: float = DEFAULT_MARGIN
    bootstrap: int = RatingsConfig.bootstrap_rounds
    seed: int = RatingsConfig.seed
    min_prompts: int = GateConfig.min_prompts
    allow_inconclusive: bool = GateConfig.allow_inconclusive
    prior: float | None = None
    correction: str = GateConfig.correction.value
    #: style features held fixed (`--control`): the gate then compares controlled ratings
    control: tuple[str, ...] = ()

    def validate(self) -> None:
        checks = [
            (bool(self.baseline) and bool(self.candidate), "name both --baseline and --candidate"),
            (self.baseline != self.candidate, "baseline and candidate are the same model"),
            (rule_of(GateConfig, "confidence").allows(self.confidence),
             f"--confidence must be {rule_of(GateConfig, 'confidence').bounds()}, got "
             f"{self.confidence}"),
            (rule_of(GateConfig, "margin").allows(self.margin),
             f"--margin must be {rule_of(GateConfig, 'margin').bounds()} Elo points, got "
             f"{self.margin}"),
            (self.bootstrap >= MIN_ROUNDS,
             f"--bootstrap must be >= {MIN_ROUNDS} rounds (the tails that decide need "
             f"them), got {self.bootstrap}"),
            (rule_of(GateConfig, "min_prompts").allows(self.min_prompts, integer=True),
             f"--min-prompts must be {rule_of(GateConfig, 'min_prompts').bounds()}, got "
             f"{self.min_prompts}"),
            (self.correction in CORRECTIONS,
             f"--correction must be one of {', '.join(CORRECTIONS)}, got {self.correction!r}"),
        ]
        for ok, why in checks:
            if not ok:
                raise AutojudgeError(f"gate: {why}")


@dataclass
class GateResult:
    decision: str
    exit_code: int
    message: str
    checks: list[dict[str, Any]] = field(default_factory=list)


def load_run_battles(run_dir: str | Path, with_tags: bool = True,
                     with_features: bool = False):
    """The run's battle log as a DataFrame; one clear error when it cannot be used.
    `with_tags=False` skips the tags column (faster on huge logs when no tag is gated);
    `with_features` keeps every column (the per-image feature columns have open names)."""
    from autojudge.battles.log import read_battle_log

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise AutojudgeError(f"run dir {run_dir} not found; pass the folder of a finished "
                             "run (runs/<run>)")
    path = run_dir / "battles.jsonl"
    if not path.is_file() or path.stat().st_size == 0:
        raise AutojudgeError(f"run dir {run_dir} has no battles (battles.jsonl missing or "
                             "empty); run the experiment to completion first")
    columns = ("judge", "prompt_id", "prompt", "seed", "score_a", "score_b") + \
        (("tags",) if with_tags else ())
    return read_battle_log(path, columns=None if with_features else columns)


def evaluate(df: Any, settings: GateSettings, source: str = "the battle log") -> GateResult:
    """Gate decision for a battle-log DataFrame (pure apart from the fits). `source`
    names the log in error lines."""
    import numpy as np

    from autojudge.battles.features import feature_columns

    settings.validate()
    judge_col, judges, tag_lists = _check_inputs(df, settings)
    clusters = _cluster_column(df)
    features = feature_columns(df, settings.control, source) if settings.control else None
    checks, results = [], []
    for judge in judges:
        for tag in (None, *settings.tags):
            keep = judge_col == judge
            if tag is not None:
                keep &= np.array([tag in tags for tags in tag_lists], dtype=bool)
            if features is None:
                check, res = _check(df, np.flatnonzero(keep), clusters, settings)
            else:
                check, res = _controlled_check(df, np.flatnonzero(keep & features.complete),
                                               clusters, features, settings)
            checks.append({"judge": judge, "tag": tag, **check})
            results.append(res)
    _decide_all(checks, results, settings)
    return _verdict(checks, settings)


def _check_inputs(df: Any, settings: GateSettings) -> tuple[Any, list[str], list]:
    """Validate names against the log; the judge column, the judges to gate, tag lists."""
    import numpy as np

    names = set(df["model_a"]) | set(df["model_b"])
    for role, model in (("baseline", settings.baseline), ("candidate", settings.candidate)):
        if model not in names:
            shown = ", ".join(sorted(names)[:12])
            raise AutojudgeError(f"unknown {role} model {model!r}: the run has no battles of "
                                 f"it; models in the run: {shown}")
    if "judge" in df.columns:
        judge_col = df["judge"].astype(object).where(df["judge"].notna(), "unknown")
    else:
        judge_col = np.full(len(df), "unknown", dtype=object)
    judge_col = np.asarray(judge_col, dtype=object)
    present = sorted(set(judge_col.tolist()))
    judges = list(settings.judges) or present
    for judge in judges:
        if judge not in present:
            raise AutojudgeError(f"unknown judge {judge!r}: the run's judges are "
                                 f"{', '.join(present)}")
    tag_lists = df["tags"].tolist() if "tags" in df.columns else [[] for _ in range(len(df))]
    known_tags = {t for tags in tag_lists for t in tags}
    for tag in settings.tags:
        if tag not in known_tags:
            raise AutojudgeError(f"unknown tag {tag!r}: no battle carries it; tags in the run: "
                                 f"{', '.join(sorted(known_tags)[:20]) or 'none'}")
    return judge_col, judges, tag_lists


def _cluster_column(df: Any) -> Any:
    """prompt_id, else the prompt text, else None (each battle its own cluster)."""
    for col in ("prompt_id", "prompt"):
        if col in df.columns and df[col].notna().any():
            return df[col].to_numpy()
    return None


def _check(df: Any, idx: Any, clusters: Any, s: GateSettings) -> tuple[dict, Any]:
    """One check's numbers (no decision yet: Holm needs every check's p-value)."""
    from autojudge.ratings import DEFAULT_PRIOR
    from autojudge.ratings.bootstrap import cluster_codes
    from autojudge.ratings.bradley_terry import encode_battles
    from autojudge.ratings.gate_stats import rating_difference

    sub_a, sub_b = df["model_a"].to_numpy()[idx], df["model_b"].to_numpy()[idx]
    missing = [m for m in (s.baseline, s.candidate) if m not in set(sub_a) | set(sub_b)]
    if missing:
        return {"n_prompts": 0, "n_battles": 0, "linked": False,
                "missing": missing}, None
    battles = encode_battles(sub_a, sub_b, df["winner"].to_numpy()[idx])
    codes = cluster_codes(None if clusters is None else clusters[idx], len(idx))
    scores = {c: df[c].to_numpy(dtype=float)[idx] for c in ("score_a", "score_b", "seed")
              if c in df.columns}
    res = rating_difference(battles, codes, battles.names.index(s.baseline),
                            battles.names.index(s.candidate), rounds=s.bootstrap,
                            seed=s.seed, confidence=s.confidence, margin=s.margin,
                            prior=DEFAULT_PRIOR if s.prior is None else s.prior,
                            scores=scores)
    return res.as_dict(), res


def _controlled_check(df: Any, idx: Any, clusters: Any, features: Any,
                      s: GateSettings) -> tuple[dict, Any]:
    """One check on style-controlled ratings (`--control`): the battles whose images
    carry every feature, the controlled fit's bootstrap (ratings.style_control)."""
    from autojudge.ratings import DEFAULT_PRIOR
    from autojudge.ratings.bootstrap import cluster_codes
    from autojudge.ratings.bradley_terry import encode_battles
    from autojudge.ratings.style_control import controlled_difference

    sub_a, sub_b = df["model_a"].to_numpy()[idx], df["model_b"].to_numpy()[idx]
    missing = [m for m in (s.baseline, s.candidate) if m not in set(sub_a) | set(sub_b)]
    if missing:
        return {"n_prompts": 0, "n_battles": 0, "linked": False, "missing": missing}, None
    battles = encode_battles(sub_a, sub_b, df["winner"].to_numpy()[idx])
    codes = cluster_codes(None if clusters is None else clusters[idx], len(idx))
    res = controlled_difference(
        battles.ia, battles.ib, battles.score, features.xa[idx], features.xb[idx],
        list(s.control), battles.n_models, codes if codes is not None else range(len(idx)),
        battles.names.index(s.baseline), battles.names.index(s.candidate),
        rounds=s.bootstrap, seed=s.seed, confidence=s.confidence, margin=s.margin,
        prior=DEFAULT_PRIOR if s.prior is None else s.prior)
    return res.as_dict(), res


def ratings_used(control: Sequence[str]) -> str:
    """Which ratings the gate compares, said in its output."""
    if not control:
        return "on plain ratings (no style feature held fixed)"
    return (f"on style-controlled ratings: {', '.join(control)} held fixed (Bradley-Terry "
            "with feature covariates, percentile interval from the prompt-clustered "
            "bootstrap; docs/statistics.md)")


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given).

    Example:
        >>> holm([0.01, 0.04, 0.03])
        [0.03, 0.06, 0.06]
    """
    order = sorted(range(len(p_values)), key=lambda k: p_values[k])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, k in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[k]))
        adjusted[k] = round(running, 12)
    return adjusted


def _decide_all(checks: list[dict], results: list[Any], s: GateSettings) -> None:
    """Outcome and reason of every check, with REGRESSION claims Holm-adjusted."""
    alpha = (1.0 - s.confidence) / 2.0
    tested = [k for k, r in enumerate(results) if r is not None and r.p_regression is not None]
    raw = [results[k].p_regression for k in tested]
    adjusted = holm(raw) if s.correction == "holm" else list(raw)
    p_adj = dict(zip(tested, adjusted))
    for k, (check, res) in enumerate(zip(checks, results)):
        check["alpha"] = alpha
        check["p_regression_adjusted"] = p_adj.get(k)
        if res is None:
            check["outcome"] = "inconclusive"
            check["reason"] = (f"no battles of {', '.join(check['missing'])} judged by "
                               f"{check['judge']}" + (f" on tag {check['tag']}"
                                                      if check["tag"] else ""))
            continue
        check["outcome"] = res.decide(alpha=alpha, min_prompts=s.min_prompts,
                                      regression_p=p_adj.get(k))
        check["reason"] = _reason(check["outcome"], res, s, p_adj.get(k), len(tested))
        check["prompts_to_decide"] = prompts_to_decide(res)


def prompts_to_decide(res: Any) -> int | None:
    """About how many shared prompts would likely make an inconclusive check decide,
    scaling the observed CI half-width by 1/sqrt(prompts) around the estimate (None
    when the estimate sits on the margin or a side is open)."""
    if res.diff is None or res.ci_low is None or res.ci_high is None or not res.n_prompts:
        return None
    half = (res.ci_high - res.ci_low) / 2.0
    gap = abs(res.diff + res.margin)
    if gap < 1e-9 or half <= 0:
        return None
    return int(math.ceil(res.n_prompts * (half / gap) ** 2))


def _span(res: Any, s: GateSettings) -> str:
    """E.g. '-39.7 Elo (95% CI -64.5 .. -16.9; 400 shared prompts)', or with an open
    side '(95% CI <= -471.9; ...)'."""
    low, high = res.ci_low, res.ci_high
    if low is not None and high is not None:
        ci = f"{low:+.1f} .. {high:+.1f}"
    elif low is not None or high is not None:
        ci = f">= {low:+.1f}" if low is not None else f"<= {high:+.1f}"
    else:
        ci = "unbounded"
    point = "no point estimate" if res.diff is None else f"{res.diff:+.1f} Elo"
    return f"{point} ({s.confidence:.0%} CI {ci}; {res.n_prompts} shared prompts)"


def _reason(outcome: str, res: Any, s: GateSettings, p_adj: float | None,
            n_tests: int) -> str:
    span = _span(res, s)
    if not res.linked:
        return _unlinked_reason(res, s)
    if res.method == "separated":
        return ("no controlled interval: some model never lost (or never won) against part "
                "of its group, so the battles bound neither its strength nor the features' "
                f"effects; {span}")
    note = f"; paths disagree on the size: {_paths_text(res)}" if res.disagreement else ""
    if outcome == "regression":
        return (f"{s.candidate} is worse than {s.baseline} by more than {s.margin:g} Elo: "
                f"the CI's upper bound lies below -{s.margin:g}; {span}"
                + _holm_note(p_adj, n_tests, s) + note)
    if outcome == "pass":
        return (f"{s.candidate} is not worse than {s.baseline} by more than {s.margin:g} "
                f"Elo: the CI's lower bound lies above -{s.margin:g}; {span}{note}")
    if res.n_prompts < s.min_prompts:
        return f"too little data: {res.n_prompts} shared prompts, {s.min_prompts} needed; {span}"
    if res.method == "none":
        return f"no interval computed (0 bootstrap rounds); {span}"
    if res.disagreement:
        return (f"{res.disagreement}, so no single estimate is supported and the CI shown "
                f"is the hull of the paths' intervals; {_paths_text(res)}; {span}")
    if res.ci_high is not None and res.ci_high < -s.margin:
        return (f"the CI lies below -{s.margin:g} but the regression is not significant "
                f"after Holm's correction over {n_tests} checks (adjusted p = "
                f"{p_adj:.3g} >= {(1 - s.confidence) / 2:g}); {span}")
    need = prompts_to_decide(res)
    hint = (f"; about {need} shared prompts would likely decide it" if need else
            "; more prompts are needed (a side of the CI is open or the estimate sits on "
            "the margin)")
    return f"the CI contains -{s.margin:g}: neither shown worse nor shown not worse; {span}{hint}"


def _unlinked_reason(res: Any, s: GateSettings) -> str:
    """Why the data cannot compare the two models, in the words that are true."""
    pair = f"{s.candidate} and {s.baseline}"
    if res.unlinked == "no_shared_prompts":
        return (f"{pair} share no prompt: battles link them only through other models on "
                "different prompts, and the gate compares models on the prompts both were "
                "judged on; judge both on the same prompts")
    if res.unlinked == "no_chain_on_shared_prompts":
        return (f"on the {res.n_prompts} prompts both were judged on, no chain of opponents "
                f"connects {pair}, so the data cannot compare them; battle them (or a "
                "common opponent) on the same prompts")
    return (f"{pair} were never linked by battles (no chain of opponents connects them), "
            "so the data cannot compare them; battle them on the same prompts")


def _paths_text(res: Any) -> str:
    """Each path's interval, e.g. 'bt -87.9 (CI -104.9 .. -70.9), direct >= +755.9'."""
    parts = []
    for name, p in res.paths.items():
        low, high = p.get("ci_low"), p.get("ci_high")
        if low is None and high is None and not p.get("separated"):
            continue
        if p.get("separated"):
            parts.append(f"{name} (separated) " + (f">= {low:+.1f}" if low is not None
                                                   else f"<= {high:+.1f}"))
        else:
            parts.append(f"{name} {p['diff']:+.1f} (CI {low:+.1f} .. {high:+.1f})")
    return ", ".join(parts)


def margin_meaning(margin: float) -> str:
    """The margin as a head-to-head win rate, e.g. 'margin 25 Elo: the candidate may win
    as little as 46.4% of its battles against the baseline (ties count half)'.

    Example:
        >>> margin_meaning(25.0)[:60]
        'margin 25 Elo: the candidate may win as little as 46.4% of i'
    """
    rate = 1.0 / (1.0 + 10.0 ** (margin / 400.0))
    return (f"margin {margin:g} Elo: the candidate may win as little as {rate:.1%} of its "
            "battles against the baseline (ties count half) on this judge's Elo scale, "
            "which prompt effects and ties compress (docs/statistics.md)")


def _holm_note(p_adj: float | None, n_tests: int, s: GateSettings) -> str:
    if s.correction == "holm" and n_tests > 1 and p_adj is not None:
        return f"; Holm-adjusted p = {p_adj:.3g} over {n_tests} checks"
    return ""


def _verdict(checks: list[dict[str, Any]], s: GateSettings) -> GateResult:
    outcomes = [c["outcome"] for c in checks]
    where = lambda c: f"judge {c['judge']}" + (f", tag {c['tag']}" if c["tag"] else "")  # noqa: E731
    if "regression" in outcomes:
        bad = [c for c in checks if c["outcome"] == "regression"]
        msg = (f"REGRESSION on {'; '.join(where(c) for c in bad)}: {bad[0]['reason']}")
        return GateResult("regression", 1, msg, checks)
    if "inconclusive" in outcomes:
        bad = [c for c in checks if c["outcome"] == "inconclusive"]
        code = 0 if s.allow_inconclusive else 1
        tail = ("accepted (--allow-inconclusive)" if code == 0 else
                "exit 1; judge more prompts or pass --allow-inconclusive")
        msg = (f"INCONCLUSIVE: the data do not decide on "
               f"{'; '.join(where(c) for c in bad)} ({bad[0]['reason']}); {tail}")
        return GateResult("inconclusive", code, msg, checks)
    msg = (f"PASS: {s.candidate} is not worse than {s.baseline} by more than {s.margin:g} "
           f"Elo on every check ({len(checks)} check{'s' if len(checks) != 1 else ''}; "
           f"each CI's lower bound at {s.confidence:.0%} lies above -{s.margin:g})")
    return GateResult("pass", 0, msg, checks)


def _run_summary(run_dir: Path) -> dict[str, Any]:
    """What gate.json says of the run: from its leaderboard, or nulls for a folder that
    holds only a battle log (or a damaged leaderboard: the gate needs only the battles)."""
    from autojudge.results import read_leaderboard

    try:
        run = read_leaderboard(run_dir).run
    except AutojudgeError:
        return dict.fromkeys(("name", "suite", "models", "judges", "n_battles"))
    return {"name": run.name, "suite": run.suite, "models": run.models,
            "judges": run.judges, "n_battles": run.n_battles}


def run_gate(run_dir: str | Path, settings: GateSettings, *, write: bool = True,
             out: Any = None) -> GateResult:
    """Read the run, decide, print one line per check and the verdict, write gate.json."""
    from autojudge.runtime.atomic_files import atomic_write_text

    out = out or sys.stdout
    run_dir = Path(run_dir)
    df = load_run_battles(run_dir, with_tags=bool(settings.tags),
                          with_features=bool(settings.control))
    result = evaluate(df, settings, source=str(run_dir / "battles.jsonl"))
    out.write(f"gate: {margin_meaning(settings.margin)}\n")
    out.write(f"gate: {ratings_used(settings.control)}\n")
    for c in result.checks:
        where = f"{c['judge']}" + (f"/{c['tag']}" if c["tag"] else "")
        out.write(f"  {c['outcome']:<12} {where}: {c['reason']}\n")
    out.write(f"gate: {result.message}\n")
    if write:
        doc = {"schema": GATE_SCHEMA, "decision": result.decision,
               "exit_code": result.exit_code, "message": result.message,
               "inputs": {"run_dir": str(run_dir), **asdict(settings),
                          "margin_win_rate": round(1.0 / (1.0 + 10.0 ** (
                              settings.margin / 400.0)), 4),
                          "estimator": "non-inferiority " + ratings_used(settings.control)
                                       + ("" if settings.control else
                                          "; combined bt/direct/score paths when they "
                                          "agree (hull of their intervals when not), "
                                          "prompt-clustered bootstrap standard error on "
                                          "Student's t; profile likelihood for one-sided "
                                          "data"),
                          "run": _run_summary(run_dir)},
               "checks": result.checks}
        atomic_write_text(run_dir / "gate.json", json.dumps(doc, indent=2, default=str) + "\n")
    return result


def settings_from_config(gate_cfg: GateConfig, ratings_cfg: RatingsConfig) -> GateSettings:
    """GateSettings from the run's typed `gate` and `ratings` sections (config.GateConfig,
    config.RatingsConfig; a composed OmegaConf node reads the same)."""
    rounds = gate_cfg.bootstrap_rounds
    return GateSettings(
        str(gate_cfg.baseline or ""), str(gate_cfg.candidate or ""),
        tuple(gate_cfg.judges), tuple(gate_cfg.tags), float(gate_cfg.confidence),
        float(gate_cfg.margin),
        int(rounds if rounds is not None else max(int(ratings_cfg.bootstrap_rounds),
                                                  MIN_ROUNDS)),
        int(ratings_cfg.seed), int(gate_cfg.min_prompts), bool(gate_cfg.allow_inconclusive),
        None if ratings_cfg.prior is None else float(ratings_cfg.prior),
        str(enum_value(gate_cfg.correction)), tuple(gate_cfg.control))
