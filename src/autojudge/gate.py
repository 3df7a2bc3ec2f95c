"""`python -m autojudge.gate RUN_DIR --baseline A --candidate B`: a release gate for CI.

    python -m autojudge.gate runs/2026-01-01_release --baseline sdxl-v1 --candidate sdxl-v2 \
        --judge ocr --judge vlm --tag text_rendering --confidence 0.95 --margin 10

Per judge (default: every judge in the run) and per gated tag (the whole suite always,
plus each `--tag`), it fits Bradley-Terry on the battles of the prompts both models
fought on and bootstraps `rating[candidate] - rating[baseline]` over prompts (see
`autojudge.ratings.compare` and docs/statistics.md). Each check is a pass, a regression
(the whole --confidence CI of the difference lies below -margin) or inconclusive (fewer than --min-prompts shared prompts, or the CI wider
than --max-ci-width). The gate fails when any check fails.

Exit codes: 0 pass (or inconclusive with --allow-inconclusive), 1 regression or
inconclusive, 2 bad usage or unreadable run (missing dir, no battles, unknown model,
judge or tag). It prints one line per check and one verdict line, and writes
RUN_DIR/gate.json (atomically) with the decision and every input.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from autojudge.errors import AutojudgeError

GATE_SCHEMA = 1
EXIT = {"pass": 0, "regression": 1, "inconclusive": 1}


@dataclass(frozen=True)
class GateSettings:
    """Everything a gate decision depends on (recorded in gate.json)."""

    baseline: str
    candidate: str
    judges: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    confidence: float = 0.95
    margin: float = 0.0
    bootstrap: int = 1000
    seed: int = 0
    min_prompts: int = 10
    max_ci_width: float = 150.0
    allow_inconclusive: bool = False
    prior: float | None = None

    def validate(self) -> None:
        checks = [
            (bool(self.baseline) and bool(self.candidate), "name both --baseline and --candidate"),
            (self.baseline != self.candidate, "baseline and candidate are the same model"),
            (0.0 < self.confidence < 1.0, f"--confidence must be between 0 and 1, got "
                                          f"{self.confidence}"),
            (math.isfinite(self.margin) and self.margin >= 0,
             f"--margin must be >= 0 Elo points, got {self.margin}"),
            (self.bootstrap >= 1, f"--bootstrap must be >= 1, got {self.bootstrap}"),
            (self.min_prompts >= 1, f"--min-prompts must be >= 1, got {self.min_prompts}"),
            (self.max_ci_width > 0, f"--max-ci-width must be > 0, got {self.max_ci_width}"),
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


def load_run_battles(run_dir: str | Path, with_tags: bool = True):
    """The run's battle log as a DataFrame; one clear error when it cannot be used.
    `with_tags=False` skips the tags column (faster on huge logs when no tag is gated)."""
    from autojudge.battle_log import read_battle_log

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise AutojudgeError(f"run dir {run_dir} not found; pass the folder of a finished "
                             "run (runs/<run>)")
    path = run_dir / "battles.jsonl"
    if not path.is_file() or path.stat().st_size == 0:
        raise AutojudgeError(f"run dir {run_dir} has no battles (battles.jsonl missing or "
                             "empty); run the experiment to completion first")
    columns = ("judge", "prompt_id", "seed") + (("tags",) if with_tags else ())
    return read_battle_log(path, columns=columns)


def evaluate(df: Any, settings: GateSettings) -> GateResult:
    """Gate decision for a battle-log DataFrame (pure apart from the fit)."""
    import numpy as np

    from autojudge.ratings import DEFAULT_PRIOR
    from autojudge.ratings.bootstrap import cluster_codes
    from autojudge.ratings.bradley_terry import encode_battles
    from autojudge.ratings.compare import rating_difference

    settings.validate()
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
    prompts = df["prompt_id"] if "prompt_id" in df.columns else None
    prior = DEFAULT_PRIOR if settings.prior is None else settings.prior
    checks = []
    for judge in judges:
        for tag in (None, *settings.tags):
            keep = judge_col == judge
            if tag is not None:
                keep &= np.array([tag in tags for tags in tag_lists], dtype=bool)
            idx = np.flatnonzero(keep)
            check: dict[str, Any] = {"judge": judge, "tag": tag}
            sub_a, sub_b = df["model_a"].to_numpy()[idx], df["model_b"].to_numpy()[idx]
            sub_names = set(sub_a) | set(sub_b)
            missing = [m for m in (settings.baseline, settings.candidate) if m not in sub_names]
            if missing:
                check.update(outcome="inconclusive", n_prompts=0, n_battles=0,
                             reason=f"no battles of {', '.join(missing)} judged by {judge}"
                                    + (f" on tag {tag}" if tag else ""))
                checks.append(check)
                continue
            battles = encode_battles(sub_a, sub_b, df["winner"].to_numpy()[idx])
            codes = cluster_codes(None if prompts is None else prompts.to_numpy()[idx], len(idx))
            base, cand = (battles.names.index(settings.baseline),
                          battles.names.index(settings.candidate))
            res = rating_difference(battles, codes, base, cand, rounds=settings.bootstrap,
                                    seed=settings.seed, confidence=settings.confidence,
                                    margin=settings.margin, prior=prior)
            outcome = res.decide(min_prompts=settings.min_prompts,
                                 max_ci_width=settings.max_ci_width)
            check.update(outcome=outcome, **res.as_dict())
            check["reason"] = _reason(outcome, res, settings)
            checks.append(check)
    return _verdict(checks, settings)


def _reason(outcome: str, res: Any, s: GateSettings) -> str:
    level = f"{s.confidence:.0%}"
    span = f"{res.diff:+.1f} Elo ({level} CI {res.ci_low:+.1f} .. {res.ci_high:+.1f})"
    if outcome == "regression":
        return (f"{s.candidate} is worse than {s.baseline} by {-res.diff:.1f} Elo: {span} "
                f"lies below -{s.margin:g}; P(worse) = {res.p_worse:.3f}")
    if outcome == "inconclusive":
        if res.n_prompts < s.min_prompts:
            return (f"too little data: {res.n_prompts} shared prompts, {s.min_prompts} "
                    f"needed; {span}")
        return (f"too little data: the {level} CI is {res.ci_high - res.ci_low:.0f} Elo "
                f"wide (max {s.max_ci_width:g}); {span}")
    return (f"not worse by more than {s.margin:g} Elo at {level}: {span}, "
            f"P(worse) = {res.p_worse:.3f}")


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
        msg = (f"INCONCLUSIVE: not enough data to decide on "
               f"{'; '.join(where(c) for c in bad)} ({bad[0]['reason']}); {tail}")
        return GateResult("inconclusive", code, msg, checks)
    msg = (f"PASS: {s.candidate} is not worse than {s.baseline} by more than {s.margin:g} "
           f"Elo at {s.confidence:.0%} confidence ({len(checks)} check"
           f"{'s' if len(checks) != 1 else ''})")
    return GateResult("pass", 0, msg, checks)


def run_gate(run_dir: str | Path, settings: GateSettings, *, write: bool = True,
             out: Any = None) -> GateResult:
    """Read the run, decide, print one line per check and the verdict, write gate.json."""
    from autojudge.store import atomic_write_text

    out = out or sys.stdout
    run_dir = Path(run_dir)
    df = load_run_battles(run_dir, with_tags=bool(settings.tags))
    result = evaluate(df, settings)
    for c in result.checks:
        where = f"{c['judge']}" + (f"/{c['tag']}" if c["tag"] else "")
        out.write(f"  {c['outcome']:<12} {where}: {c['reason']}\n")
    out.write(f"gate: {result.message}\n")
    if write:
        run_info = {}
        board = run_dir / "leaderboard.json"
        if board.is_file():
            try:
                run_info = json.loads(board.read_text()).get("run", {})
            except (OSError, ValueError):
                run_info = {}
        doc = {"schema": GATE_SCHEMA, "decision": result.decision,
               "exit_code": result.exit_code, "message": result.message,
               "inputs": {"run_dir": str(run_dir), **asdict(settings),
                          "estimator": "bt_difference_prompt_clustered_bootstrap",
                          "run": {k: run_info.get(k) for k in ("name", "suite", "models",
                                                               "judges", "n_battles")}},
               "checks": result.checks}
        atomic_write_text(run_dir / "gate.json", json.dumps(doc, indent=2, default=str) + "\n")
    return result


def settings_from_config(gate_cfg: Any, ratings_cfg: Any) -> GateSettings:
    """GateSettings from the run config's `gate` (and `ratings`) sections."""
    rounds = gate_cfg.get("bootstrap_rounds")
    return GateSettings(
        str(gate_cfg.get("baseline") or ""), str(gate_cfg.get("candidate") or ""),
        tuple(gate_cfg.get("judges") or ()), tuple(gate_cfg.get("tags") or ()),
        float(gate_cfg.get("confidence", 0.95)), float(gate_cfg.get("margin", 0.0)),
        int(rounds if rounds is not None else max(int(ratings_cfg.bootstrap_rounds), 1)),
        int(ratings_cfg.seed), int(gate_cfg.get("min_prompts", 10)),
        float(gate_cfg.get("max_ci_width", 150.0)),
        bool(gate_cfg.get("allow_inconclusive", False)),
        None if ratings_cfg.get("prior") is None else float(ratings_cfg.prior))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"error: {message}; see --help\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m autojudge.gate",
                description="Fail (exit 1) when the candidate is significantly worse than "
                            "the baseline in a finished run.")
    p.add_argument("run_dir", help="folder of a finished run (with battles.jsonl)")
    p.add_argument("--baseline", required=True, metavar="A")
    p.add_argument("--candidate", required=True, metavar="B")
    p.add_argument("--judge", action="append", default=[], metavar="J",
                   help="gate on judge J (repeatable); default every judge in the run")
    p.add_argument("--tag", action="append", default=[], metavar="T",
                   help="also gate on the battles of prompts tagged T (repeatable)")
    p.add_argument("--confidence", type=float, default=0.95)
    p.add_argument("--margin", type=float, default=0.0, metavar="ELO",
                   help="tolerated regression in Elo points; default 0")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-prompts", type=int, default=10, metavar="N",
                   help="fewer shared prompts than this is inconclusive; default 10")
    p.add_argument("--max-ci-width", type=float, default=150.0, metavar="ELO",
                   help="a wider CI (and no regression) is inconclusive; default 150")
    p.add_argument("--allow-inconclusive", action="store_true",
                   help="exit 0 when the data cannot decide")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = GateSettings(args.baseline, args.candidate, tuple(args.judge), tuple(args.tag),
                            args.confidence, args.margin, args.bootstrap, args.seed,
                            args.min_prompts, args.max_ci_width, args.allow_inconclusive)
    try:
        return run_gate(args.run_dir, settings).exit_code
    except AutojudgeError as exc:
        sys.stderr.write(f"error: {' '.join(str(exc).split())}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
