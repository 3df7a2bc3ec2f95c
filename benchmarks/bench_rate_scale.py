"""Benchmark: how `rate` grows with the number of models on sparse battle logs (issue 21).

Builds seeded sparse logs (`sparse_log`: `per` battles per model between random pairs,
BT outcomes with 10% ties, 200 prompts, plus a few separated models that won or lost
every battle and an isolated pair) and times, per size, each step of
`autojudge.ratings.rate_encoded` (battle graph, point fit, bootstrap, intervals, pairwise
order) with the new code, and the whole rating with the pre-issue code read from git
(`rating_reference`) where it is asked for; then the growth (time ratio per size step,
and the exponent k of time ~ models^k between steps), whether old and new give the same
board, and the issue's targets (`TARGETS`: 1,000 models / 3,000 battles in 30 s, 5,000
models in 300 s, both at 1,000 rounds) for the sizes that have one.

The pairwise order of separated models still grows faster than models^2 (see
`autojudge.ratings.pairwise`; ~4 minutes at 1,006 models): above `--pairwise-up-to`
models (default 500) it is left out and the total says so (`+pairs?`), so that a
default run ends.

    python benchmarks/bench_rate_scale.py                          # 50, 500, 2000, 5000
    python benchmarks/bench_rate_scale.py --sizes 1000 5000        # the issue's targets
    python benchmarks/bench_rate_scale.py --sizes 50 500 --rounds 100 --old 50
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import expit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from autojudge.ratings.bradley_terry import Battles  # noqa: E402

# Issue 21: seconds allowed for `rate` (1,000 rounds) per number of generated models.
TARGETS = {1000: 30.0, 5000: 300.0}


def sparse_log(n_models: int, *, per: int = 3, n_separated: int = 4, n_prompts: int = 200,
               seed: int = 0) -> tuple[Battles, np.ndarray]:
    """(battles, prompt codes): `per` * n_models battles between random pairs of the first
    n_models models, then `n_separated` models with `per` battles each that won (even) or
    lost (odd) all of them, and one isolated pair (a second component)."""
    rng = np.random.default_rng(seed)
    n = n_models
    strength = rng.normal(0.0, 1.0, n)
    nb = per * n
    ia = rng.integers(0, n, nb)
    ib = (ia + rng.integers(1, n, nb)) % n
    tie = rng.random(nb) < 0.1
    score = np.where(tie, 0.5, (rng.random(nb) < expit(strength[ia] - strength[ib])) * 1.0)
    sep_a = np.repeat(np.arange(n, n + n_separated), per)
    sep_b = rng.integers(0, n, len(sep_a))
    sep_score = ((sep_a - n) % 2 == 0).astype(float)
    pair = n + n_separated
    ia = np.concatenate([ia, sep_a, [pair]])
    ib = np.concatenate([ib, sep_b, [pair + 1]])
    score = np.concatenate([score, sep_score, [1.0]])
    names = tuple(f"m{k:05d}" for k in range(pair + 2))
    return Battles(names, ia, ib, score), rng.integers(0, n_prompts, len(ia))


def timed_steps(battles: Battles, clusters: np.ndarray, rounds: int,
                pairwise: bool = True) -> dict[str, float]:
    """Seconds per step of `rate_encoded` (same calls, same order); NaN for the pairwise
    order when it is skipped."""
    from autojudge.ratings.bootstrap import bootstrap_strengths
    from autojudge.ratings.bradley_terry import aggregate_matchups, fit_strengths
    from autojudge.ratings.intervals import (centre_by_component, model_intervals,
                                             pairwise_above)
    from autojudge.ratings.structure import battle_graph

    out: dict[str, float] = {}
    t = time.perf_counter()
    matchups = aggregate_matchups(battles)
    mu = matchups[0]
    graph = battle_graph(battles, mu)
    out["graph"] = time.perf_counter() - t
    t = time.perf_counter()
    s = fit_strengths(mu.i, mu.j, mu.eff_i, mu.eff_j, battles.n_models)
    out["fit"] = time.perf_counter() - t
    centre = dict(graph=graph, to_elo=173.717792761, init_rating=1000.0, anchor=None)
    rating = centre_by_component(s, **centre)
    t = time.perf_counter()
    boot = centre_by_component(bootstrap_strengths(battles, clusters, rounds=rounds, seed=0,
                                                   start=s, matchups=matchups), **centre)
    out["bootstrap"] = time.perf_counter() - t
    t = time.perf_counter()
    low, high, _ = model_intervals(battles, clusters, graph, s, rating, boot,
                                   confidence=0.95, to_elo=173.717792761, anchor=None)
    out["intervals"] = time.perf_counter() - t
    t = time.perf_counter()
    if pairwise:
        pairwise_above(battles, clusters, graph, s, low, high, confidence=0.95)
    out["pairwise"] = time.perf_counter() - t if pairwise else float("nan")
    out["total"] = sum(v for v in out.values() if v == v)
    return out


def same_board(old: list[dict], new: list[dict], tol: float = 1e-4) -> int:
    """Number of board cells that differ (floats beyond `tol` relative)."""
    bad = 0
    for ro, rn in zip(old, new, strict=True):
        for key, x in ro.items():
            y = rn[key]
            if isinstance(x, float) and isinstance(y, float):
                bad += abs(x - y) > tol * max(1.0, abs(x))
            else:
                bad += x != y
    return bad


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[50, 500, 2000, 5000])
    p.add_argument("--rounds", type=int, default=1000)
    p.add_argument("--per", type=int, default=3, help="battles per model")
    p.add_argument("--old", type=int, nargs="*", default=[50],
                   help="sizes also rated by the pre-issue code (it is slow)")
    p.add_argument("--skip-pairwise", action="store_true",
                   help="leave out the pairwise order of separated models (the step that "
                        "grows fastest) to time the others")
    p.add_argument("--pairwise-up-to", type=int, default=500,
                   help="time the pairwise order only up to this many models (it grows "
                        "faster than models^2: minutes at 1,000)")
    args = p.parse_args()
    from autojudge.ratings.boards import RatingConfig, rate_encoded
    import rating_reference

    if args.old and not rating_reference.available():
        print(f"(no old column: git cannot show {rating_reference.REFERENCE_COMMIT})")
        args.old = []
    elif args.old:
        rating_reference.load()
        from rating_reference.boards import RatingConfig as OldConfig
        from rating_reference.boards import rate_encoded as old_rate_encoded

    print(f"{'models':>7} {'battles':>8} {'graph':>7} {'fit':>7} {'boot':>7} {'interv':>7} "
          f"{'pairs':>7} {'new s':>8} {'old s':>8} {'ratio':>6} {'k':>5} same  target")
    previous = None
    for n in args.sizes:
        battles, clusters = sparse_log(n, per=args.per)
        pairwise = not args.skip_pairwise and n <= args.pairwise_up_to
        steps = timed_steps(battles, clusters, args.rounds, pairwise)
        old_s, same = float("nan"), "-"
        if n in args.old:
            t = time.perf_counter()
            old = old_rate_encoded(battles, clusters, OldConfig(bootstrap_rounds=args.rounds))
            old_s = time.perf_counter() - t
            new = rate_encoded(battles, clusters, RatingConfig(bootstrap_rounds=args.rounds))
            same = "yes" if same_board(old, new) == 0 else f"NO ({same_board(old, new)})"
        # growth between sizes timed alike: with the pairwise order on both, else without
        ratio, power = "", ""
        if previous is not None:
            both = pairwise and previous[2]
            now = steps["total"] - (0.0 if both or not pairwise else steps["pairwise"])
            before = previous[1] - (0.0 if both or not previous[2] else previous[3])
            ratio = f"{now / before:6.1f}"
            power = f"{np.log(now / before) / np.log(n / previous[0]):5.2f}"
        previous = (n, steps["total"], pairwise, steps["pairwise"])
        total = f"{steps['total']:8.2f}" + ("" if pairwise else "+pairs?")
        print(f"{battles.n_models:>7} {len(battles.ia):>8} {steps['graph']:7.2f} "
              f"{steps['fit']:7.2f} {steps['bootstrap']:7.2f} {steps['intervals']:7.2f} "
              f"{steps['pairwise']:7.2f} {total} {old_s:8.2f} {ratio:>6} {power:>5} {same:4} "
              f"{_target(n, steps['total'], pairwise, args.rounds)}", flush=True)


def _target(n: int, seconds: float, pairwise: bool, rounds: int) -> str:
    """'met' / 'MISSED' against the issue's budget for this size, when it has one."""
    if n not in TARGETS:
        return ""
    verdict = "met" if seconds <= TARGETS[n] else "MISSED"
    caveats = ([] if pairwise else ["without the pairwise order"]) + \
        ([] if rounds == 1000 else [f"{rounds} rounds, not 1000"])
    return f"{verdict} (<= {TARGETS[n]:.0f} s" + "".join(f"; {c}" for c in caveats) + ")"


if __name__ == "__main__":
    main()
