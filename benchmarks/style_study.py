"""Simulated data sets for style control (autojudge.ratings.style_control): a judge with a
known bias for a per-image feature, models whose images differ in that feature.

Each data set: 4 models with true ratings 0/40/80/120 Elo whose images' feature is drawn
N(mu_m, 1) with mu = 1.5/0.5/-0.5/-1.5 (the best model makes the least "saturated"
images), every pair on every prompt, per-prompt per-model effects N(0, prompt_sd^2), and a
judge that adds `bias` Elo per unit of the feature difference. Pure numpy, seeded.
"""
from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
from scipy.special import expit

from autojudge.ratings.bradley_terry import (ELO_PER_NAT, Battles, aggregate_matchups,
                                             fit_strengths)
from autojudge.ratings.style_control import bootstrap_style

TRUE = np.array([0.0, 40.0, 80.0, 120.0])
MU = np.array([1.5, 0.5, -0.5, -1.5])


def style_data(seed: int, bias: float, n_prompts: int, prompt_sd: float) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_prompts):
        x, u = rng.normal(MU, 1.0), rng.normal(0.0, prompt_sd, len(TRUE))
        for a, b in combinations(range(len(TRUE)), 2):
            a, b = (b, a) if rng.random() < 0.5 else (a, b)
            d = TRUE[a] + u[a] - TRUE[b] - u[b] + bias * (x[a] - x[b])
            rows.append((a, b, float(rng.random() < expit(d / ELO_PER_NAT)), x[a], x[b], p))
    ia, ib, y, xa, xb, prompt = map(np.array, zip(*rows))
    return {"ia": ia, "ib": ib, "score": y, "xa": xa[:, None], "xb": xb[:, None],
            "prompt": prompt}


def _centred(strengths: np.ndarray) -> np.ndarray:
    r = strengths * ELO_PER_NAT
    return r - r.mean()


def style_study(runs: int, bias: float, *, n_prompts: int = 100, prompt_sd: float = 30.0,
                rounds: int = 200, seed: int = 0) -> dict[str, Any]:
    """Coverage of the coefficient's 95% CI (per unit of the feature) of `bias`, and the
    mean absolute rating error (Elo, centred) of the controlled and the raw board."""
    covered, err_controlled, err_raw, order = 0, [], [], 0
    truth = TRUE - TRUE.mean()
    for k in range(runs):
        d = style_data(seed + k, bias, n_prompts, prompt_sd)
        boot = bootstrap_style(d["ia"], d["ib"], d["score"], d["xa"], d["xb"], ["feature"],
                               len(TRUE), d["prompt"], rounds=rounds, seed=seed + k)
        unit = ELO_PER_NAT / boot.fit.sd[0]
        covered += boot.coef_lo[0] * unit <= bias <= boot.coef_hi[0] * unit
        controlled = _centred(boot.fit.strengths)
        mu, _ = aggregate_matchups(Battles(("a", "b", "c", "d"), d["ia"], d["ib"], d["score"]))
        raw = _centred(fit_strengths(mu.i, mu.j, mu.eff_i, mu.eff_j, len(TRUE), 0.1))
        err_controlled.append(np.abs(controlled - truth).mean())
        err_raw.append(np.abs(raw - truth).mean())
        order += list(np.argsort(controlled)) == list(np.argsort(truth))
    return {"runs": runs, "bias": bias, "covered": covered, "order": order,
            "mae_controlled": float(np.mean(err_controlled)),
            "mae_raw": float(np.mean(err_raw)), "n_prompts": n_prompts,
            "prompt_sd": prompt_sd, "rounds": rounds}
