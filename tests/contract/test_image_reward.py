"""Contract + reference computation of the ImageReward judge, on a tiny random model of the
official layout built here: a state dict with the official key names (blip.visual_encoder.*,
blip.text_encoder.*, mlp.layers.*) saved as ImageReward.pt is, a tiny BERT wordpiece
tokenizer folder, and a model_config JSON with the tiny sizes.

The reference is the official forward written out in plain torch on the original key names
(ImageReward.score -> BLIP's timm ViT, med.py's BertModel in multimodal mode, the MLP),
with the official torchvision transform: it shares nothing with the judge's key mapping
or its transformers modules."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from helpers import REPO, record_connections, run_cli
from judge_contract import PointwiseJudgeContract
from PIL import Image

from autojudge.errors import AutojudgeError
from autojudge.judges.image_reward import ImageRewardJudge
from autojudge.types import JudgeItem, Prompt

VISION = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
          "intermediate_size": 64, "image_size": 32, "patch_size": 8}
TEXT = {"hidden_size": 24, "num_hidden_layers": 2, "num_attention_heads": 3,
        "intermediate_size": 48, "max_position_embeddings": 40}
HEAD = [1024, 128, 64, 16, 1]  # the official MLP's widths
WORDS = ["a", "photo", "of", "cat", "red", "bicycle", "on", "wall", "sign", "that", "reads",
         "fresh", "bread", "two", "dogs", "in", "the", "snow", "astronaut", "horse", "bowl"]
PROMPTS = ["a photo of a cat", "a red bicycle leaning on a wall",
           "a bakery sign that reads FRESH BREAD", "two dogs playing in the snow",
           "an astronaut riding a horse, " * 6 + "at dusk",  # > 35 tokens: truncated
           "Ünïcode façade, punctuation!?"]


def make_tokenizer(folder):
    """A tiny BERT wordpiece vocabulary: BERT's special tokens, some words, letters."""
    from transformers import BertTokenizer

    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ",", "!", "?"] + WORDS + \
        [c for c in letters if c not in WORDS] + [f"##{c}" for c in letters]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer(str(folder / "vocab.txt"))
    tokenizer.save_pretrained(str(folder))
    return len(vocab) + 2  # BLIP adds [DEC] and [ENC]


def official_state(vocab: int, seed: int) -> dict:
    """Random tensors under the official ImageReward.pt key names and shapes."""
    import torch

    g = torch.Generator().manual_seed(seed)
    D, I_v, P = VISION["hidden_size"], VISION["intermediate_size"], VISION["patch_size"]
    N = (VISION["image_size"] // P) ** 2 + 1
    H, I_t, L = TEXT["hidden_size"], TEXT["intermediate_size"], TEXT["max_position_embeddings"]
    shapes = {"blip.visual_encoder.cls_token": (1, 1, D),
              "blip.visual_encoder.pos_embed": (1, N, D),
              "blip.visual_encoder.patch_embed.proj.weight": (D, 3, P, P),
              "blip.visual_encoder.patch_embed.proj.bias": (D,),
              "blip.visual_encoder.norm.weight": (D,), "blip.visual_encoder.norm.bias": (D,),
              "blip.vision_proj.weight": (256, D), "blip.vision_proj.bias": (256,),
              "blip.text_proj.weight": (256, H), "blip.text_proj.bias": (256,),
              "blip.text_encoder.embeddings.word_embeddings.weight": (vocab, H),
              "blip.text_encoder.embeddings.position_embeddings.weight": (L, H),
              "blip.text_encoder.embeddings.LayerNorm.weight": (H,),
              "blip.text_encoder.embeddings.LayerNorm.bias": (H,)}
    for i in range(VISION["num_hidden_layers"]):
        b = f"blip.visual_encoder.blocks.{i}."
        for name, shape in {"norm1": (D,), "norm2": (D,), "attn.qkv": (3 * D, D),
                            "attn.proj": (D, D), "mlp.fc1": (I_v, D), "mlp.fc2": (D, I_v)}.items():
            shapes[f"{b}{name}.weight"], shapes[f"{b}{name}.bias"] = shape, shape[:1]
    for i in range(TEXT["num_hidden_layers"]):
        b = f"blip.text_encoder.encoder.layer.{i}."
        parts = {"attention.self.query": (H, H), "attention.self.key": (H, H),
                 "attention.self.value": (H, H), "attention.output.dense": (H, H),
                 "attention.output.LayerNorm": (H,), "crossattention.self.query": (H, H),
                 "crossattention.self.key": (H, D), "crossattention.self.value": (H, D),
                 "crossattention.output.dense": (H, H), "crossattention.output.LayerNorm": (H,),
                 "intermediate.dense": (I_t, H), "output.dense": (H, I_t),
                 "output.LayerNorm": (H,)}
        for name, shape in parts.items():
            shapes[f"{b}{name}.weight"], shapes[f"{b}{name}.bias"] = shape, shape[:1]
    for index, (n_in, n_out) in zip((0, 2, 4, 6, 7), zip([H] + HEAD, HEAD)):
        shapes[f"mlp.layers.{index}.weight"], shapes[f"mlp.layers.{index}.bias"] = \
            (n_out, n_in), (n_out,)
    state = {}
    for key, shape in shapes.items():
        t = torch.randn(shape, generator=g)
        if "norm" in key.lower() and key.endswith("weight") and len(shape) == 1:
            t = 1.0 + 0.1 * t  # LayerNorm gains near 1, so a swapped mapping shows
        elif len(shape) >= 2 and "embed" not in key and "token" not in key:
            t = t / float(np.prod(shape[1:])) ** 0.5
        else:
            t = 0.1 * t
        state[key] = t
    # the official BertEmbeddings registers position_ids as a saved buffer
    state["blip.text_encoder.embeddings.position_ids"] = torch.arange(L).expand((1, -1))
    return state


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import torch

    folder = tmp_path_factory.mktemp("tiny_imagereward")
    vocab = make_tokenizer(folder / "bert-tiny")
    config = folder / "tiny-blip.json"
    config.write_text(json.dumps({"vision": VISION, "text": {**TEXT, "vocab_size": vocab}}))
    state = official_state(vocab, seed=7)
    torch.save(state, folder / "ImageReward.pt")  # ImageReward.load: torch.load -> state
    torch.save(official_state(vocab, seed=8), folder / "other.pt")
    return {"pretrained": str(folder / "ImageReward.pt"), "other": str(folder / "other.pt"),
            "tokenizer": str(folder / "bert-tiny"), "model_config": str(config),
            "state": state}


def params(tiny) -> dict:
    return {"pretrained": tiny["pretrained"], "tokenizer": tiny["tokenizer"],
            "model_config": tiny["model_config"], "device": "cpu"}


def sample(n: int, seed: int = 0) -> list[JudgeItem]:
    rng = np.random.default_rng(seed)
    sizes = [(48, 40), (32, 32), (64, 24), (40, 56), (33, 35), (80, 60)]
    out = []
    for i in range(n):
        w, h = sizes[i % len(sizes)]
        channels = 4 if i % 3 == 2 else 3  # RGBA: resized before convert("RGB")
        image = Image.fromarray(rng.integers(0, 255, (h, w, channels), dtype=np.uint8))
        out.append(JudgeItem(Prompt(id=f"p{i}", text=PROMPTS[i % len(PROMPTS)]), image,
                             hashlib.sha256(image.tobytes()).hexdigest()))
    return out


class TestImageRewardContract(PointwiseJudgeContract):
    plugin_cls = ImageRewardJudge
    plugin_name = "imagereward"
    import_module = "autojudge.judges.image_reward"
    fingerprint_changes = [{"dtype": "bfloat16"}, {"revision": "0123abc"},
                           {"tokenizer": "bert-base-cased"}]
    fingerprint_invariant = [{"batch_size": 1}, {"device": "auto"}, {"cache_dir": "/tmp/x"}]

    @pytest.fixture
    def plugin_params(self, tiny):
        return params(tiny)

    def sample_items(self):
        return sample(6)

    def other_prompts(self):
        return [Prompt(id="empty", text="  ")]

    def test_other_weights_change_the_fingerprint(self, make_plugin, tiny):
        assert make_plugin().fingerprint() != make_plugin(pretrained=tiny["other"]).fingerprint()


# ----------------------------------------------------------- the official forward, in torch

def _attention(x, kv, s, prefix, mask, heads, eps=1e-12):
    """med.py BertAttention (self or cross): BertSelfAttention + BertSelfOutput."""
    import torch.nn.functional as F

    B, T, H = x.shape
    split = lambda t: t.view(B, t.shape[1], heads, H // heads).permute(0, 2, 1, 3)  # noqa: E731
    lin = lambda t, n: F.linear(t, s[f"{prefix}{n}.weight"], s[f"{prefix}{n}.bias"])  # noqa: E731
    q, k, v = split(lin(x, "self.query")), split(lin(kv, "self.key")), split(lin(kv, "self.value"))
    scores = q @ k.transpose(-1, -2) / (H // heads) ** 0.5
    if mask is not None:
        scores = scores + mask
    ctx = (scores.softmax(-1) @ v).permute(0, 2, 1, 3).reshape(B, T, H)
    return F.layer_norm(lin(ctx, "output.dense") + x, (H,), s[f"{prefix}output.LayerNorm.weight"],
                        s[f"{prefix}output.LayerNorm.bias"], eps)


def _visual_encoder(pixels, s):
    """BLIP's VisionTransformer.forward (timm blocks, LayerNorm eps 1e-6, exact GELU)."""
    import torch
    import torch.nn.functional as F

    v = {k[len("blip.visual_encoder."):]: t for k, t in s.items()
         if k.startswith("blip.visual_encoder.")}
    D, heads = VISION["hidden_size"], VISION["num_attention_heads"]
    x = F.conv2d(pixels, v["patch_embed.proj.weight"], v["patch_embed.proj.bias"],
                 stride=VISION["patch_size"]).flatten(2).transpose(1, 2)
    x = torch.cat([v["cls_token"].expand(x.shape[0], -1, -1), x], dim=1)
    x = x + v["pos_embed"][:, :x.size(1), :]
    ln = lambda t, n: F.layer_norm(t, (D,), v[f"{n}.weight"], v[f"{n}.bias"], 1e-6)  # noqa: E731
    for i in range(VISION["num_hidden_layers"]):
        b = f"blocks.{i}."
        B, N, _ = x.shape
        qkv = F.linear(ln(x, b + "norm1"), v[b + "attn.qkv.weight"], v[b + "attn.qkv.bias"])
        q, k, val = qkv.reshape(B, N, 3, heads, D // heads).permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * (D // heads) ** -0.5).softmax(dim=-1)
        h = (attn @ val).transpose(1, 2).reshape(B, N, D)
        x = x + F.linear(h, v[b + "attn.proj.weight"], v[b + "attn.proj.bias"])
        h = F.gelu(F.linear(ln(x, b + "norm2"), v[b + "mlp.fc1.weight"], v[b + "mlp.fc1.bias"]))
        x = x + F.linear(h, v[b + "mlp.fc2.weight"], v[b + "mlp.fc2.bias"])
    return ln(x, "norm")


def official_score(s, tokenizer, prompt: str, image) -> float:
    """ImageReward.score(prompt, image) on state dict `s`, written from the official code."""
    import torch
    import torch.nn.functional as F
    from torchvision.transforms import (CenterCrop, Compose, InterpolationMode, Normalize,
                                        Resize, ToTensor)

    size = VISION["image_size"]
    transform = Compose([Resize(size, interpolation=InterpolationMode.BICUBIC), CenterCrop(size),
                         lambda im: im.convert("RGB"), ToTensor(),
                         Normalize((0.48145466, 0.4578275, 0.40821073),
                                   (0.26862954, 0.26130258, 0.27577711))])
    text = tokenizer(prompt, padding="max_length", truncation=True, max_length=35,
                     return_tensors="pt")
    with torch.no_grad():
        image_embeds = _visual_encoder(transform(image).unsqueeze(0), s)
        t = {k[len("blip.text_encoder."):]: w for k, w in s.items()
             if k.startswith("blip.text_encoder.")}
        ids, H = text.input_ids, TEXT["hidden_size"]
        h = t["embeddings.word_embeddings.weight"][ids] + \
            t["embeddings.position_embeddings.weight"][:ids.shape[1]]
        h = F.layer_norm(h, (H,), t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"],
                         1e-12)
        mask = (1.0 - text.attention_mask[:, None, None, :].float()) * -10000.0
        heads = TEXT["num_attention_heads"]
        for i in range(TEXT["num_hidden_layers"]):
            b = f"encoder.layer.{i}."
            h = _attention(h, h, t, b + "attention.", mask, heads)
            a = _attention(h, image_embeds, t, b + "crossattention.", None, heads)  # all ones
            inner = F.gelu(F.linear(a, t[b + "intermediate.dense.weight"],
                                    t[b + "intermediate.dense.bias"]))
            out = F.linear(inner, t[b + "output.dense.weight"], t[b + "output.dense.bias"])
            h = F.layer_norm(out + a, (H,), t[b + "output.LayerNorm.weight"],
                             t[b + "output.LayerNorm.bias"], 1e-12)
        r = h[:, 0, :].float()
        for index in (0, 2, 4, 6, 7):  # Linear, Dropout, ... : no activation in between
            r = F.linear(r, s[f"mlp.layers.{index}.weight"], s[f"mlp.layers.{index}.bias"])
        return ((r - 0.16717362830052426) / 1.0333394966054072).item()


def official_tokenizer(folder):
    """blip.init_tokenizer, with the tiny vocabulary in place of bert-base-uncased."""
    from transformers import BertTokenizer

    tokenizer = BertTokenizer.from_pretrained(folder)
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tokenizer


def test_score_equals_the_official_computation(tiny):
    items = sample(6, seed=3)
    ours = ImageRewardJudge("imagereward", ImageRewardJudge.Config(**params(tiny))).score(items)
    tokenizer = official_tokenizer(tiny["tokenizer"])
    for item, score in zip(items, ours):
        reference = official_score(tiny["state"], tokenizer, item.prompt.text, item.image)
        assert score.value == pytest.approx(reference, abs=1e-5), item.prompt.text
        assert score.raw["reward"] == pytest.approx(reference * 1.0333394966054072
                                                    + 0.16717362830052426, abs=1e-5)
    assert len({round(s.value, 4) for s in ours}) > 1, "scores should differ between inputs"
    assert [s.raw["truncated"] for s in ours] == [p == PROMPTS[4] for p in
                                                  (i.prompt.text for i in items)]


def test_a_checkpoint_of_another_layout_is_one_line(tiny, tmp_path):
    import torch

    bad = tmp_path / "clip.pt"
    torch.save({"visual.proj": torch.zeros(2, 2)}, bad)
    judge = ImageRewardJudge("imagereward", ImageRewardJudge.Config(**{**params(tiny),
                                                                       "pretrained": str(bad)}))
    with pytest.raises(AutojudgeError) as info:
        judge.score(sample(1))
    assert "not an ImageReward checkpoint" in str(info.value) and "\n" not in str(info.value)


def test_keys_the_official_load_skips_are_skipped_and_a_missing_one_is_one_line(tiny, tmp_path):
    """ImageReward.load uses load_state_dict(strict=False): keys outside the model are
    ignored there, so here too; a tensor the model needs must be present."""
    import torch

    from autojudge.judges.image_reward import convert_state_dict

    extra = {**tiny["state"], "blip.itm_head.weight": torch.zeros(2, 2), "mean": torch.ones(1)}
    assert [sorted(part) for part in convert_state_dict(extra)[:2]] == \
        [sorted(part) for part in convert_state_dict(tiny["state"])[:2]]
    missing = {k: v for k, v in tiny["state"].items() if k != "blip.visual_encoder.norm.weight"}
    torch.save(missing, tmp_path / "ImageReward.pt")
    judge = ImageRewardJudge("imagereward", ImageRewardJudge.Config(**{
        **params(tiny), "pretrained": str(tmp_path / "ImageReward.pt")}))
    with pytest.raises(AutojudgeError) as info:
        judge.score(sample(1))
    assert "post_layernorm.weight" in str(info.value) and "\n" not in str(info.value)


def test_offline_without_weights_fails_fast_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    judge = ImageRewardJudge("imagereward", ImageRewardJudge.Config(
        cache_dir=str(tmp_path / "empty-cache")))
    attempts = record_connections(monkeypatch)
    with pytest.raises(AutojudgeError) as info:
        judge.check()
    assert attempts == []  # answered from the cache alone: no hub lookup to retry
    message = str(info.value)
    assert "\n" not in message and "judge.imagereward.pretrained=" in message, message
    assert "not in the Hugging Face cache" in message


@pytest.mark.parametrize("change,needle", [
    ({"pretrained": "hf-file:THUDM/ImageReward.pt"}, "hf-file:ORG/REPO/FILE"),
    ({"pretrained": "/nowhere/ImageReward.pt"}, "weights file not found"),
    ({"tokenizer": "/nowhere/bert"}, "tokenizer folder not found"),
    ({"model_config": "/nowhere/sizes.json"}, "model_config /nowhere/sizes.json"),
])
def test_bad_settings_are_one_line(tiny, change, needle, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AutojudgeError) as info:
        ImageRewardJudge("imagereward", ImageRewardJudge.Config(**{**params(tiny),
                                                                   **change})).check()
    assert needle in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_runs_end_to_end_with_local_weights(tiny, tmp_path):
    run = tmp_path / "run"
    proc = run_cli(["autojudge", "model=[typeset,blank]", "judge=[imagereward]",
                    f"judge.imagereward.pretrained={tiny['pretrained']}",
                    f"judge.imagereward.tokenizer={tiny['tokenizer']}",
                    f"judge.imagereward.model_config={tiny['model_config']}",
                    "judge.imagereward.device=cpu", "suite.limit=4",
                    "ratings.bootstrap_rounds=20", "logger=none", "progress=false",
                    f"store.root={tmp_path / 'store'}", f"hydra.run.dir={run}"],
                   cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    document = json.loads((run / "leaderboard.json").read_text())
    assert "imagereward" in {b["judge"] for b in document["boards"]}
    scores = [json.loads(line) for line in (run / "scores.jsonl").read_text().splitlines()]
    rows = [s for s in scores if s["judge"] == "imagereward"]
    assert rows and all(np.isfinite(s["score"]) for s in rows)
