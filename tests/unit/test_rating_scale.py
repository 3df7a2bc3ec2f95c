"""The scalable rating code gives the boards of the code before it (issue 21).

`rating_reference` (benchmarks/rating_reference.py) is the rating code before the sparse
battle graph, the cached likelihood fits and the pairwise screen, read from git; on logs
small enough for it these tests ask for the same board: ratings, CIs (open sides
included), CI methods, ranks, separation flags and components.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import rating_reference
from bench_rate_scale import same_board, sparse_log

if not rating_reference.available():  # a source tree without git history
    pytest.skip(f"git cannot show commit {rating_reference.REFERENCE_COMMIT}",
                allow_module_level=True)
rating_reference.load()

from rating_reference.boards import RatingConfig as OldConfig  # noqa: E402
from rating_reference.boards import rate_encoded as old_rate_encoded  # noqa: E402
from rating_reference.structure import battle_graph as old_battle_graph  # noqa: E402

from autojudge.ratings.boards import RatingConfig, rate_encoded  # noqa: E402
from autojudge.ratings.structure import battle_graph  # noqa: E402


@pytest.mark.parametrize("per", [1, 2, 3])
def test_sparse_graph_answers_as_the_dense_one(per: int) -> None:
    battles, _ = sparse_log(200, per=per, seed=per)
    old, new = old_battle_graph(battles), battle_graph(battles)
    assert (new.component == old.component).all()
    assert (new.reach == old.reach).all()
    sides = [(new.open_sides_vs_mean(k), new.separated(k)) for k in range(battles.n_models)]
    assert sides == [(old.open_sides_vs_mean(k), old.separated(k))
                     for k in range(battles.n_models)]
    pairs = [(p, q) for p in range(0, battles.n_models, 7) for q in range(battles.n_models)]
    assert [new.open_sides_of_difference(p, q) for p, q in pairs] == \
        [old.open_sides_of_difference(p, q) for p, q in pairs]


def test_well_linked_board_as_before() -> None:
    # 150 models, 10 battles each: bootstrap CIs for the linked ones, profile bounds for
    # the isolated pair (one side open each)
    battles, clusters = sparse_log(150, per=10, n_separated=0, seed=3)
    old = old_rate_encoded(battles, clusters, OldConfig(bootstrap_rounds=50))
    new = rate_encoded(battles, clusters, RatingConfig(bootstrap_rounds=50))
    assert same_board(old, new) == 0
    assert {r["ci_method"] for r in new} >= {"bootstrap", "profile"}


def test_separated_sparse_board_as_before() -> None:
    # most models separated: open sides everywhere, ranks from the pairwise likelihood
    battles, clusters = sparse_log(16, per=3, seed=5)
    old = old_rate_encoded(battles, clusters, OldConfig(bootstrap_rounds=30))
    new = rate_encoded(battles, clusters, RatingConfig(bootstrap_rounds=30))
    assert same_board(old, new) == 0
    assert sum(r["separated"] for r in new) > len(new) // 2
    assert len({r["rank"] for r in new if r["rank"] is not None}) > 2


def test_sparse_newton_fits_as_the_dense_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # above DENSE_NEWTON_MAX models the Newton directions come from conjugate gradients
    import autojudge.ratings.bradley_terry as bt
    from autojudge.ratings.bootstrap import bootstrap_strengths

    battles, clusters = sparse_log(bt.DENSE_NEWTON_MAX + 50, per=3, seed=7)
    mu, _ = bt.aggregate_matchups(battles)
    sparse_fit = bt.fit_strengths(mu.i, mu.j, mu.eff_i, mu.eff_j, battles.n_models)
    sparse_boot = bootstrap_strengths(battles, clusters, rounds=4, seed=1, start=sparse_fit)
    monkeypatch.setattr(bt, "DENSE_NEWTON_MAX", 10**9)
    dense_fit = bt.fit_strengths(mu.i, mu.j, mu.eff_i, mu.eff_j, battles.n_models)
    dense_boot = bootstrap_strengths(battles, clusters, rounds=4, seed=1, start=dense_fit)
    np.testing.assert_allclose(sparse_fit, dense_fit, atol=1e-9)
    np.testing.assert_allclose(sparse_boot, dense_boot, atol=1e-9)


def test_pairwise_order_as_one_profile_fit_per_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    # The pairwise order decides most pairs from the core's two-sided deviance bounds
    # and the rest on each pair's chain sub-problem (dense Newton steps for small ones,
    # preconditioned conjugate gradients for large ones: both are tried here); the rule
    # itself is one profile fit of the whole component per pair: D(max(0, est - 32))
    # above the cut-off.
    import autojudge.ratings.pairwise as pw

    graph, members, likelihood, cut = separated_component(70, per=4, seed=11)
    is_open = np.ones(len(members), dtype=bool)
    used = {"bounds": 0, "chain": 0}
    bounds, chain = pw.deviance_bounds, pw.chain_deviance

    def counted_bounds(*args, **kwargs):  # type: ignore[no-untyped-def]
        low, high = bounds(*args, **kwargs)
        used["bounds"] += int(((low > cut) | (high < cut)).sum())
        return low, high

    def counted_chain(*args, **kwargs):  # type: ignore[no-untyped-def]
        used["chain"] += 1
        return chain(*args, **kwargs)

    monkeypatch.setattr(pw, "deviance_bounds", counted_bounds)
    monkeypatch.setattr(pw, "chain_deviance", counted_chain)
    got = pw.pairwise_bounded_above(graph, members, is_open, is_open, likelihood, cut)
    assert used["bounds"] > 0 and used["chain"] > 0
    assert_profile_order(got, monkeypatch, graph, members, likelihood, cut)


def test_dual_bounds_keep_the_profile_order(monkeypatch: pytest.MonkeyPatch) -> None:
    # A pair's chain fit stops once a dual point (its matchup flows, routed back onto
    # the contrast) bounds the deviance above the cut-off, instead of running Newton to
    # convergence: every such bound is below the converged deviance, and the order is
    # still that of one profile fit of the whole component per pair.
    import autojudge.ratings.pairwise as pw

    graph, members, likelihood, cut = separated_component(90, per=3, seed=23)
    is_open = np.ones(len(members), dtype=bool)
    chain = pw.chain_deviance
    certified: list[tuple[float, float]] = []

    def checked_chain(*args, **kwargs):  # type: ignore[no-untyped-def]
        dev = chain(*args, **kwargs)
        if dev is not None and dev > kwargs["above"]:
            exact = chain(*args, below=kwargs["below"])
            certified.append((dev, np.inf if exact is None else exact))
        return dev

    monkeypatch.setattr(pw, "chain_deviance", checked_chain)
    got = pw.pairwise_bounded_above(graph, members, is_open, is_open, likelihood, cut)
    assert len(certified) > 10
    assert all(bound <= exact + 1e-7 for bound, exact in certified)
    assert_profile_order(got, monkeypatch, graph, members, likelihood, cut)


def test_chord_solver_solves_its_laplacian() -> None:
    # The pairwise fits step with the core's Laplacian at the fit plus the current
    # weights of the matchups of models outside the core, solved from the core's
    # pseudo-inverse (outside models eliminated, Woodbury on the models they touch):
    # the solve is exact, whatever the outside weights.
    from autojudge.ratings.bradley_terry import aggregate_matchups, fit_strengths
    from autojudge.ratings.intervals import _Likelihood
    from autojudge.ratings.pair_bounds import build_core, edges_at
    from autojudge.ratings.pair_chord import ChordSolver

    battles, clusters = sparse_log(60, per=3, seed=4)
    mu, _ = aggregate_matchups(battles)
    graph = battle_graph(battles, mu)
    strengths = fit_strengths(mu.i, mu.j, mu.eff_i, mu.eff_j, battles.n_models)
    members = graph.members(0)
    likelihood = _Likelihood(battles, clusters, strengths, 0.95)
    scc = graph.scc[members]
    labels, sizes = np.unique(scc, return_counts=True)
    ed = edges_at(likelihood.problem(members), len(members), likelihood.fit(members), scc)
    core = build_core(ed, len(members), np.flatnonzero(scc == labels[np.argmax(sizes)]))
    m = len(members)
    solver = ChordSolver(core, np.arange(m), ed.i, ed.j, ed.w)
    assert 0 < len(solver.outside) and len(solver.touched) > 1
    rng = np.random.default_rng(0)
    weights = solver.weights(rng.uniform(0.01, 2.0, len(ed.i)))
    lap = np.zeros((m, m))
    np.add.at(lap, (ed.i, ed.i), weights)
    np.add.at(lap, (ed.j, ed.j), weights)
    np.add.at(lap, (ed.i, ed.j), -weights)
    np.add.at(lap, (ed.j, ed.i), -weights)
    rhs = rng.normal(size=(m, 2))
    rhs -= rhs.mean(axis=0)
    np.testing.assert_allclose(lap @ solver.solve(weights, rhs), rhs, atol=1e-8)


def separated_component(models: int, per: int, seed: int) -> tuple[Any, Any, Any, float]:
    """(battle graph, the first component's members, its likelihood, the 95% cut-off)
    of a sparse log with separated models."""
    from autojudge.ratings.bradley_terry import aggregate_matchups, fit_strengths
    from autojudge.ratings.intervals import _Likelihood
    from autojudge.ratings.profile import z_value

    battles, clusters = sparse_log(models, per=per, seed=seed)
    mu, _ = aggregate_matchups(battles)
    graph = battle_graph(battles, mu)
    strengths = fit_strengths(mu.i, mu.j, mu.eff_i, mu.eff_j, battles.n_models)
    return (graph, graph.members(0), _Likelihood(battles, clusters, strengths, 0.95),
            z_value(0.95) ** 2)


def assert_profile_order(got: np.ndarray, monkeypatch: pytest.MonkeyPatch, graph: Any,
                         members: Any, likelihood: Any, cut: float) -> None:
    """`got` (dense chain fits where small) and the order again with conjugate gradients
    forced both equal the profile order, which decides some candidate pairs, not all."""
    import autojudge.ratings.pair_exact as px
    import autojudge.ratings.pairwise as pw

    monkeypatch.setattr(px, "_DENSE_MAX", 0)
    is_open = np.ones(len(members), dtype=bool)
    by_cg = pw.pairwise_bounded_above(graph, members, is_open, is_open, likelihood, cut)
    want, candidates = profile_order(graph, members, likelihood, cut)
    assert (got == want).all()
    assert (by_cg == want).all()
    assert 0 < want.sum() < candidates


def profile_order(graph: Any, members: Any, likelihood: Any, cut: float
                  ) -> tuple[np.ndarray, int]:
    """The rule itself, one profile fit of the whole component per candidate pair:
    D(max(0, est - 32)) above the cut-off; and how many pairs were candidates."""
    import autojudge.ratings.pairwise as pw

    is_open = np.ones(len(members), dtype=bool)
    s_hat = likelihood.fit(members)
    rows, cols = pw._candidates(graph, members, is_open, is_open, s_hat)
    want = np.zeros((len(members), len(members)), dtype=bool)
    for j, k in zip(rows, cols, strict=True):
        contrast = np.zeros(len(members))
        contrast[j], contrast[k] = 1.0, -1.0
        value = max(0.0, float(s_hat[j] - s_hat[k]) - 32.0)
        want[j, k] = likelihood.profile(members, contrast).deviance(value) > cut
    return want, len(rows)
