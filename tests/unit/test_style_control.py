"""The style-controlled Bradley-Terry fit (autojudge.ratings.style_control) and the image
style features it reads (autojudge.style.features)."""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
from PIL import Image
from scipy.special import expit

from autojudge.ratings.bradley_terry import (ELO_PER_NAT, Battles, aggregate_matchups,
                                             fit_strengths)
from autojudge.ratings.style_control import bootstrap_style, fit_style
from autojudge.style import FEATURES, PIXEL_FEATURES
from autojudge.style.features import colourfulness, image_features, text_area

TRUE = np.array([0.0, 40.0, 80.0, 120.0])  # Elo; the best model is the least saturated
SATURATION = np.array([1.5, 0.5, -0.5, -1.5])


def simulate(seed: int, bias: float, prompts: int = 300) -> dict:
    """Every pair of 4 models on each prompt; one image per model per prompt whose
    saturation is drawn around its model's mean; the judge adds `bias` Elo per unit."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(prompts):
        x = rng.normal(SATURATION, 1.0)
        for a, b in combinations(range(4), 2):
            a, b = (b, a) if rng.random() < 0.5 else (a, b)
            win = expit((TRUE[a] - TRUE[b] + bias * (x[a] - x[b])) / ELO_PER_NAT)
            rows.append((a, b, float(rng.random() < win), x[a], x[b], p))
    ia, ib, y, xa, xb, prompt = map(np.array, zip(*rows))
    return {"ia": ia, "ib": ib, "score": y, "xa": xa[:, None], "xb": xb[:, None],
            "prompt": prompt}


def elo(strengths: np.ndarray) -> np.ndarray:
    return strengths * ELO_PER_NAT - (strengths * ELO_PER_NAT).mean()


def test_a_biased_judge_is_measured_and_the_controlled_board_recovers_the_truth() -> None:
    data = simulate(seed=0, bias=60.0)  # one seeded data set; coverage is a benchmark
    boot = bootstrap_style(data["ia"], data["ib"], data["score"], data["xa"], data["xb"],
                           ["saturation"], 4, data["prompt"], rounds=100, seed=0)
    per_unit = boot.fit.coefficients_elo[0] / boot.fit.sd[0]
    low, high = (boot.coef_lo[0] * ELO_PER_NAT / boot.fit.sd[0],
                 boot.coef_hi[0] * ELO_PER_NAT / boot.fit.sd[0])
    assert low <= 60.0 <= high and low > 20.0  # measured, and told apart from no bias
    assert abs(per_unit - 60.0) < 15.0
    controlled = elo(boot.fit.strengths)
    assert list(np.argsort(controlled)) == [0, 1, 2, 3]  # the true order
    assert np.abs(controlled - (TRUE - TRUE.mean())).mean() < 20.0
    raw = elo(fit_strengths(*_matchups(data), 4, 0.1))
    assert list(np.argsort(raw)) != [0, 1, 2, 3]  # without control the bias reorders


def _matchups(data: dict):
    mu, _ = aggregate_matchups(Battles(tuple("abcd"), data["ia"], data["ib"], data["score"]))
    return mu.i, mu.j, mu.eff_i, mu.eff_j


def test_an_unbiased_judges_coefficient_interval_covers_zero() -> None:
    data = simulate(seed=2, bias=0.0)
    boot = bootstrap_style(data["ia"], data["ib"], data["score"], data["xa"], data["xb"],
                           ["saturation"], 4, data["prompt"], rounds=100, seed=0)
    assert boot.coef_lo[0] <= 0.0 <= boot.coef_hi[0]


def test_without_features_it_is_the_plain_bradley_terry_fit() -> None:
    data = simulate(seed=3, bias=0.0, prompts=40)
    plain = fit_strengths(*_matchups(data), 4, 0.1)
    empty = np.zeros((len(data["ia"]), 0))
    fit = fit_style(data["ia"], data["ib"], data["score"], empty, empty, [], 4)
    assert fit.features == () and np.allclose(fit.strengths, plain - plain.mean(), atol=1e-8)


def test_constant_and_collinear_features_are_dropped_with_a_reason() -> None:
    data = simulate(seed=4, bias=30.0, prompts=60)
    n = len(data["ia"])
    model_flag_a = (data["ia"] == 0).astype(float)  # only says which model made the image
    model_flag_b = (data["ib"] == 0).astype(float)
    xa = np.column_stack([data["xa"][:, 0], np.ones(n), 2.0 * data["xa"][:, 0], model_flag_a])
    xb = np.column_stack([data["xb"][:, 0], np.ones(n), 2.0 * data["xb"][:, 0], model_flag_b])
    names = ["saturation", "constant", "twice_saturation", "is_model_0"]
    fit = fit_style(data["ia"], data["ib"], data["score"], xa, xb, names, 4)
    assert fit.features == ("saturation",)
    assert "constant" in fit.dropped["constant"]
    assert "collinear" in fit.dropped["twice_saturation"]
    assert "collinear" in fit.dropped["is_model_0"]
    assert np.all(np.isfinite(fit.strengths))


def test_the_bootstrap_is_seeded() -> None:
    data = simulate(seed=5, bias=10.0, prompts=30)
    args = (data["ia"], data["ib"], data["score"], data["xa"], data["xb"], ["s"], 4,
            data["prompt"])
    one = bootstrap_style(*args, rounds=20, seed=7)
    assert np.array_equal(one.rounds, bootstrap_style(*args, rounds=20, seed=7).rounds)
    assert not np.array_equal(one.rounds, bootstrap_style(*args, rounds=20, seed=8).rounds)


def test_image_features_mean_what_they_say() -> None:
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8))
    flat_red = Image.new("RGB", (96, 64), (220, 30, 30))
    grey = Image.new("RGB", (96, 64), (128, 128, 128))
    f_noise, f_red, f_grey = map(image_features, (noise, flat_red, grey))
    assert set(f_noise) == set(PIXEL_FEATURES) and set(FEATURES) - set(PIXEL_FEATURES) == \
        {"text_area"}
    assert f_noise["log_pixels"] == pytest.approx(np.log(96 * 64))
    assert f_noise["aspect"] == pytest.approx(np.log(96 / 64))
    assert f_grey["colourfulness"] == 0.0 < f_red["colourfulness"]
    assert f_noise["sharpness"] > f_red["sharpness"] == 0.0
    assert f_noise["complexity"] > f_grey["complexity"]
    assert f_noise["contrast"] > 0.1 > 1e-9 > f_red["contrast"]
    assert f_grey["brightness"] == pytest.approx(128 / 255)
    # Hasler & Suesstrunk's formula by hand on a two-colour image
    halves = np.zeros((2, 2, 3))
    halves[0] = [255, 0, 0]
    rg, yb = halves[..., 0] - halves[..., 1], 0.5 * (halves[..., 0] + halves[..., 1]) - \
        halves[..., 2]
    expected = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
    assert colourfulness(halves) == pytest.approx(expected)


def test_text_area_counts_overlapping_boxes_once() -> None:
    box = [[0, 0], [10, 0], [10, 10], [0, 10]]
    overlapping = [[5, 0], [15, 0], [15, 10], [5, 10]]
    assert text_area([box], 20, 20) == pytest.approx(0.25)
    assert text_area([box, overlapping], 20, 20) == pytest.approx(150 / 400)
    assert text_area([[[-5, -5], [40, -5], [40, 40], [-5, 40]]], 20, 20) == 1.0


def write_log(path, data: dict, nested: bool = True) -> None:
    """A battle log with per-image features, nested on side a and flat on side b (both
    spellings are documented)."""
    import json

    with open(path, "w") as f:
        for k in range(len(data["ia"])):
            row = {"model_a": "abcd"[data["ia"][k]], "model_b": "abcd"[data["ib"][k]],
                   "winner": {1.0: "model_a", 0.0: "model_b"}.get(data["score"][k], "tie"),
                   "prompt_id": f"p{data['prompt'][k]}",
                   "features_b.saturation": float(data["xb"][k, 0]), "features_b.flat": 1.0}
            side_a = {"saturation": float(data["xa"][k, 0]), "flat": 1.0}
            row.update({"features_a": side_a} if nested else
                       {f"features_a.{n}": v for n, v in side_a.items()})
            f.write(json.dumps(row) + "\n")


def test_rate_control_prints_the_controlled_board_and_coefficients(tmp_path, capsys) -> None:
    import json

    from autojudge.cli.rate import main

    path = tmp_path / "battles.jsonl"
    write_log(path, simulate(seed=0, bias=60.0, prompts=120))
    assert main([str(path), "--control", "saturation,flat", "--bootstrap", "100",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    controlled = doc["controlled"]
    assert [c["feature"] for c in controlled["coefficients"]] == ["saturation"]
    assert controlled["coefficients"][0]["ci_low"] > 0  # the bias is found
    assert "constant" in controlled["dropped"]["flat"]
    order = [row["model"] for row in controlled["rows"]]
    assert order[-1] == "a" and set(order[:2]) == {"c", "d"}  # truth: d > c > b > a
    raw_rank = {row["model"]: row["rank"] for row in doc["models"]}
    assert all(row["raw_rank"] == raw_rank[row["model"]] for row in controlled["rows"])
    assert main([str(path), "--control", "saturation", "--bootstrap", "50"]) == 0
    shown = capsys.readouterr().out
    assert "style-controlled" in shown and "what the judge rewards" in shown


def test_rate_control_without_the_columns_is_one_line(tmp_path, capsys) -> None:
    from autojudge.cli.rate import main

    path = tmp_path / "battles.jsonl"
    write_log(path, simulate(seed=1, bias=0.0, prompts=10), nested=False)
    assert main([str(path), "--control", "colourfulness"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "features_a.colourfulness" in err \
        and "features_b.colourfulness" in err


def test_a_disconnected_log_gets_no_controlled_board(tmp_path, capsys) -> None:
    import json

    from autojudge.cli.rate import main

    path = tmp_path / "battles.jsonl"
    rows = [{"model_a": a, "model_b": b, "winner": w, "prompt_id": f"p{k}",
             "features_a.s": float(k % 3), "features_b.s": float((k + 1) % 3)}
            for k in range(20) for a, b, w in (("a", "b", "model_a" if k % 3 else "model_b"),
                                               ("c", "d", "model_b" if k % 4 else "model_a"))]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main([str(path), "--control", "s", "--bootstrap", "20", "--json"]) == 0
    controlled = json.loads(capsys.readouterr().out)["controlled"]
    assert controlled["rows"] == [] and "never linked" in controlled["note"]


def test_separation_gets_no_controlled_board() -> None:
    """A model that never lost: the battles bound neither its strength nor the effects,
    so no controlled rows (the prior would set them)."""
    from autojudge.ratings import RatingConfig, rate_encoded
    from autojudge.ratings.bradley_terry import encode_battles
    from autojudge.ratings.style_control import controlled_board

    rng = np.random.default_rng(0)
    a, b = ["top"] * 30 + ["mid"] * 30, ["mid"] * 30 + ["low"] * 30
    winner = ["model_a"] * 30 + [str(w) for w in rng.choice(["model_a", "model_b"], 30)]
    battles = encode_battles(a, b, winner)
    config = RatingConfig(bootstrap_rounds=20)
    clusters = np.arange(60)
    rows = rate_encoded(battles, clusters, config)
    xa, xb = rng.normal(size=(60, 1)), rng.normal(size=(60, 1))
    board = controlled_board(rows, battles.names, battles.ia, battles.ib, battles.score,
                             xa, xb, ["contrast"], clusters, config)
    assert board["rows"] == [] and "never lost" in board["note"]


def test_rate_control_leaves_out_battles_without_the_feature_and_says_so(tmp_path,
                                                                         capsys) -> None:
    """A run's log has text_area only where OCR read both images: those battles are
    rated, the others left out of both boards with a note; a word where a number belongs
    is one error line naming the row."""
    import json

    from autojudge.cli.rate import main

    data = simulate(seed=2, bias=60.0, prompts=80)
    path = tmp_path / "battles.jsonl"
    write_log(path, data)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows[::4]:
        del row["features_a"]["saturation"]  # this side has no value
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main([str(path), "--control", "saturation", "--bootstrap", "50", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    left = len(rows[::4])
    assert f"{left} of {len(rows)} battles lack saturation" in doc["controlled"]["left_out"]
    assert sum(r["battles"] for r in doc["models"]) == 2 * (len(rows) - left)
    rows[5]["features_b.saturation"] = "vivid"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main([str(path), "--control", "saturation"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "row 6" in err and "features_b.saturation" in err


def test_every_feature_left_out_prints_the_notes_not_an_empty_table(capsys) -> None:
    from autojudge.report.terminal import print_controlled

    controlled = {"judge": "vlm", "note": None, "coefficients": [],
                  "dropped": {"contrast": "is constant over the images"},
                  "rows": [{"model": "a", "rating": 1000.0, "ci_low": 950.0, "ci_high": 1050.0,
                            "rank": 1, "raw_rank": 1, "rank_change": 0, "battles": 10}]}
    print_controlled(controlled, "95% CI")
    shown = capsys.readouterr().out
    assert "what the judge rewards" not in shown
    assert "feature contrast left out: it is constant" in shown
