"""Contract + specifics of the CLIP score judge, on tiny random CLIP models built here
(open_clip from a model config + a saved weights file; transformers from save_pretrained)."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from helpers import record_connections
from judge_contract import PointwiseJudgeContract
from PIL import Image
from tiny_clip import TINY_ARCH, make_open_clip, make_transformers_clip

from autojudge.errors import AutojudgeError
from autojudge.judges.clip_backbone import BackboneSpec, clear_backbones, get_backbone
from autojudge.judges.clip_score import CLIPScoreJudge
from autojudge.types import JudgeItem, Prompt


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_clip")
    config, weights = make_open_clip(folder, seed=0)
    _, weights1 = make_open_clip(folder, seed=1)
    hf_dir = make_transformers_clip(folder / "openai-tiny-clip")
    return {"config": str(config), "weights": str(weights), "weights1": str(weights1),
            "hf_dir": str(hf_dir)}


def open_clip_params(tiny) -> dict:
    return {"arch": TINY_ARCH, "model_config": tiny["config"], "pretrained": tiny["weights"],
            "device": "cpu"}


def images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    sizes = [(48, 40), (32, 32), (64, 24), (40, 56), (33, 35), (80, 60)]
    return [Image.fromarray(rng.integers(0, 255, (*sizes[i % len(sizes)][::-1], 3),
                                         dtype=np.uint8)) for i in range(n)]


PROMPTS = ["a photo of a cat", "a red bicycle leaning on a wall", "a bakery sign that reads "
           "FRESH BREAD", "two dogs playing in the snow", "an astronaut riding a horse",
           "a bowl of ramen"]


def items(n: int = 4, seed: int = 0) -> list[JudgeItem]:
    return [JudgeItem(Prompt(id=f"p{i}", text=PROMPTS[i % len(PROMPTS)]), im,
                      hashlib.sha256(im.tobytes()).hexdigest())
            for i, im in enumerate(images(n, seed))]


class TestCLIPContract(PointwiseJudgeContract):
    plugin_cls = CLIPScoreJudge
    plugin_name = "clip"
    import_module = "autojudge.judges.clip_score"
    fingerprint_changes = [{"dtype": "bfloat16"}, {"arch": "ViT-B-16", "pretrained": "openai"},
                           {"backend": "transformers", "arch": "openai/clip-vit-base-patch32"}]
    fingerprint_invariant = [{"batch_size": 1}, {"device": "auto"}, {"cache_dir": "/tmp/x"}]

    @pytest.fixture
    def plugin_params(self, tiny):
        return open_clip_params(tiny)

    def sample_items(self):
        return items(4)

    def other_prompts(self):
        return [Prompt(id="empty", text="  ")]

    def test_other_weights_change_the_fingerprint(self, make_plugin, tiny):
        assert make_plugin().fingerprint() != make_plugin(pretrained=tiny["weights1"]).fingerprint()


class TestCLIPTransformersContract(TestCLIPContract):
    @pytest.fixture
    def plugin_params(self, tiny):
        return {"backend": "transformers", "arch": tiny["hf_dir"], "device": "cpu"}

    def test_other_weights_change_the_fingerprint(self):
        pytest.skip("covered by the open_clip backend")


def test_scores_equal_torchmetrics_clipscore(tiny):
    """Same tiny random transformers CLIP, same inputs: torchmetrics' CLIPScore per image."""
    import torch
    from torchmetrics.multimodal.clip_score import CLIPScore
    from transformers import CLIPModel, CLIPProcessor

    class Features(torch.nn.Module):  # transformers 5: *_features return an output object
        def __init__(self, model):
            super().__init__()
            self.model, self.config = model, model.config

        def get_image_features(self, *args, **kwargs):
            return self.model.get_image_features(*args, **kwargs).pooler_output

        def get_text_features(self, *args, **kwargs):
            return self.model.get_text_features(*args, **kwargs).pooler_output

    model = CLIPModel.from_pretrained(tiny["hf_dir"]).eval()
    processor = CLIPProcessor.from_pretrained(tiny["hf_dir"])
    metric = CLIPScore(model_name_or_path=lambda: (Features(model), processor))
    judge = CLIPScoreJudge("clip", CLIPScoreJudge.Config(backend="transformers",
                                                         arch=tiny["hf_dir"], device="cpu"))
    sample = items(6, seed=3)
    ours = judge.score(sample)
    for item, score in zip(sample, ours):
        metric.reset()
        pixels = torch.from_numpy(np.asarray(item.image).copy()).permute(2, 0, 1)
        metric.update(pixels, item.prompt.text)
        reference = float(metric.compute())
        assert score.value == pytest.approx(reference, abs=1e-4), (item.prompt.text, score)
    assert len({round(s.value, 3) for s in ours}) > 1, "scores should differ between inputs"


@pytest.mark.parametrize("backend", ["open_clip", "transformers"])
def test_batched_equals_one_by_one_without_cache(tiny, backend):
    params = open_clip_params(tiny) if backend == "open_clip" else \
        {"backend": "transformers", "arch": tiny["hf_dir"], "device": "cpu"}
    sample = items(5, seed=7)
    clear_backbones()
    batched = [s.value for s in CLIPScoreJudge("clip", CLIPScoreJudge.Config(**params)).score(sample)]
    single = []
    for item in sample:
        clear_backbones()  # fresh model, empty embedding cache: really one image at a time
        single.append(CLIPScoreJudge("clip", CLIPScoreJudge.Config(**params)).score([item])[0].value)
    assert np.allclose(batched, single, atol=1e-4), (batched, single)


@pytest.mark.parametrize("backend", ["open_clip", "transformers"])
def test_long_prompts_are_truncated_explicitly_and_counted(tiny, backend):
    params = open_clip_params(tiny) if backend == "open_clip" else \
        {"backend": "transformers", "arch": tiny["hf_dir"], "device": "cpu"}
    judge = CLIPScoreJudge("clip", CLIPScoreJudge.Config(**params))
    image = images(1)[0]
    sha = hashlib.sha256(image.tobytes()).hexdigest()
    long = JudgeItem(Prompt(id="long", text="word " * 100), image, sha)
    fits = JudgeItem(Prompt(id="fits", text="word " * 75), image, sha)  # 75 + start + end = 77
    s_long, s_fits, again = judge.score([long, fits, long])
    assert s_long.raw["truncated"] is True and s_long.raw["prompt_tokens"] == 102
    assert s_fits.raw["truncated"] is False and s_fits.raw["prompt_tokens"] == 77
    assert s_long.value == pytest.approx(s_fits.value, abs=1e-4)  # cut to the first 75 words
    assert judge.truncated_prompts == 1 and judge.run_stats()["truncated_prompts"] == 1


def test_embeddings_are_cached_in_the_store_and_reused(tiny, tmp_path):
    from autojudge.store.index import Store

    store = Store(tmp_path / "store")
    sample = items(4, seed=11)
    clear_backbones()
    judge = CLIPScoreJudge("clip", CLIPScoreJudge.Config(**open_clip_params(tiny)))
    judge.attach_store(store)
    first = judge.score(sample + sample[:2])
    counts = judge.backbone.counts
    assert counts.images_encoded == 4 and counts.images_from_store == 0
    clear_backbones()  # a new process: nothing in memory
    judge2 = CLIPScoreJudge("clip", CLIPScoreJudge.Config(**open_clip_params(tiny)))
    judge2.attach_store(store)
    second = judge2.score(sample)
    assert judge2.backbone.counts.images_encoded == 0
    assert judge2.backbone.counts.images_from_store == 4
    assert [s.value for s in second] == pytest.approx([s.value for s in first[:4]], abs=1e-9)


def test_different_backbones_do_not_share_embeddings(tiny, tmp_path):
    from autojudge.store.index import Store

    store = Store(tmp_path / "store")
    sample = items(2, seed=5)
    clear_backbones()
    a = CLIPScoreJudge("a", CLIPScoreJudge.Config(**open_clip_params(tiny)))
    b = CLIPScoreJudge("b", CLIPScoreJudge.Config(**{**open_clip_params(tiny),
                                                      "pretrained": tiny["weights1"]}))
    for j in (a, b):
        j.attach_store(store)
    va, vb = a.score(sample), b.score(sample)
    assert a.backbone is not b.backbone and b.backbone.counts.images_encoded == 2
    assert [s.value for s in va] != [s.value for s in vb]


def test_offline_without_weights_fails_fast_in_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    judge = CLIPScoreJudge("clip")  # ViT-B-32 / openai, not in any cache here
    attempts = record_connections(monkeypatch)
    with pytest.raises(AutojudgeError) as info:
        judge.check()
    assert attempts == []  # answered from the cache alone: no hub lookup to retry
    message = str(info.value)
    assert "\n" not in message and "judge.clip.pretrained=" in message, message
    assert "ViT-B-32" in message


@pytest.mark.parametrize("params,needle", [
    ({"pretrained": "/nowhere/weights.bin"}, "weights file not found"),
    ({"pretrained": "not-a-tag"}, "not a pretrained tag"),
    ({"arch": "ViT-B-3", "pretrained": "openai"}, "did you mean"),
    ({"backend": "transformers", "arch": "/nowhere/clip"}, "model folder not found"),
    ({"backend": "onnx"}, "backend 'onnx'"),
    ({"dtype": "float8"}, "dtype 'float8'"),
])
def test_bad_weights_config_is_one_line(params, needle, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AutojudgeError) as info:
        CLIPScoreJudge("clip", CLIPScoreJudge.Config(**params)).check()
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_backbone_fingerprint_ignores_device_and_tracks_file_content(tiny, tmp_path):
    spec = BackboneSpec(arch=TINY_ARCH, pretrained=tiny["weights"], model_config=tiny["config"])
    moved = tmp_path / "renamed.pt"
    moved.write_bytes(open(tiny["weights"], "rb").read())
    same_bytes = BackboneSpec(arch=TINY_ARCH, pretrained=str(moved), model_config=tiny["config"])
    assert spec.fingerprint()["pretrained"]["digest"] == \
        same_bytes.fingerprint()["pretrained"]["digest"]
    assert BackboneSpec(**{**spec.__dict__, "device": "cuda"}).fingerprint() == spec.fingerprint()
    json.dumps(spec.fingerprint())
    assert get_backbone(spec) is get_backbone(BackboneSpec(**spec.__dict__))


def test_transformers_hub_id_is_not_taken_for_a_missing_folder(monkeypatch):
    # "openai/clip-vit-base-patch32" has a slash but is a hub id: offline and not cached,
    # the one line says so, instead of "folder not found"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    judge = CLIPScoreJudge("clip", CLIPScoreJudge.Config(
        backend="transformers", arch="openai/clip-vit-base-patch32"))
    with pytest.raises(AutojudgeError) as info:
        judge.check()
    message = str(info.value)
    assert "\n" not in message and "not in the Hugging Face cache" in message, message
    assert "folder not found" not in message
