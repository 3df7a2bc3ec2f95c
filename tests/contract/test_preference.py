"""Contract + reference formulas of the learned preference scorers (PickScore, HPSv2.1),
on tiny random models of their architectures built here: a transformers CLIPModel for
PickScore, an open_clip ViT checkpoint saved as HPSv2.1's is ({"state_dict": ...})."""
from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import REPO, record_connections, run_cli
from judge_contract import PointwiseJudgeContract
from test_clip import items
from tiny_clip import TINY_ARCH, make_open_clip, make_transformers_clip

from autojudge.errors import AutojudgeError
from autojudge.judges.preference import HPSv21Judge, PickScoreJudge
from autojudge.types import Prompt


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import torch

    folder = tmp_path_factory.mktemp("tiny_preference")
    config, weights = make_open_clip(folder, seed=2)
    hps = folder / "HPS_v2.1_compressed.pt"  # the published checkpoint's layout
    torch.save({"state_dict": torch.load(weights)}, hps)
    _, other = make_open_clip(folder, seed=3)
    hps_other = folder / "other.pt"
    torch.save({"state_dict": torch.load(other)}, hps_other)
    model = make_transformers_clip(folder / "pickscore", seed=4)
    processor = folder / "clip-h-processor"  # PickScore's processor lives in another repo
    from transformers import AutoProcessor

    AutoProcessor.from_pretrained(model).save_pretrained(processor)
    return {"config": str(config), "hps": str(hps), "hps_other": str(hps_other),
            "model": str(model), "processor": str(processor)}


def pick_params(tiny) -> dict:
    return {"model": tiny["model"], "processor": tiny["processor"], "device": "cpu"}


def hps_params(tiny) -> dict:
    return {"arch": TINY_ARCH, "model_config": tiny["config"], "pretrained": tiny["hps"],
            "device": "cpu"}


class TestPickScoreContract(PointwiseJudgeContract):
    plugin_cls = PickScoreJudge
    plugin_name = "pickscore"
    import_module = "autojudge.judges.preference"
    fingerprint_changes = [{"dtype": "bfloat16"}, {"revision": "0123abc"}]
    fingerprint_invariant = [{"batch_size": 1}, {"device": "auto"}, {"cache_dir": "/tmp/x"}]

    @pytest.fixture
    def plugin_params(self, tiny):
        return pick_params(tiny)

    def sample_items(self):
        return items(4)

    def other_prompts(self):
        return [Prompt(id="empty", text="  ")]


class TestHPSv21Contract(PointwiseJudgeContract):
    plugin_cls = HPSv21Judge
    plugin_name = "hpsv21"
    import_module = "autojudge.judges.preference"
    fingerprint_changes = [{"dtype": "bfloat16"}, {"revision": "0123abc"}]
    fingerprint_invariant = [{"batch_size": 1}, {"device": "auto"}, {"cache_dir": "/tmp/x"}]

    @pytest.fixture
    def plugin_params(self, tiny):
        return hps_params(tiny)

    def sample_items(self):
        return items(4)

    def other_prompts(self):
        return [Prompt(id="empty", text="  ")]

    def test_other_weights_change_the_fingerprint(self, make_plugin, tiny):
        assert make_plugin().fingerprint() != \
            make_plugin(pretrained=tiny["hps_other"]).fingerprint()


def test_pickscore_equals_the_model_cards_formula(tiny):
    """PickScore_v1's model card: processor -> get_*_features -> normalise ->
    logit_scale.exp() * text @ image.T, on PIL images, as a user would run it."""
    import torch
    from transformers import AutoProcessor, CLIPModel

    model = CLIPModel.from_pretrained(tiny["model"]).eval()
    processor = AutoProcessor.from_pretrained(tiny["processor"])
    sample = items(6, seed=5)
    ours = PickScoreJudge("pickscore", PickScoreJudge.Config(**pick_params(tiny))).score(sample)
    for item, score in zip(sample, ours):
        image_in = processor(images=[item.image], return_tensors="pt")
        text_in = processor(text=item.prompt.text, padding=True, truncation=True,
                            max_length=77, return_tensors="pt")
        with torch.no_grad():
            image_embs = model.get_image_features(**image_in).pooler_output
            text_embs = model.get_text_features(**text_in).pooler_output
            image_embs = image_embs / image_embs.norm(dim=-1, keepdim=True)
            text_embs = text_embs / text_embs.norm(dim=-1, keepdim=True)
            reference = float(model.logit_scale.exp() * (text_embs @ image_embs.T)[0, 0])
        assert score.value == pytest.approx(reference, abs=1e-5), item.prompt.text
    assert len({round(s.value, 4) for s in ours}) > 1, "scores should differ between inputs"


def test_hpsv21_equals_the_reference_computation(tiny):
    """hpsv2's img_score: create_model_and_transforms, load checkpoint['state_dict'],
    preprocess_val, encode, normalise, the diagonal of image @ text.T."""
    import open_clip
    import torch

    open_clip.add_model_config(tiny["config"])
    model, _, preprocess = open_clip.create_model_and_transforms(TINY_ARCH, pretrained=None)
    model.load_state_dict(torch.load(tiny["hps"])["state_dict"])
    model.eval()
    tokenizer = open_clip.get_tokenizer(TINY_ARCH)
    sample = items(6, seed=6)
    ours = HPSv21Judge("hpsv21", HPSv21Judge.Config(**hps_params(tiny))).score(sample)
    for item, score in zip(sample, ours):
        with torch.no_grad():
            image = model.encode_image(preprocess(item.image.convert("RGB")).unsqueeze(0))
            text = model.encode_text(tokenizer([item.prompt.text]))
            image = image / image.norm(dim=-1, keepdim=True)
            text = text / text.norm(dim=-1, keepdim=True)
            reference = float(torch.diagonal(image @ text.T)[0])
        assert score.value == pytest.approx(reference, abs=1e-5), item.prompt.text
        assert score.raw["cosine"] == pytest.approx(reference, abs=1e-5)


@pytest.mark.parametrize("cls,needle", [(PickScoreJudge, "judge.pickscore.processor="),
                                        (HPSv21Judge, "judge.hpsv21.pretrained=")])
def test_offline_without_weights_fails_fast_in_one_line(cls, needle, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    judge = cls(cls.kind, cls.Config(cache_dir=str(tmp_path / "empty-cache")))
    attempts = record_connections(monkeypatch)
    with pytest.raises(AutojudgeError) as info:
        judge.check()
    assert attempts == []  # answered from the cache alone: no hub lookup to retry
    message = str(info.value)
    assert "\n" not in message and needle in message, message
    assert "not in the Hugging Face cache" in message


@pytest.mark.parametrize("params,needle", [
    ({"pretrained": "hf-file:xswu/HPS_v2.1_compressed.pt"}, "hf-file:ORG/REPO/FILE"),
    ({"pretrained": "/nowhere/HPS_v2.1_compressed.pt"}, "weights file not found"),
])
def test_bad_hpsv21_weights_are_one_line(params, needle, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AutojudgeError) as info:
        HPSv21Judge("hpsv21", HPSv21Judge.Config(**params)).check()
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_a_processor_folder_without_its_config_is_one_line(tiny, tmp_path):
    judge = PickScoreJudge("pickscore", PickScoreJudge.Config(
        model=tiny["model"], processor=str(tmp_path)))
    with pytest.raises(AutojudgeError, match="no preprocessor_config.json"):
        judge.check()


def test_both_scorers_run_end_to_end_with_local_weights(tiny, tmp_path):
    run = tmp_path / "run"
    proc = run_cli(["autojudge", "model=[typeset,blank]", "judge=[pickscore,hpsv21]",
                    f"judge.pickscore.model={tiny['model']}",
                    f"judge.pickscore.processor={tiny['processor']}",
                    "judge.pickscore.device=cpu",
                    f"judge.hpsv21.pretrained={tiny['hps']}", f"judge.hpsv21.arch={TINY_ARCH}",
                    f"judge.hpsv21.model_config={tiny['config']}", "judge.hpsv21.device=cpu",
                    "suite.limit=4", "ratings.bootstrap_rounds=20", "logger=none",
                    "progress=false", f"store.root={tmp_path / 'store'}",
                    f"hydra.run.dir={run}"], cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    document = json.loads((run / "leaderboard.json").read_text())
    judged = {b["judge"] for b in document["boards"]}
    assert {"pickscore", "hpsv21"} <= judged
    scores = [json.loads(line) for line in (run / "scores.jsonl").read_text().splitlines()]
    by_judge = {j: [s for s in scores if s["judge"] == j] for j in ("pickscore", "hpsv21")}
    assert all(by_judge.values()) and all(
        np.isfinite(s["score"]) for rows in by_judge.values() for s in rows)
