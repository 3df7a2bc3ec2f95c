"""Bradley-Terry with style covariates: ratings with image features held fixed, and what
each feature is worth to the judge (Chatbot Arena's "style control", for images).

Model, per battle k between models a and b with feature vectors x_a, x_b:

    P(a beats b) = sigmoid(s_a - s_b + beta . (z_a - z_b))

where z is each feature standardised over every image in the battles ((x - mean) / sd), so
beta_f is the judge's preference, in nats, for one standard deviation more of feature f,
whatever the model; the model strengths s are what remains ("controlled" ratings). Ties
count half, as in the plain fit. Fitted by penalised Newton steps with the plain fit's
Gaussian prior (precision `prior` on every strength and coefficient: it keeps the fit
finite under separation; with hundreds of battles its shrinkage is negligible).

A feature that is constant over the images, or a linear combination of the others (and
of the model identities: a feature that only says which model made the image cannot be
told apart from the model's strength), is dropped before the fit, with a note; it never
crashes the fit nor splits an effect between aliases.

Intervals come from the prompt-clustered bootstrap as for the plain board: prompts are
resampled with replacement and both the strengths and the coefficients refitted per round,
so a coefficient's interval includes the prompt-to-prompt variation. Pure numpy/scipy,
explicit seed, no I/O.

Example:
    >>> import numpy as np
    >>> ia, ib = np.array([0, 0, 1, 1]), np.array([1, 1, 0, 0])
    >>> xa = np.array([[1.0], [2.0], [1.0], [2.0]]); xb = np.array([[2.0], [1.0], [2.0], [1.0]])
    >>> fit = fit_style(ia, ib, np.array([1.0, 1.0, 0.0, 1.0]), xa, xb, ["f"], 2)
    >>> fit.features, fit.strengths.shape
    (('f',), (2,))
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy import sparse
from scipy.special import expit

from autojudge.ratings.bootstrap import percentile_interval
from autojudge.ratings.bradley_terry import DEFAULT_PRIOR, ELO_PER_NAT

_MAX_STEPS = 50
_TOL = 1e-10


@dataclass(frozen=True)
class StyleFit:
    """One fit: model strengths (nats, mean 0) and coefficients (nats per sd).

    Attributes:
        strengths: (M,) model strengths with the features held fixed.
        coefficients: (K,) one per kept feature, in `features` order.
        features: the features kept, in order.
        dropped: feature -> why it was left out (constant, collinear).
        mean, sd: the standardisation of each kept feature (over the battles' images).
    """

    strengths: np.ndarray
    coefficients: np.ndarray
    features: tuple[str, ...]
    dropped: dict[str, str] = field(default_factory=dict)
    mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sd: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def coefficients_elo(self) -> np.ndarray:
        """Coefficients in Elo points per standard deviation of the feature."""
        return self.coefficients * ELO_PER_NAT


def standardise(xa: np.ndarray, xb: np.ndarray, names: Sequence[str]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int], dict[str, str]]:
    """(z_a - z_b, mean, sd, kept column indices, dropped) for per-battle features.

    The mean and sd are over the distinct sides of the battles (each battle's two images),
    so a feature's scale is that of the images being compared."""
    both = np.concatenate([xa, xb], axis=0)
    mean, sd = both.mean(axis=0), both.std(axis=0)
    dropped: dict[str, str] = {}
    kept = []
    for f, name in enumerate(names):
        if not np.all(np.isfinite(both[:, f])):
            dropped[name] = "has missing or infinite values"
        elif not sd[f] > 1e-12 * max(1.0, abs(mean[f])):
            dropped[name] = "is constant over the images"
        else:
            kept.append(f)
    diff = (xa[:, kept] - xb[:, kept]) / sd[kept]
    return diff, mean[kept], sd[kept], kept, dropped


def design(ia: np.ndarray, ib: np.ndarray, diff: np.ndarray, n_models: int
           ) -> sparse.csr_matrix:
    """The (n, M + K) design: +1 for model a, -1 for model b, then the feature differences."""
    n = len(ia)
    rows = np.repeat(np.arange(n), 2)
    cols = np.stack([ia, ib], axis=1).ravel()
    vals = np.tile([1.0, -1.0], n)
    models = sparse.csr_matrix((vals, (rows, cols)), shape=(n, n_models))
    return sparse.hstack([models, sparse.csr_matrix(diff)], format="csr")


def model_determined(ia: np.ndarray, ib: np.ndarray, diff_a: np.ndarray,
                     n_models: int, share: float = 0.999) -> list[int]:
    """Feature columns whose per-image values are (almost) fixed by the model that made
    the image: more than `share` of their variance is between models. Such a feature says
    which model made the image; its effect cannot be told apart from the strengths."""
    models = np.concatenate([ia, ib])
    out = []
    for f in range(diff_a.shape[1]):
        values = diff_a[:, f]
        total = values.var()
        means = np.bincount(models, values, n_models) / np.maximum(
            np.bincount(models, minlength=n_models), 1)
        within = (values - means[models]).var()
        if total > 0 and within <= (1.0 - share) * total:
            out.append(f)
    return out


def collinear(x: sparse.csr_matrix, n_models: int, names: Sequence[str]) -> list[int]:
    """Indices (into `names`) of features that add no rank beyond the model columns and
    the features before them: they cannot be told apart from what is already there."""
    dense = x.toarray()
    drop = []
    # the model columns have rank M - 1 at most (the strengths' shared offset)
    rank = np.linalg.matrix_rank(dense[:, :n_models])
    for f in range(len(names)):
        cols = [*range(n_models), *(n_models + g for g in range(f + 1) if g not in drop)]
        new_rank = np.linalg.matrix_rank(dense[:, cols])
        if new_rank <= rank:
            drop.append(f)
        else:
            rank = new_rank
    return drop


def newton(x: sparse.csr_matrix, y: np.ndarray, weight: np.ndarray, prior: float,
           start: np.ndarray | None = None) -> np.ndarray:
    """Penalised logistic regression without intercept by Newton's method (weighted)."""
    theta = np.zeros(x.shape[1]) if start is None else start.copy()
    xt = x.T.tocsr()
    for _ in range(_MAX_STEPS):
        p = expit(x @ theta)
        grad = xt @ (weight * (p - y)) + prior * theta
        w = weight * p * (1.0 - p)
        hess = (xt @ sparse.diags(w) @ x).toarray() + prior * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.max(np.abs(step)) < _TOL:
            break
    return theta


def fit_style(ia: np.ndarray, ib: np.ndarray, score: np.ndarray, xa: np.ndarray,
              xb: np.ndarray, names: Sequence[str], n_models: int,
              prior: float = DEFAULT_PRIOR, weight: np.ndarray | None = None) -> StyleFit:
    """The controlled fit of one battle table (model codes, model a's score 1/0/0.5, and
    each side's raw features, one column per name)."""
    xa, xb = np.asarray(xa, np.float64).reshape(len(ia), -1), \
        np.asarray(xb, np.float64).reshape(len(ib), -1)
    diff, mean, sd, kept, dropped = standardise(xa, xb, names)
    kept_names = [names[f] for f in kept]
    x = design(np.asarray(ia), np.asarray(ib), diff, n_models)
    sides = (np.concatenate([xa[:, kept], xb[:, kept]]) - mean) / sd
    for f in model_determined(np.asarray(ia), np.asarray(ib), sides, n_models):
        dropped[kept_names[f]] = ("is collinear with the models: it (almost) only says "
                                  "which model made the image")
    for f in collinear(x, n_models, kept_names):
        dropped.setdefault(kept_names[f], "is collinear with the models or the other "
                                          "features (it cannot be told apart from them)")
    keep = [f for f, name in enumerate(kept_names) if name not in dropped]
    x = x[:, [*range(n_models), *(n_models + f for f in keep)]]
    w = np.ones(len(ia)) if weight is None else np.asarray(weight, np.float64)
    theta = newton(x, np.asarray(score, np.float64), w, prior)
    s = theta[:n_models] - theta[:n_models].mean()
    return StyleFit(s, theta[n_models:], tuple(kept_names[f] for f in keep), dropped,
                    mean[keep], sd[keep])


@dataclass(frozen=True)
class StyleBootstrap:
    """A controlled fit with prompt-clustered bootstrap intervals.

    Attributes:
        fit: the point fit.
        strength_lo, strength_hi: (M,) interval of each strength (nats, mean 0).
        coef_lo, coef_hi: (K,) interval of each coefficient (nats per sd).
        rounds: the bootstrap draws of (strengths, coefficients), (R, M + K).
    """

    fit: StyleFit
    strength_lo: np.ndarray
    strength_hi: np.ndarray
    coef_lo: np.ndarray
    coef_hi: np.ndarray
    rounds: np.ndarray


def bootstrap_style(ia: np.ndarray, ib: np.ndarray, score: np.ndarray, xa: np.ndarray,
                    xb: np.ndarray, names: Sequence[str], n_models: int,
                    clusters: np.ndarray, *, rounds: int, seed: int,
                    confidence: float = 0.95, prior: float = DEFAULT_PRIOR
                    ) -> StyleBootstrap:
    """`fit_style` plus percentile intervals from resampling clusters (prompts) with
    replacement, `rounds` times, seeded. The standardisation and the kept features are
    the point fit's, so every round estimates the same coefficients."""
    fit = fit_style(ia, ib, score, xa, xb, names, n_models, prior)
    cols = [list(names).index(name) for name in fit.features]
    xa, xb = np.asarray(xa, np.float64).reshape(len(ia), -1), \
        np.asarray(xb, np.float64).reshape(len(ib), -1)
    diff = (xa[:, cols] - xb[:, cols]) / fit.sd if cols else np.zeros((len(ia), 0))
    x = design(np.asarray(ia), np.asarray(ib), diff, n_models)
    codes, cluster = np.unique(np.asarray(clusters), return_inverse=True)
    rng = np.random.default_rng(seed)
    start = np.concatenate([fit.strengths, fit.coefficients])
    draws = np.empty((rounds, n_models + len(cols)))
    y = np.asarray(score, np.float64)
    for r in range(rounds):
        counts = np.bincount(rng.integers(0, len(codes), len(codes)), minlength=len(codes))
        theta = newton(x, y, counts[cluster].astype(np.float64), prior, start)
        draws[r] = np.concatenate([theta[:n_models] - theta[:n_models].mean(),
                                   theta[n_models:]])
    lo, hi = percentile_interval(draws, confidence)
    return StyleBootstrap(fit, lo[:n_models], hi[:n_models], lo[n_models:], hi[n_models:],
                          draws)


def controlled_board(raw_rows: Sequence[dict], models: Sequence[str], ia: np.ndarray,
                     ib: np.ndarray, score: np.ndarray, xa: np.ndarray, xb: np.ndarray,
                     names: Sequence[str], clusters: np.ndarray | None, config: Any
                     ) -> dict[str, Any]:
    """The style-controlled board beside a plain one (`raw_rows`, from
    `ratings.rate_encoded` on the same battles; `models`: the names of the codes in
    `ia`/`ib`). Rows come back best first, unrated last.

    Honest as the plain board: computed only on one connected battle graph (else `note`
    says why and there are no rows); a model without battles stays unrated; a side the
    plain board leaves open (separation: the data bound only one side) stays open; no CI
    and no rank without bootstrap rounds. Each row adds `raw_rank` and `rank_change`
    (raw rank - controlled rank: positive = moved up). `coefficients`: one row per kept
    feature, in Elo per standard deviation of the feature, with its CI."""
    from autojudge.ratings.bradley_terry import strengths_to_ratings
    from autojudge.ratings.intervals import ci_rank

    n_models = len(models)
    by_name = {row["model"]: row for row in raw_rows}
    raw_rows = [by_name[name] for name in models]  # in code order
    rated = np.array([row["rating"] is not None for row in raw_rows])
    components = {row.get("component") for row in raw_rows if row["rating"] is not None}
    if len(components) > 1:
        return {"rows": [], "coefficients": [], "dropped": {}, "note": (
            "not computed: the battles form several groups never linked by battles, and "
            "a feature's effect cannot be told apart from the groups' offsets")}
    if any(row.get("separated") for row in raw_rows):
        return {"rows": [], "coefficients": [], "dropped": {}, "note": (
            "not computed: some model never lost (or never won) against part of its "
            "group, so the battles bound neither its strength nor the features' effects")}
    anchor = next((k for k, row in enumerate(raw_rows) if row["model"] == config.anchor),
                  None)
    scale = dict(base=config.base, scale=config.scale, init_rating=config.init_rating,
                 anchor=anchor)
    clusters = np.arange(len(ia)) if clusters is None else np.asarray(clusters)
    rounds = max(int(config.bootstrap_rounds), 1)
    boot = bootstrap_style(ia, ib, score, xa, xb, names, n_models, clusters, rounds=rounds,
                           seed=config.seed, confidence=config.confidence, prior=config.prior)
    rating = strengths_to_ratings(boot.fit.strengths, **scale)
    with_ci = config.bootstrap_rounds > 0
    draws = strengths_to_ratings(boot.rounds[:, :n_models], **scale)
    low, high = percentile_interval(draws, config.confidence)
    lows = [float(low[k]) if with_ci and rated[k] and raw_rows[k]["ci_low"] is not None
            else None for k in range(n_models)]
    highs = [float(high[k]) if with_ci and rated[k] and raw_rows[k]["ci_high"] is not None
             else None for k in range(n_models)]
    rank = ci_rank(lows, highs, np.where(rated, 0, -1)) if with_ci else [None] * n_models
    rows = []
    for k, raw in enumerate(raw_rows):
        rows.append({"model": raw["model"],
                     "rating": float(rating[k]) if rated[k] else None,
                     "ci_low": lows[k], "ci_high": highs[k], "rank": rank[k],
                     "raw_rank": raw["rank"], "battles": raw["battles"],
                     "rank_change": None if rank[k] is None or raw["rank"] is None
                     else int(raw["rank"] - rank[k])})
    to_elo = config.scale / np.log(config.base)
    coefficients = [{"feature": name, "elo_per_sd": float(boot.fit.coefficients[f] * to_elo),
                     "ci_low": float(boot.coef_lo[f] * to_elo) if with_ci else None,
                     "ci_high": float(boot.coef_hi[f] * to_elo) if with_ci else None,
                     "sd": float(boot.fit.sd[f])}
                    for f, name in enumerate(boot.fit.features)]
    rows.sort(key=lambda row: (row["rating"] is None, -(row["rating"] or 0.0)))  # best first
    return {"rows": rows, "coefficients": coefficients, "dropped": dict(boot.fit.dropped),
            "note": None}


def controlled_difference(ia: np.ndarray, ib: np.ndarray, score: np.ndarray,
                          xa: np.ndarray, xb: np.ndarray, names: Sequence[str],
                          n_models: int, clusters: np.ndarray, baseline: int,
                          candidate: int, *, rounds: int, seed: int, confidence: float,
                          margin: float, prior: float = DEFAULT_PRIOR) -> Any:
    """candidate - baseline with the features held fixed, for the release gate: the
    controlled fit's prompt-clustered bootstrap, a percentile interval, and one-sided
    bootstrap p-values against -margin (`gate_stats.Difference`, method "controlled").

    Honest as the plain gate: models not linked by battles, or a group where some model
    never lost (or never won), give no interval (inconclusive), never a verdict."""
    from autojudge.ratings.gate_stats import Difference
    from autojudge.ratings.structure import battle_graph
    from autojudge.ratings.bradley_terry import Battles, aggregate_matchups

    ia, ib = np.asarray(ia), np.asarray(ib)
    battles = Battles(tuple(str(k) for k in range(n_models)), ia, ib,
                      np.asarray(score, np.float64))
    graph = battle_graph(battles, aggregate_matchups(battles)[0])
    involved = (ia == baseline) | (ia == candidate) | (ib == baseline) | (ib == candidate)
    n_prompts = len(np.unique(np.asarray(clusters)[involved]))
    h2h = int(np.sum(((ia == baseline) & (ib == candidate))
                     | ((ia == candidate) & (ib == baseline))))
    common = dict(n_prompts=n_prompts, n_battles=len(ia), n_head_to_head=h2h, rounds=rounds,
                  confidence=confidence, margin=margin, interval="percentile")
    if not graph.linked(baseline, candidate):
        return Difference(None, None, None, None, None, None, method="unlinked",
                          linked=False, unlinked="no_chain", **common)
    if any(graph.separated(int(m)) for m in graph.members(graph.component[baseline])):
        return Difference(None, None, None, None, None, None, method="separated", **common)
    boot = bootstrap_style(ia, ib, score, xa, xb, names, n_models, clusters, rounds=rounds,
                           seed=seed, confidence=confidence, prior=prior)
    draws = (boot.rounds[:, candidate] - boot.rounds[:, baseline]) * ELO_PER_NAT
    diff = float((boot.fit.strengths[candidate] - boot.fit.strengths[baseline]) * ELO_PER_NAT)
    low, high = np.quantile(draws, [(1 - confidence) / 2, (1 + confidence) / 2])

    def share(mask: np.ndarray) -> float:  # add-one: never a p-value of exactly 0
        return float((mask.sum() + 1) / (len(draws) + 1))

    return Difference(diff, float(low), float(high), share(draws >= 0.0) if diff < 0 else
                      share(draws <= 0.0), share(draws >= -margin), share(draws <= -margin),
                      method="controlled", **common)
