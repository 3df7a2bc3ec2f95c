"""Boards that claim no more than the battles give: components, open sides, unrated models.

Hostile logs from issue 8: two components; a model that lost everything; a model with no
battles; one model; all ties; ratings inside their CI (a hypothesis property).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from autojudge.ratings import RatingConfig, board_structure, rate_battles
from autojudge.ratings.bradley_terry import encode_battles
from autojudge.ratings.profile import contrast_interval
from autojudge.ratings.structure import battle_graph
from autojudge.stages.boards import BoardSpec, RunFacts, build_boards
from autojudge.types import Battle, Failure, Generation, Prompt

CFG = RatingConfig(bootstrap_rounds=200, seed=0)


def by_model(rows: list[dict]) -> dict[str, dict]:
    return {r["model"]: r for r in rows}


def two_components(n: int = 40) -> tuple[list, list, list, list]:
    """strong beats weakA 75%; weakB beats strongB 75%: never linked across."""
    rng = np.random.default_rng(0)
    a, b, w, p = [], [], [], []
    for k in range(n):
        a += ["strong", "strongB"]
        b += ["weakA", "weakB"]
        w += ["model_a" if rng.random() < 0.75 else "model_b",
              "model_b" if rng.random() < 0.75 else "model_a"]
        p += [f"p{k}", f"p{k}"]
    return a, b, w, p


def test_two_components_are_flagged_ranked_separately_and_centred_separately() -> None:
    rows = rate_battles(*two_components(), config=CFG)
    board = board_structure(rows)
    assert board == {"connected": False, "n_components": 2, "n_rated": 4, "n_unrated": 0}
    r = by_model(rows)
    assert r["strong"]["component"] == r["weakA"]["component"] != r["weakB"]["component"]
    # each group is centred on 1000 on its own: no gap across groups is claimed
    for group in (("strong", "weakA"), ("strongB", "weakB")):
        assert abs(sum(r[m]["rating"] for m in group) / 2 - 1000.0) < 1e-6
    # ranks count only models of the same group
    assert r["strong"]["rank"] == 1 and r["weakB"]["rank"] == 1
    assert r["weakA"]["rank"] == 2 and r["strongB"]["rank"] == 2


def test_structure_reachability_decides_open_sides() -> None:
    battles = encode_battles(["a", "b", "c"], ["b", "c", "d"],
                             ["model_a", "model_a", "tie"])
    g = battle_graph(battles)
    assert g.connected and g.n_components == 1
    assert g.open_sides_vs_mean(0) == (False, True)   # a never lost: open above
    assert g.open_sides_vs_mean(1) == (True, True)    # middle of a strict chain
    assert g.open_sides_vs_mean(3) == (True, False)   # c and d tied, never won vs b
    assert g.open_sides_of_difference(3, 2) == (False, False)  # a tie bounds both sides
    assert g.open_sides_of_difference(0, 1) == (False, True)


def test_model_that_lost_everything_has_only_an_upper_bound() -> None:
    a = ["good"] * 30 + ["mid"] * 30 + ["good"] * 30
    b = ["mid"] * 30 + ["bad"] * 30 + ["bad"] * 30
    rng = np.random.default_rng(1)
    w = [("model_a" if rng.random() < 0.6 else "model_b") for _ in range(30)] + \
        ["model_a"] * 60
    p = [f"p{k % 30}" for k in range(90)]
    r = by_model(rate_battles(a, b, w, p, config=CFG))
    bad = r["bad"]
    assert bad["separated"] and bad["ci_low"] is None and bad["ci_method"] == "profile"
    assert bad["ci_high"] is not None and bad["rating"] <= bad["ci_high"]
    assert bad["ci_high"] < min(r["good"]["ci_low"], r["mid"]["ci_low"])
    assert bad["rank"] == 3
    assert not r["good"]["separated"] or r["good"]["ci_high"] is None


def test_zero_battles_and_one_model_get_no_rating_and_no_rank() -> None:
    rows = rate_battles(["a"], ["b"], ["model_a"], config=CFG, models=["idle"])
    idle = by_model(rows)["idle"]
    assert idle["rating"] is None and idle["rank"] is None and idle["elo"] is None
    assert idle["ci_low"] is None and idle["ci_high"] is None
    assert idle["unrated_reason"] == "no battles" and idle["component"] is None
    alone = rate_battles([], [], [], config=CFG, models=["only"])
    assert alone[0]["rating"] is None and alone[0]["rank"] is None


def test_all_ties_give_a_likelihood_interval_of_nonzero_width() -> None:
    rows = rate_battles(["a"] * 40, ["b"] * 40, ["tie"] * 40, [f"p{k}" for k in range(40)],
                        config=CFG)
    for r in rows:
        assert r["rating"] == 1000.0 and r["ci_method"] == "profile"
        assert r["ci_low"] < 1000.0 < r["ci_high"]
        assert not r["separated"]
    # the same 40 ties on ONE prompt: the bootstrap cannot vary either
    one = rate_battles(["a"] * 40, ["b"] * 40, ["tie"] * 40, ["p"] * 40, config=CFG)
    assert all(r["ci_high"] - r["ci_low"] > 10 for r in one)


def test_profile_bound_matches_the_closed_form() -> None:
    # n wins of a over b: 2 n log(1 + e^-d) = chi2_1(0.95) at the lower bound d
    n = 25
    low, high = contrast_interval(np.array([0]), np.array([1]), np.array([float(n)]),
                                  np.array([0.0]), 2, np.array([1.0, -1.0]),
                                  confidence=0.95, sides=(True, False))
    expected = -math.log(math.expm1(1.959963984540054 ** 2 / (2 * n)))
    assert high is None and abs(low - expected) < 1e-6


def test_run_board_says_why_a_model_is_unrated_and_defines_the_overall_board() -> None:
    prompt = Prompt("p1", "a sign", ("text",), expected_text="OPEN")
    gens = [Generation("broken", prompt, 0, None, None, 0.0, 0.0,
                       Failure("missing_file", "no image"))]
    battles = [Battle("x", "y", "model_a", "ocr", f"p{k}", 0) for k in range(6)] + \
              [Battle("x", "y", "model_b", "clip", f"p{k}", 0) for k in range(60)] + \
              [Battle("x", "y", "model_a", "human", "p1", 0)]
    boards = build_boards(battles, ["x", "y", "broken"], ["ocr", "clip", "human"],
                          BoardSpec(RatingConfig(bootstrap_rounds=50)), RunFacts(gens))
    ocr = next(b for b in boards if b["judge"] == "ocr" and b["tag"] is None)
    broken = by_model(ocr["models"])["broken"]
    assert broken["rank"] is None and broken["unrated_reason"].startswith("all 1 images failed")
    overall = next(b for b in boards if b["judge"] == "all" and b["tag"] is None)
    definition = overall["definition"]
    assert definition["judges"] == ["clip", "ocr"] and definition["weighting"] == "equal"
    assert definition["includes_human"] is False and "weighted equally" in definition["text"]
    assert overall["n_battles"] == 66  # human votes not pooled
    # equal weighting: 6 ocr wins for x weigh as much as 60 clip wins for y
    x, y = by_model(overall["models"])["x"], by_model(overall["models"])["y"]
    assert abs(x["rating"] - y["rating"]) < 1e-6


finite = st.floats(0, 1)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(1, 4), st.integers(0, 3),
                          st.integers(0, 7)), min_size=1, max_size=60),
       st.sampled_from([None, "m1"]))
def test_rating_always_inside_its_ci(raw: list, anchor: str | None) -> None:
    labels = ("model_a", "model_b", "tie", "tie (bothbad)")
    names = [f"m{k}" for k in range(5)]
    a = [names[i] for i, _, _, _ in raw]
    b = [names[(i + k) % 5] for i, k, _, _ in raw]
    w = [labels[o] for _, _, o, _ in raw]
    p = [f"p{q}" for _, _, _, q in raw]
    linked = set(a) | set(b)
    cfg = RatingConfig(bootstrap_rounds=30, anchor=anchor if anchor in linked else None)
    for r in rate_battles(a, b, w, p, config=cfg, models=names):
        if r["rating"] is None:
            assert r["rank"] is None and r["ci_low"] is None and r["ci_high"] is None
            continue
        if r["ci_low"] is not None:
            assert r["ci_low"] <= r["rating"]
        if r["ci_high"] is not None:
            assert r["rating"] <= r["ci_high"]
        if r["ci_low"] is not None and r["ci_high"] is not None and r["ci_method"] != "anchor":
            assert r["ci_high"] > r["ci_low"]  # never a point the data did not give


def test_separated_strength_follows_lambert_w_as_documented() -> None:
    # bradley_terry's note: a model losing all n battles to each of M - 1 others ends
    # about W(n M / prior) nats below them, (M - 1) / M of that below the mean. Exactly,
    # the gap g solves g (1 + e^g) = n M / prior (the stationarity condition).
    from scipy.special import lambertw

    from autojudge.ratings.bradley_terry import fit_strengths

    for n, m in ((10, 2), (100, 3), (1000, 5)):
        s = fit_strengths(np.zeros(m - 1, int), np.arange(1, m), np.zeros(m - 1),
                          np.full(m - 1, float(n)), m, 0.1)
        gap = float(s[1:].mean() - s[0])
        assert abs(gap * (1 + math.exp(gap)) / (n * m / 0.1) - 1) < 1e-6
        assert abs(gap / float(lambertw(n * m / 0.1).real) - 1) < 0.01
        assert abs(s[0] - s.mean() + (m - 1) / m * gap) < 1e-6


def test_a_board_rated_before_is_read_back_not_rated_again(tmp_path, monkeypatch) -> None:
    """With a store, each board's ratings are kept by their battles, settings and the
    rating code: the same battles give the same boards without rating anything; one
    changed verdict rates again only the boards that hold it."""
    import autojudge.ratings as ratings
    from autojudge.store.index import Store

    def tag(k: int) -> tuple[str, ...]:
        return ("t",) if k < 6 else ("u",)

    battles = [Battle("x", "y", "model_a" if k % 3 else "model_b", "ocr", f"p{k}", 0,
                      tag(k)) for k in range(12)] + \
        [Battle("y", "z", "model_a", "ocr", f"p{k}", 0, tag(k)) for k in range(12)]
    calls: list = []
    real = ratings.rate_battles
    monkeypatch.setattr(ratings, "rate_battles", lambda *a, **k: calls.append(1) or real(*a, **k))
    spec = BoardSpec(RatingConfig(bootstrap_rounds=50), per_tag_min_prompts=1)
    with Store(tmp_path / "store") as store:
        cached = dataclasses.replace(spec, store=store)
        first = build_boards(battles, ["x", "y", "z"], ["ocr"], cached)
        # ocr and all (one judge: the same battles), each whole, tag t and tag u
        assert len(first) == 6 and len(calls) == 3
        assert build_boards(battles, ["x", "y", "z"], ["ocr"], cached) == first
        assert len(calls) == 3  # nothing rated again
        battles[0] = Battle("x", "y", "model_a", "ocr", "p0", 0, tag(0))  # was model_b
        changed = build_boards(battles, ["x", "y", "z"], ["ocr"], cached)
        assert len(calls) == 5 and changed != first  # the whole-suite and tag t boards
    assert build_boards(battles, ["x", "y", "z"], ["ocr"], spec) == changed  # no store
