"""Judge validation: controlled pairs with a known better side, accuracy with a Wilson CI."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from helpers import run_cli

from autojudge.experiment.validation import (build_pairs, degrade, families_for, misspell,
                                             validate, wilson_interval)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))


def test_wilson_interval_matches_the_textbook_values():
    lo, hi = wilson_interval(18, 20)
    assert (round(lo, 4), round(hi, 4)) == (0.6990, 0.9721)
    assert wilson_interval(0, 10)[0] == pytest.approx(0.0, abs=1e-12)
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0, abs=1e-12)
    lo, hi = wilson_interval(5, 10)
    assert lo < 0.5 < hi and abs((0.5 - lo) - (hi - 0.5)) < 1e-9
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_misspellings_differ_from_the_text():
    for i, text in enumerate(["FRESH BREAD", "Route 66", "No Parking", "Ice Cold Beer"] * 3):
        wrong = misspell(text, i)
        assert wrong != text and len(wrong) == len(text)


def test_pairs_are_position_balanced_and_degraded(tmp_path):
    import yaml

    from autojudge.experiment.validation import CASES

    cases = yaml.safe_load(CASES.read_text())
    for family in ("text", "alignment", "quality"):
        pairs = build_pairs(family, 6, cases)
        assert [b for _, b, _ in pairs] == ["model_a", "model_b"] * 3
        for pair, better, _ in pairs:
            assert pair.a.image_sha != pair.b.image_sha
    clean = build_pairs("quality", 1, cases)[0][0].a.image
    for spec in cases["quality"]["degradations"]:
        assert degrade(clean, spec).tobytes() != clean.tobytes()


def test_families_follow_the_judge_kind():
    assert families_for({"kind": "ocr"}) == ("text",)
    assert families_for({"kind": "clip"}) == ("alignment",)
    assert families_for({"kind": "aesthetic"}) == ("quality",)
    assert families_for({"kind": "vlm", "criterion": "text_rendering"}) == ("text",)


@pytest.mark.slow
def test_ocr_validation_runs_offline_and_is_accurate():
    rows = validate(["judge=[ocr]"], n=6)
    assert len(rows) == 1
    row = rows[0]
    assert row["judge"] == "ocr" and row["family"] == "text" and row["judged"] == 6
    assert row["accuracy"] >= 5 / 6 and row["ci_low"] < row["accuracy"] <= row["ci_high"]


def test_a_position_biased_vlm_scores_chance(monkeypatch):
    from vlm_server import ScriptedVLM

    monkeypatch.setenv("VALIDATE_VLM_KEY", "sk-x")
    with ScriptedVLM() as server:
        common = [f"judge.vlm.base_url={server.base_url}", "judge.vlm.api_key_env=VALIDATE_VLM_KEY",
                  "judge.vlm.backoff_s=0"]
        biased = validate(["judge=[vlm]", "judge.vlm.model=always-first", *common], n=4)
    assert {r["family"] for r in biased} == {"quality", "alignment"}
    for row in biased:
        assert row["ties"] == 4 and row["accuracy"] == 0.5 and row["failed"] == 0


@pytest.mark.slow
def test_cli_prints_json(tmp_path):
    out = tmp_path / "v.json"
    proc = run_cli(["autojudge.validate", "judge=[ocr]", "--n", "2", "--json", "--out", str(out)],
                   timeout=300)
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert document["results"][0]["judge"] == "ocr"
    assert json.loads(out.read_text()) == document
    bad = run_cli(["autojudge.validate", "judge=[nope]"], timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_k_wise_groups_hold_the_pairs_images_and_distinct_worse_ones():
    import yaml

    from autojudge.experiment.validation import CASES, build_pairs
    from autojudge.experiment.validation_kwise import build_groups

    cases = yaml.safe_load(CASES.read_text())
    for family in ("text", "alignment", "quality"):
        pairs = build_pairs(family, 6, cases)
        groups = build_groups(family, 6, 4, cases)
        assert len(groups) == 6
        for (pair, better, _), (prompt, items) in zip(pairs, groups):
            worse = pair.b if better == "model_a" else pair.a
            assert prompt == pair.prompt and len({it.image_sha for it in items.values()}) == 4
            assert items["better"].image_sha != worse.image_sha
            assert items["worse1"].image_sha == worse.image_sha  # the same two images


def test_a_k_wise_vlm_is_validated_beside_its_pairwise_verdicts(monkeypatch):
    """judge.vlm.k=4: every family gets a K-wise row; a judge that always prefers the
    brighter image ranks the groups as it compares the pairs, so the rankings agree with
    its pairwise verdicts; a position-biased one ties every known pair (the reversed
    second call flips every pair), as swapping ties its pairwise calls."""
    from vlm_server import ScriptedVLM

    from autojudge.experiment.validation import format_table

    monkeypatch.setenv("VALIDATE_VLM_KEY", "sk-x")
    with ScriptedVLM() as server:
        common = [f"judge.vlm.base_url={server.base_url}", "judge=[vlm]",
                  "judge.vlm.api_key_env=VALIDATE_VLM_KEY", "judge.vlm.backoff_s=0",
                  "judge.vlm.k=4", "judge.vlm.criterion=visual_quality"]
        start = len(server.requests)
        rows = validate(["judge.vlm.model=prefer-brighter", *common], n=4)
        assert len(server.requests) - start == 4 * 2 + 4 * 2  # 4 pairs x 2, 4 groups x 2
        biased = validate(["judge.vlm.model=always-first", *common], n=4)
    pairwise, kwise = rows
    assert kwise["family"] == "quality k=4" and kwise["k"] == 4 and kwise["groups"] == 4
    assert kwise["pairs"] == 12 and kwise["failed"] == 0
    assert kwise["agreement_n"] == 4 and kwise["agreement"] == 1.0
    assert 0 < kwise["agreement_ci_low"] < 1.0 == kwise["agreement_ci_high"]
    _, biased_kwise = biased
    assert biased_kwise["ties"] == 12 and biased_kwise["accuracy"] == 0.5
    assert biased_kwise["agreement"] == 1.0  # ties both ways
    table = format_table(rows)
    assert "quality k=4" in table and "vs its pairwise verdicts on the same two images: " \
        "100.0% the same of 4" in table
