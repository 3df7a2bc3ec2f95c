"""K-wise battles (autojudge.ratings.rankings): the judge calls they save, and their CIs.

    python benchmarks/kwise_study.py            # default size (a few minutes on 2 cores)
    python benchmarks/kwise_study.py --reps 20 --coverage-runs 1000   # longer

Noise model (printed with the numbers): every image of prompt p by model m has quality
r_m + u[p, m] (Elo; u ~ N(0, prompt_sd^2), shared by every call on that prompt); one
judge call over K images draws utilities quality / (400 / ln 10) + beta_K * Gumbel and
orders them (Plackett-Luce). With beta_K = 1 every implied pair is the pairwise BT judge's
pair (the difference of two Gumbels is logistic): the same noise per implied pair. A
swap-debiased judge makes two calls per battle (pairwise: A/B then B/A; K-wise: two
orders); a pair whose verdict differs between the two calls is a tie. An arena vote is
one call. "Attention dilution" is beta_K = 1 + dilution * (K - 2): a judge that orders K
images worse than it compares two.

Pure numpy, seeded; the parts are functions that bench_statistics.py calls (`kwise`).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from autojudge.ratings.boards import RatingConfig, rate_battles  # noqa: E402
from autojudge.ratings.bradley_terry import (ELO_PER_NAT, aggregate_matchups,  # noqa: E402
                                             Battles, fit_strengths, winner_to_score)
from autojudge.ratings.rankings import (break_rankings, consensus_pairs,  # noqa: E402
                                        fit_plackett_luce, simulate_rankings)
from autojudge.ratings.scheduling import AdaptiveScheduler, ScheduleConfig  # noqa: E402
from autojudge.ratings.simulate import all_pairs  # noqa: E402


@dataclass(frozen=True)
class Judge:
    """A simulated judge: `calls` per battle (2 swap-debiased, 1 an arena vote), `top`
    ranked entries (None: a full order; 1: best of K), noise scale 1 + dilution (K - 2)."""

    calls: int = 2
    top: int | None = None
    dilution: float = 0.0

    def scale(self, k: int) -> float:
        return 1.0 + self.dilution * (k - 2)


@dataclass(frozen=True)
class Pool:
    """True ratings and per-prompt image effects of one simulated pool."""

    ratings: np.ndarray
    offsets: np.ndarray  # (n_prompts, models), Elo


def make_pool(rng: np.random.Generator, n_models: int, spread: float, n_prompts: int,
              prompt_sd: float) -> Pool:
    ratings = np.linspace(1000.0 - spread / 2, 1000.0 + spread / 2, n_models)
    return Pool(ratings, rng.normal(0.0, prompt_sd, (n_prompts, n_models)))


def judge_battles(rng: np.random.Generator, pool: Pool, groups: np.ndarray,
                  prompts: np.ndarray, judge: Judge) -> tuple[np.ndarray, ...]:
    """Judge each group of images (K = groups.shape[1]) on its prompt: broken pairs as
    (model_a codes, model_b codes, score of a, prompt)."""
    groups = np.asarray(groups, dtype=np.int64)
    off = pool.offsets[prompts[:, None], groups]
    kw = dict(offsets=off, top=judge.top, noise_scale=judge.scale(groups.shape[1]))
    names = [[str(c) for c in g] for g in groups]
    first = simulate_rankings(rng, pool.ratings, groups, **kw)
    if judge.calls == 2:
        second = simulate_rankings(rng, pool.ratings, groups, **kw)
        b = consensus_pairs(names, first, second, clusters=prompts.tolist())
    else:
        b = break_rankings(names, first, clusters=prompts.tolist())
    return (b.model_a.astype(np.int64), b.model_b.astype(np.int64),
            winner_to_score(b.winner), b.clusters.astype(np.int64))


def _curve(pool: Pool, k: int, judge: Judge, *, batch: int, max_calls: int, rounds: int,
           seed: int) -> list[tuple[int, float, float, float]]:
    """(calls, mean CI width, Spearman with the truth, slope of the fitted ratings on the
    true ones) after each batch until `max_calls` are spent. K = 2 is the adaptive
    scheduler's pairs, K > 2 its groups (`next_groups`). Widths are the scheduler's in-loop bootstrap
    (prompt-clustered, `rounds` rounds) for every K."""
    m, n_prompts = len(pool.ratings), len(pool.offsets)
    rng = np.random.default_rng(seed)
    cfg = ScheduleConfig(target_ci_width=1e-3, batch=batch, bootstrap_rounds=rounds,
                         seed=seed)
    sched = AdaptiveScheduler(m, n_prompts, 1, cfg)
    pairs = all_pairs(m)
    data = [np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)]
    out, calls = [], 0
    while True:
        status = sched.assess(*data)
        if calls:
            slope = np.polyfit(pool.ratings, status.ratings, 1)[0]
            out.append((calls, float(np.mean(status.ci_width)),
                        float(spearmanr(status.ratings, pool.ratings)[0]), float(slope)))
            if calls >= max_calls:
                return out
        if k == 2:
            picks = sched.next_batch(status)
            groups = pairs[[p for _, p in picks]]
        else:  # the production rule for groups (AdaptiveScheduler.next_groups)
            picks = sched.next_groups(status, k)
            groups = np.array([g for _, g in picks], dtype=np.int64)
        prompts = np.array([r for r, _ in picks], dtype=np.int64)
        new = judge_battles(rng, pool, groups, prompts, judge)
        data = [np.concatenate([d, x]) for d, x in zip(data, new)]
        calls += judge.calls * len(groups)


def _crossing(curve: list[tuple], col: int, target: float, below: bool) -> float | None:
    """Calls at which column `col` first reaches `target` (linear interpolation)."""
    prev = (0, np.inf, -np.inf)
    for row in curve:
        hit = row[col] <= target if below else row[col] >= target
        if hit:
            x0, y0 = prev[0], prev[col]
            if not np.isfinite(y0):
                return float(row[0])
            return float(x0 + (row[0] - x0) * (y0 - target) / (y0 - row[col]))
        prev = row
    return None


def calls_study(ks: tuple[int, ...], judge: Judge, *, reps: int, n_models: int = 10,
                spread: float = 450.0, n_prompts: int = 2000, prompt_sd: float = 100.0,
                target_width: float = 100.0, target_rho: float = 0.95, batch: int = 16,
                rounds: int = 100, max_calls: int | None = None,
                seed: int = 0) -> dict[str, Any]:
    """Judge calls to reach a mean CI width and an expected Spearman correlation with the
    truth (the mean over reps), per K, over `reps` pools (the same pools for every K),
    each run to `max_calls` (default 1280 for pairs, 640 for K > 2; a target not met by
    then is reported as not reached); `slope` is the mean fitted-on-true slope at the end (below
    1: a compressed scale, on which a CI width is not comparable)."""
    res: dict[str, Any] = {"judge": judge.__dict__, "n_models": n_models, "reps": reps,
                           "target_width": target_width, "target_rho": target_rho,
                           "per_k": {}}
    for k in ks:
        widths, curves = [], []
        for rep in range(reps):
            pool = make_pool(np.random.default_rng(seed + rep), n_models, spread, n_prompts,
                             prompt_sd)
            budget = max_calls or (1280 if k == 2 else 640)
            curve = _curve(pool, k, judge, batch=batch, max_calls=budget, rounds=rounds,
                           seed=seed + 1000 * k + rep)
            widths.append(_crossing(curve, 1, target_width, below=True))
            curves.append(curve)
        res["per_k"][k] = {"calls_to_width": widths,
                           "calls_to_rho": _rho_crossing(curves, target_rho),
                           "slope": float(np.mean([c[-1][3] for c in curves]))}
    return res


def _rho_crossing(curves: list[list[tuple]], target: float) -> float | None:
    """Calls at which the mean Spearman over reps (same checkpoints) reaches `target`."""
    mean = np.mean([[row[2] for row in c] for c in curves], axis=0)
    return _crossing([(row[0], 0.0, float(v)) for row, v in zip(curves[0], mean)], 2,
                     target, below=False)


def ratio_interval(num: list[float], den: list[float], seed: int = 0,
                   n: int = 2000) -> tuple[float, float, float]:
    """mean(num) / mean(den) with a 95% bootstrap interval over the reps."""
    a, b = np.array(num, float), np.array(den, float)
    rng = np.random.default_rng(seed)
    r = [a[rng.integers(0, len(a), len(a))].mean() / b[rng.integers(0, len(b), len(b))].mean()
         for _ in range(n)]
    low, high = np.percentile(r, [2.5, 97.5])
    return float(a.mean() / b.mean()), float(low), float(high)


def _design(k: int, m: int, n_prompts: int) -> tuple[np.ndarray, np.ndarray]:
    """Every prompt's images judged once: one ranking of all m (K = m) or all pairs."""
    if k == m:
        return np.tile(np.arange(m), (n_prompts, 1)), np.arange(n_prompts)
    pairs = all_pairs(m)
    return np.tile(pairs, (n_prompts, 1)), np.repeat(np.arange(n_prompts), len(pairs))


def _target(truth: np.ndarray, judge: Judge, k: int, prompt_sd: float, seed: int
            ) -> np.ndarray:
    """The estimator's value on 200,000 prompts of the design (its population rating)."""
    n = 200_000
    rng = np.random.default_rng(seed)
    pool = Pool(truth, rng.normal(0.0, prompt_sd, (n, len(truth))))
    groups, prompts = _design(k, len(truth), n)
    ia, ib, sc, _ = judge_battles(rng, pool, groups, prompts, judge)
    mu = aggregate_matchups(Battles(tuple(range(len(truth))), ia, ib, sc))[0]
    s = fit_strengths(mu.i, mu.j, mu.eff_i, mu.eff_j, len(truth), 1e-6)
    return (s - s.mean()) * ELO_PER_NAT + 1000.0


def coverage_study(runs: int, judge: Judge, *, k: int = 4,
                   truth=(1000.0, 1040.0, 1100.0, 1180.0), n_prompts: int = 100,
                   prompt_sd: float = 100.0, rounds: int = 1000,
                   seed: int = 0) -> dict[str, Any]:
    """Per-model coverage of the board's 95% CIs (rate_battles on the broken pairs,
    clustered by prompt) when every prompt's 4 images are ranked together (k = 4) or
    judged in all 6 pairs (k = 2, the pairwise baseline on the same design)."""
    truth = np.asarray(truth)
    m = len(truth)
    names = [f"m{c}" for c in range(m)]
    target = _target(truth, judge, k, prompt_sd, seed + 999_999)
    hits, widths = np.zeros(m, dtype=int), []
    groups, prompts = _design(k, m, n_prompts)
    for run in range(runs):
        rng = np.random.default_rng(seed + 10 + run)
        pool = Pool(truth, rng.normal(0.0, prompt_sd, (n_prompts, m)))
        ia, ib, sc, pr = judge_battles(rng, pool, groups, prompts, judge)
        win = np.where(sc == 1.0, "model_a", np.where(sc == 0.0, "model_b", "tie"))
        rows = rate_battles([names[i] for i in ia], [names[j] for j in ib], win, pr,
                            config=RatingConfig(bootstrap_rounds=rounds, seed=run))
        for r in rows:
            c = names.index(r["model"])
            hits[c] += r["ci_low"] <= target[c] <= r["ci_high"]
            widths.append(r["ci_high"] - r["ci_low"])
    return {"runs": runs, "hits": hits.tolist(), "target": target.tolist(),
            "mean_width": float(np.mean(widths)), "n_prompts": n_prompts, "k": k,
            "rounds": rounds, "judge": judge.__dict__}


def agreement_study(n_prompts: int, dilution: float, *, n_models: int = 4,
                    spread: float = 300.0, prompt_sd: float = 100.0,
                    seed: int = 0) -> dict[str, Any]:
    """The same swap-debiased judge on the same images: per pair, its pairwise verdict
    (two calls) against the verdict of that pair inside its K = 4 ranking (two calls),
    and, as the ceiling, against a second pairwise run (the judge's test-retest)."""
    rng = np.random.default_rng(seed)
    pool = make_pool(rng, n_models, spread, n_prompts, prompt_sd)
    judge = Judge(calls=2, dilution=dilution)
    pairs = all_pairs(n_models)
    prompts = np.repeat(np.arange(n_prompts), len(pairs))
    pw = [judge_battles(rng, pool, np.tile(pairs, (n_prompts, 1)), prompts, judge)
          for _ in range(2)]
    kw = judge_battles(rng, pool, np.tile(np.arange(n_models), (n_prompts, 1)),
                       np.arange(n_prompts), judge)
    # all three list each prompt's pairs in the same (i < j) order
    assert all(np.array_equal(x[0], pw[0][0]) and np.array_equal(x[3], pw[0][3])
               for x in (pw[1], kw))

    def agree(x: np.ndarray, y: np.ndarray) -> dict[str, int]:
        decisive = (x != 0.5) & (y != 0.5)
        return {"same": int((x == y).sum()), "n": len(x), "decisive": int(decisive.sum()),
                "decisive_same": int((decisive & (x == y)).sum())}

    return {"kwise_vs_pairwise": agree(kw[2], pw[0][2]),
            "pairwise_retest": agree(pw[1][2], pw[0][2]), "dilution": dilution,
            "n_prompts": n_prompts, "spread": spread}


def efficiency_study(runs: int, top: int | None, *, n_models: int = 6, k: int = 4,
                     n_rankings: int = 400, spread: float = 300.0,
                     seed: int = 0) -> dict[str, Any]:
    """Rank breaking against the exact Plackett-Luce MLE on the same untied rankings
    (random groups of K, one call each, no prompt effects): the spread of each estimator
    over `runs` data sets (sd ratio = CI width ratio) and how far apart they land."""
    truth = np.linspace(1000.0 - spread / 2, 1000.0 + spread / 2, n_models)
    names = [f"m{c}" for c in range(n_models)]
    br, pl = np.zeros((runs, n_models)), np.zeros((runs, n_models))
    for run in range(runs):
        rng = np.random.default_rng(seed + run)
        groups = np.array([rng.permutation(n_models)[:k] for _ in range(n_rankings)])
        ranks = simulate_rankings(rng, truth, groups, top=top)
        models = [[names[c] for c in g] for g in groups]
        fit = fit_plackett_luce(models, ranks)
        pl[run] = [fit[n] for n in names]
        b = break_rankings(models, ranks)
        rows = rate_battles(b.model_a, b.model_b, b.winner,
                            config=RatingConfig(bootstrap_rounds=0))
        got = {r["model"]: r["rating"] for r in rows}
        br[run] = [got[n] for n in names]
    return {"top": top, "runs": runs, "n_rankings": n_rankings,
            "sd_ratio": float(np.mean(br.std(axis=0) / pl.std(axis=0))),
            "sd_breaking": float(br.std(axis=0).mean()), "sd_pl": float(pl.std(axis=0).mean()),
            "mean_abs_diff": float(np.abs(br - pl).mean()),
            "bias_breaking": float(np.abs(br.mean(axis=0) - truth).max()),
            "bias_pl": float(np.abs(pl.mean(axis=0) - truth).max())}


NOISE = ("image quality r_m + u[p, m], u ~ N(0, 100^2) Elo per prompt and model; a call "
         "orders K images by quality (nats) + beta_K Gumbel (Plackett-Luce); beta_K = 1: "
         "every implied pair is the pairwise BT judge's")


def _mean_ci(values: list[float | None]) -> str:
    v = np.array([np.nan if x is None else x for x in values], float)
    if np.isnan(v).any():
        return f"not reached in {int(np.isnan(v).sum())}/{len(v)}"
    half = 1.96 * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
    return f"{v.mean():7.0f} ({v.mean() - half:.0f}..{v.mean() + half:.0f})"


def _calls_table(title: str, per_k: dict, base: dict, target_width: float,
                 target_rho: float) -> list[dict]:
    print(title)
    print(f"  {'K / judge':<22} {'calls to mean CI width ' + str(int(target_width)):<34} "
          f"{'/ pairwise (95% MC)':<22} {'calls to E[rho] ' + str(target_rho):<18} "
          f"{'/ pairwise':<11} slope")
    rows = []
    for label, r in per_k.items():
        ok = all(x is not None for x in r["calls_to_width"] + base["calls_to_width"])
        ratio = ratio_interval(r["calls_to_width"], base["calls_to_width"]) if ok else None
        rho = r["calls_to_rho"]
        rho_ratio = None if rho is None or base["calls_to_rho"] is None \
            else rho / base["calls_to_rho"]
        rtxt = "n/a" if ratio is None else f"{ratio[0]:.2f} ({ratio[1]:.2f}..{ratio[2]:.2f})"
        print(f"  {label:<22} {_mean_ci(r['calls_to_width']):<34} {rtxt:<22} "
              f"{'not reached' if rho is None else f'{rho:.0f}':<18} "
              f"{'n/a' if rho_ratio is None else f'{rho_ratio:.2f}':<11} {r['slope']:.2f}",
              flush=True)
        rows.append({"label": label, **r, "width_ratio": ratio, "rho_ratio": rho_ratio})
    return rows


def _acceptance(label: str, row: dict) -> None:
    """The issue's bar: K-wise reaches the pairwise CI width with at most half the calls
    (the upper end of the Monte Carlo interval of the ratio at most 0.5)."""
    ratio = row["width_ratio"]
    verdict = "n/a" if ratio is None else ("met" if ratio[2] <= 0.5 else "NOT met")
    print(f"  at most half the pairwise calls to the width, {label}: {verdict}"
          + ("" if ratio is None else f" (ratio {ratio[0]:.2f}, MC upper {ratio[2]:.2f})"))


def _rate(label: str, hits: int, runs: int) -> dict:
    from studies import wilson

    low, high = wilson(hits, runs)
    print(f"  {label:<52} {hits / runs:6.2%}  (MC 95% {low:.2%} .. {high:.2%}; "
          f"{hits}/{runs})", flush=True)
    return {"label": label, "rate": hits / runs, "mc_low": low, "mc_high": high}


def kwise_numbers(quick: bool, out: dict, reps: int | None = None,
                  coverage_runs: int | None = None, dilution: float = 0.75) -> None:
    """All parts of the study, printed; the numbers go to out["kwise"]."""
    reps = reps or (3 if quick else 8)
    cov_runs = coverage_runs or (100 if quick else 300)
    res: dict[str, Any] = {"noise_model": NOISE, "reps": reps}
    t0 = time.perf_counter()
    print(f"[kwise] noise model: {NOISE}; swap-debiased judge: 2 calls per battle or "
          "ranking, a pair whose verdict differs between them is a tie; arena: 1 vote")
    kw = dict(reps=reps)
    same = calls_study((2, 3, 4), Judge(), **kw)["per_k"]
    spec = (f"10 models evenly over 450 Elo, 2000-prompt pool, {reps} pools, batches of 16, "
            "in-loop prompt-clustered bootstrap 100 rounds; runs of 1280 calls for pairs, 640 "
            "for K > 2 (slope: fitted on true ratings at the end)")
    res["same_noise"] = _calls_table(
        f"[kwise 1] same noise per implied pair; {spec}:",
        {"K=2 (adaptive pairs)": same[2], "K=3": same[3], "K=4": same[4]}, same[2], 100.0,
        0.95)
    _acceptance("K=4 swap-debiased judge", res["same_noise"][2])
    dil = calls_study((3, 4), Judge(dilution=dilution), **kw)["per_k"]
    res["dilution"] = _calls_table(
        f"[kwise 3] attention dilution: beta_K = 1 + {dilution} (K - 2) (K=4: pair accuracy "
        f"at a 100-Elo gap {expit(100 / ELO_PER_NAT / (1 + 2 * dilution)):.1%} vs "
        f"{expit(100 / ELO_PER_NAT):.1%}); the scale compresses (slope), so compare the "
        "Spearman column:",
        {"K=2 (adaptive pairs)": same[2], "K=3 diluted": dil[3], "K=4 diluted": dil[4]},
        same[2], 100.0, 0.95)
    arena2 = calls_study((2,), Judge(calls=1), **kw)["per_k"][2]
    best4 = calls_study((4,), Judge(calls=1, top=1), **kw)["per_k"][4]
    order4 = calls_study((4,), Judge(calls=1), **kw)["per_k"][4]
    res["arena"] = _calls_table(
        "[kwise 1b] arena votes (one call each, same voter noise):",
        {"pairwise votes": arena2, "best-of-4 votes": best4, "order-4 votes": order4},
        arena2, 100.0, 0.95)
    for row in res["arena"][1:]:
        _acceptance(row["label"], row)
    print(f"  [{time.perf_counter() - t0:.0f} s]")
    t1 = time.perf_counter()
    res["coverage"] = []
    for label, judge, k in (("K=4 full order, 2 calls", Judge(), 4),
                            ("pairwise, all 6 pairs, 2 calls each", Judge(), 2),
                            ("K=4 best-of-4 vote, 1 call", Judge(calls=1, top=1), 4)):
        c = coverage_study(cov_runs, judge, k=k, seed=77)
        print(f"[kwise 2] coverage of the board's 95% CIs, {label} per prompt: 4 models "
              f"1000/1040/1100/1180, {c['n_prompts']} prompts, prompt effects sd 100, "
              f"{c['rounds']} rounds clustered by prompt, {cov_runs} data sets; target = "
              f"the fit on 200,000 prompts; mean width {c['mean_width']:.0f} Elo")
        rows = [_rate(f"model {j} (target {c['target'][j]:.0f})", h, cov_runs)
                for j, h in enumerate(c["hits"])]
        rows.append(_rate("all four (intervals of one data set are dependent)",
                          sum(c["hits"]), 4 * cov_runs))
        res["coverage"].append({"label": label, **c, "rows": rows})
    print(f"  [{time.perf_counter() - t1:.0f} s]")
    _agreement_part(res, 600 if quick else 2000, dilution)
    _efficiency_part(res, 60 if quick else 200)
    out["kwise"] = res


def _agreement_part(res: dict, n_prompts: int, dilution: float) -> None:
    res["agreement"] = []
    for d in (0.0, dilution):
        a = agreement_study(n_prompts, d, seed=11)
        print(f"[kwise 4] same judge, same images ({n_prompts} prompts x 6 pairs, 4 models "
              f"over 300 Elo, 2 calls each way), dilution {d}: verdict in the K=4 ranking "
              "vs the pairwise battle, beside the pairwise judge against itself:")
        for key, label in (("kwise_vs_pairwise", "K=4 vs pairwise"),
                           ("pairwise_retest", "pairwise vs pairwise re-run")):
            x = a[key]
            r1 = _rate(f"{label}: same verdict (win/loss/tie)", x["same"], x["n"])
            r2 = _rate(f"{label}: same winner when both decisive", x["decisive_same"],
                       x["decisive"])
            res["agreement"].append({"dilution": d, "pair": key, "same": r1,
                                     "decisive": r2})


def _efficiency_part(res: dict, runs: int) -> None:
    res["efficiency"] = []
    for top, label in ((None, "full orders"), (1, "best of 4")):
        e = efficiency_study(runs, top, seed=21)
        print(f"[kwise 5] breaking vs Plackett-Luce MLE, {label}: 6 models over 300 Elo, "
              f"{e['n_rankings']} random groups of 4 per data set, {runs} data sets: sd "
              f"breaking {e['sd_breaking']:.1f} vs PL {e['sd_pl']:.1f} Elo (CI width ratio "
              f"{e['sd_ratio']:.3f}); mean |breaking - PL| {e['mean_abs_diff']:.2f} Elo; "
              f"largest mean bias {e['bias_breaking']:.1f} vs {e['bias_pl']:.1f}",
              flush=True)
        res["efficiency"].append({"label": label, **e})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--reps", type=int, default=None, help="pools per K (default 8)")
    p.add_argument("--coverage-runs", type=int, default=None, help="default 300")
    p.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    args = p.parse_args()
    out: dict = {}
    kwise_numbers(args.quick, out, args.reps, args.coverage_runs)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
