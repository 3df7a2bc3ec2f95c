"""Contract + specifics of the aesthetic judge (LAION improved aesthetic predictor head) on a
tiny random CLIP backbone and a random head with the real architecture."""
from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from judge_contract import PointwiseJudgeContract
from PIL import Image, ImageFilter
from tiny_clip import TINY_ARCH, make_aesthetic_head, make_open_clip

from autojudge.errors import AutojudgeError
from autojudge.judges.aesthetic import AestheticJudge, build_head, file_sha256, load_manifest
from autojudge.judges.clip_backbone import clear_backbones
from autojudge.judges.clip_score import CLIPScoreJudge
from autojudge.types import JudgeItem, Prompt


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_aesthetic")
    config, weights = make_open_clip(folder, seed=0)
    head = make_aesthetic_head(folder / "head.pth", in_dim=16, seed=0)
    head2 = make_aesthetic_head(folder / "head2.pth", in_dim=16, seed=1)
    return {"config": str(config), "weights": str(weights), "head": str(head),
            "head2": str(head2), "sha": file_sha256(head), "sha2": file_sha256(head2)}


def params(tiny) -> dict:
    return {"arch": TINY_ARCH, "model_config": tiny["config"], "pretrained": tiny["weights"],
            "device": "cpu", "head": tiny["head"], "sha256": tiny["sha"]}


def sample(n: int = 4, seed: int = 0) -> list[JudgeItem]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        im = Image.fromarray(rng.integers(0, 255, (40 + 8 * i, 48, 3), dtype=np.uint8))
        out.append(JudgeItem(Prompt(id=f"p{i}", text=f"prompt {i}"), im,
                             hashlib.sha256(im.tobytes()).hexdigest()))
    return out


class TestAestheticContract(PointwiseJudgeContract):
    plugin_cls = AestheticJudge
    plugin_name = "aesthetic"
    import_module = "autojudge.judges.aesthetic"
    fingerprint_invariant = [{"batch_size": 1}, {"device": "auto"}, {"weights_dir": "/tmp/w"}]

    @pytest.fixture
    def plugin_params(self, tiny):
        return params(tiny)

    def sample_items(self):
        return sample()

    def test_fingerprint_changes_with_output_params(self, make_plugin, tiny):
        base = make_plugin().fingerprint()
        assert make_plugin(head=tiny["head2"], sha256=tiny["sha2"]).fingerprint() != base
        assert make_plugin(dtype="bfloat16").fingerprint() != base


def test_head_has_the_improved_aesthetic_predictor_layout():
    head = build_head(768)
    keys = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert keys == {"layers.0.weight": (1024, 768), "layers.0.bias": (1024,),
                    "layers.2.weight": (128, 1024), "layers.2.bias": (128,),
                    "layers.4.weight": (64, 128), "layers.4.bias": (64,),
                    "layers.6.weight": (16, 64), "layers.6.bias": (16,),
                    "layers.7.weight": (1, 16), "layers.7.bias": (1,)}


def test_score_is_the_head_on_the_normalised_clip_embedding(tiny):
    import open_clip
    import torch

    judge = AestheticJudge("aesthetic", AestheticJudge.Config(**params(tiny)))
    items = sample(3, seed=2)
    scores = judge.score(items)
    model, _, preprocess = open_clip.create_model_and_transforms(
        TINY_ARCH, pretrained=tiny["weights"])
    head = build_head(16)
    head.load_state_dict(torch.load(tiny["head"], weights_only=True))
    head.eval()
    with torch.no_grad():
        feats = model.eval().encode_image(torch.stack([preprocess(i.image) for i in items]))
        feats = feats / feats.norm(dim=-1, keepdim=True)
        expected = head(feats).squeeze(-1).tolist()
    for s, e in zip(scores, expected):
        assert s.raw["prediction"] == pytest.approx(e, abs=1e-4)
        assert s.value == pytest.approx(min(max(e, 0.0), 10.0), abs=1e-4)


def test_clip_and_aesthetic_encode_each_image_once(tiny, tmp_path):
    """Same backbone -> one image-tower pass per image for both judges (and none on a rerun)."""
    from autojudge.store.index import Store

    store = Store(tmp_path / "store")
    clear_backbones()
    clip = CLIPScoreJudge("clip", CLIPScoreJudge.Config(
        arch=TINY_ARCH, model_config=tiny["config"], pretrained=tiny["weights"], device="cpu"))
    aes = AestheticJudge("aesthetic", AestheticJudge.Config(**params(tiny)))
    for judge in (clip, aes):
        judge.attach_store(store)
    items = sample(5, seed=9)
    clip.score(items)
    aes.score(items)
    assert clip.backbone is aes.backbone
    counts = clip.backbone.counts.as_dict()
    assert counts["images_encoded"] == 5 and counts["images_from_memory"] == 5, counts
    clear_backbones()
    aes2 = AestheticJudge("aesthetic", AestheticJudge.Config(**params(tiny)))
    aes2.attach_store(store)
    aes2.score(items)
    assert aes2.backbone.counts.images_encoded == 0
    assert aes2.backbone.counts.images_from_store == 5


def test_degraded_images_change_the_score(tiny):
    judge = AestheticJudge("aesthetic", AestheticJudge.Config(**params(tiny)))
    clean = sample(1, seed=4)[0]
    blurred = clean.image.filter(ImageFilter.GaussianBlur(3))
    buffer = io.BytesIO()
    clean.image.save(buffer, format="JPEG", quality=5)
    crushed = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    degraded = [JudgeItem(clean.prompt, im, hashlib.sha256(im.tobytes()).hexdigest())
                for im in (blurred, crushed)]
    values = [s.raw["prediction"] for s in judge.score([clean, *degraded])]
    assert len(set(values)) == 3


def test_sha256_mismatch_is_refused(tiny):
    judge = AestheticJudge("aesthetic", AestheticJudge.Config(**{**params(tiny),
                                                                  "sha256": "0" * 64}))
    with pytest.raises(AutojudgeError, match="sha256 mismatch") as info:
        judge.check()
    assert "\n" not in str(info.value)


def test_unpinned_head_prints_its_sha256(tiny):
    judge = AestheticJudge("aesthetic", AestheticJudge.Config(**{**params(tiny), "sha256": ""}))
    with pytest.raises(AutojudgeError) as info:
        judge.check()
    assert f"judge.aesthetic.sha256={tiny['sha']}" in str(info.value)


def test_manifest_names_the_laion_head_and_offline_download_fails_in_one_line(tmp_path,
                                                                              monkeypatch, tiny):
    manifest = load_manifest()
    entry = manifest["sac+logos+ava1-l14-linearMSE"]
    assert entry["url"].endswith("sac+logos+ava1-l14-linearMSE.pth") and entry["embed_dim"] == 768
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    judge = AestheticJudge("aesthetic", AestheticJudge.Config(
        **{**params(tiny), "head": "sac+logos+ava1-l14-linearMSE", "sha256": "",
           "weights_dir": str(tmp_path)}))
    with pytest.raises(AutojudgeError) as info:
        judge.check()
    message = str(info.value)
    assert "judge.aesthetic.head=/path/to/sac+logos+ava1-l14-linearMSE.pth" in message
    assert "\n" not in message


def test_head_for_another_embedding_size_is_a_clear_error(tiny, tmp_path):
    head = make_aesthetic_head(tmp_path / "h768.pth", in_dim=768)
    judge = AestheticJudge("aesthetic", AestheticJudge.Config(
        **{**params(tiny), "head": str(head), "sha256": file_sha256(head)}))
    with pytest.raises(AutojudgeError, match="expects 768-d embeddings"):
        judge.score(sample(1))
