"""Contract + reference computation of the MPS judge, on a tiny random model of the official
layout built here: a tiny transformers CLIPModel (tests/tiny_clip.py, whose folder also
holds the processor, tokenizer and config.json) and a tiny cross model, together saved as
the official checkpoint is (the whole model pickled with classes of a `trainer` package),
as a state dict (model.*, cross_model.*) and as imscore's safetensors (mps.*).

The reference is the official code written out here: `trainer/models/cross_modeling.py`'s
modules line by line (einops spelled out), `infer_one_sample` of
eval_overall_mps_on_hpdv2.py, and transformers 4.27's CLIPImageProcessor steps in PIL and
numpy: it shares nothing with the judge's functions, its key mapping or its loader."""
from __future__ import annotations

import hashlib
import json
import sys
import types

import numpy as np
import pytest
from helpers import REPO, record_connections, run_cli
from judge_contract import PointwiseJudgeContract
from PIL import Image
from tiny_clip import make_transformers_clip

torch = pytest.importorskip("torch")  # the reference model below is torch modules
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from autojudge.errors import AutojudgeError
from autojudge.judges.mps import CONDITION, MPSJudge
from autojudge.types import JudgeItem, Prompt

LAYERS, HEADS, DIM_HEAD, FF_MULT = 2, 2, 4, 2  # the official: 4, 16, 64, 4 on dim 1024
PROMPTS = ["a photo of a cat", "a red bicycle leaning on a wall",
           "a bakery sign that reads FRESH BREAD", "two dogs playing in the snow",
           "an astronaut riding a horse, " * 14 + "at dusk",  # > 77 tokens: truncated
           "a portrait with detailed hands and a clear face"]


# ------------------------------------------- trainer/models/cross_modeling.py, as written

class LayerNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.register_buffer("bias", torch.zeros(dim))

    def forward(self, x):
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias)


class Residual(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x, *args, **kwargs):
        return self.fn(x, *args, **kwargs) + x


class RotaryEmbedding(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, dim, 2).float() / dim)))

    def forward(self, max_seq_len, *, device):
        seq = torch.arange(max_seq_len, device=device, dtype=self.inv_freq.dtype)
        freqs = torch.einsum("i , j -> i j", seq, self.inv_freq)
        return torch.cat((freqs, freqs), dim=-1)


def rotate_half(x):
    x1, x2 = x.reshape(*x.shape[:-1], 2, x.shape[-1] // 2).unbind(dim=-2)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(pos, t):
    return (t * pos.cos()) + (rotate_half(t) * pos.sin())


class SwiGLU(nn.Module):
    def forward(self, x):
        x, gate = x.chunk(2, dim=-1)
        return F.silu(gate) * x


def heads_first(t, h):  # rearrange "b n (h d) -> b h n d"
    return t.reshape(t.shape[0], t.shape[1], h, -1).permute(0, 2, 1, 3)


def heads_last(t):  # rearrange "b h n d -> b n (h d)"
    return t.permute(0, 2, 1, 3).reshape(t.shape[0], t.shape[2], -1)


class ParallelTransformerBlock(nn.Module):
    def __init__(self, dim, dim_head=64, heads=8, ff_mult=4):
        super().__init__()
        self.norm = LayerNorm(dim)
        attn_inner_dim, ff_inner_dim = dim_head * heads, dim * ff_mult
        self.fused_dims = (attn_inner_dim, dim_head, dim_head, (ff_inner_dim * 2))
        self.heads, self.scale = heads, dim_head ** -0.5
        self.rotary_emb = RotaryEmbedding(dim_head)
        self.fused_attn_ff_proj = nn.Linear(dim, sum(self.fused_dims), bias=False)
        self.attn_out = nn.Linear(attn_inner_dim, dim, bias=False)
        self.ff_out = nn.Sequential(SwiGLU(), nn.Linear(ff_inner_dim, dim, bias=False))
        self.register_buffer("pos_emb", None, persistent=False)

    def forward(self, x, attn_mask=None):
        n, device, h = x.shape[1], x.device, self.heads
        x = self.norm(x)
        q, k, v, ff = self.fused_attn_ff_proj(x).split(self.fused_dims, dim=-1)
        q = heads_first(q, h)
        positions = self.rotary_emb(n, device=device)
        q, k = map(lambda t: apply_rotary_pos_emb(positions, t), (q, k))
        q = q * self.scale
        sim = torch.einsum("b h i d, b j d -> b h i j", q, k)
        sim = sim - sim.amax(dim=-1, keepdim=True).detach()
        attn = sim.softmax(dim=-1)
        out = torch.einsum("b h i j, b j d -> b h i d", attn, v)
        return self.attn_out(heads_last(out)) + self.ff_out(ff)


class CrossAttention(nn.Module):
    def __init__(self, dim, *, dim_head=64, heads=12, parallel_ff=False, ff_mult=4):
        super().__init__()
        self.heads, self.scale = heads, dim_head ** -0.5
        inner_dim = heads * dim_head
        self.norm = LayerNorm(dim)
        self.context_norm = nn.Identity()
        self.to_q = nn.Linear(dim, inner_dim, bias=False)
        self.to_kv = nn.Linear(dim, dim_head * 2, bias=False)
        self.to_out = nn.Linear(inner_dim, dim, bias=False)
        ff_inner_dim = ff_mult * dim
        self.ff = nn.Sequential(nn.Linear(dim, ff_inner_dim * 2, bias=False), SwiGLU(),
                                nn.Linear(ff_inner_dim, dim, bias=False)) if parallel_ff else None

    def forward(self, x, context, mask):
        x = self.norm(x)
        context = self.context_norm(context)
        q = heads_first(self.to_q(x), self.heads) * self.scale
        k, v = self.to_kv(context).chunk(2, dim=-1)
        sim = torch.einsum("b h i d, b j d -> b h i j", q, k)
        mask = mask.unsqueeze(1).repeat(1, self.heads, 1, 1)
        sim = sim + mask
        sim = sim - sim.amax(dim=-1, keepdim=True)
        attn = sim.softmax(dim=-1)
        out = self.to_out(heads_last(torch.einsum("b h i j, b j d -> b h i d", attn, v)))
        if self.ff is not None:
            out = out + self.ff(x)
        return out


class Cross_model(nn.Module):  # noqa: N801  (the official class name, pickled by it)
    def __init__(self, dim=512, layer_num=4, dim_head=64, heads=8, ff_mult=4):
        super().__init__()
        self.layers = nn.ModuleList([nn.ModuleList([
            Residual(CrossAttention(dim=dim, dim_head=dim_head, heads=heads, parallel_ff=True,
                                    ff_mult=ff_mult)),
            Residual(ParallelTransformerBlock(dim=dim, dim_head=dim_head, heads=heads,
                                              ff_mult=ff_mult))]) for _ in range(layer_num)])

    def forward(self, query_tokens, context_tokens, mask):
        for cross_attn, self_attn_ff in self.layers:
            query_tokens = cross_attn(query_tokens, context_tokens, mask)
            query_tokens = self_attn_ff(query_tokens)
        return query_tokens


class CLIPModel(nn.Module):  # trainer/models/clip_model.py's wrapper (its `model` is XCLIP)
    def __init__(self, clip, cross):
        super().__init__()
        self.model, self.cross_model = clip, cross

    @property
    def logit_scale(self):
        return self.model.logit_scale


# ------------------------------------------------------------------------ the tiny model

def make_official(folder, seed: int):
    """The tiny model in the official classes: CLIP from tiny_clip, a random cross model."""
    from transformers import CLIPModel as HFCLIPModel

    clip = HFCLIPModel.from_pretrained(make_transformers_clip(folder / "clip", seed=seed)).eval()
    torch.manual_seed(seed)
    cross = Cross_model(dim=clip.config.projection_dim, layer_num=LAYERS, dim_head=DIM_HEAD,
                        heads=HEADS, ff_mult=FF_MULT)
    with torch.no_grad():
        for module in cross.modules():  # LayerNorm gains and biases off 1 and 0, so a
            if isinstance(module, LayerNorm):  # swapped or dropped one shows
                module.weight.copy_(1.0 + 0.1 * torch.randn_like(module.weight))
                module.bias.copy_(0.1 * torch.randn_like(module.bias))
    return CLIPModel(clip, cross).eval()


def save_pickled_module(model, path):
    """torch.save(model) with the classes under the official module names, which are
    gone again when the judge loads the file (as they are on a user's machine)."""
    from transformers import CLIPModel as HFCLIPModel

    xclip = type("XCLIPModel", (HFCLIPModel,), {"__module__": "trainer.models.clip_model"})
    fake = {"trainer": types.ModuleType("trainer"),
            "trainer.models": types.ModuleType("trainer.models"),
            "trainer.models.clip_model": types.ModuleType("trainer.models.clip_model"),
            "trainer.models.cross_modeling": types.ModuleType("trainer.models.cross_modeling")}
    classes = {"trainer.models.clip_model": [CLIPModel, xclip],
               "trainer.models.cross_modeling": [LayerNorm, Residual, RotaryEmbedding, SwiGLU,
                                                 ParallelTransformerBlock, CrossAttention,
                                                 Cross_model]}
    saved = {cls: cls.__module__ for group in classes.values() for cls in group}
    try:
        sys.modules.update(fake)
        for module, group in classes.items():
            for cls in group:
                cls.__module__ = module
                setattr(fake[module], cls.__name__, cls)
        model.model.__class__ = xclip
        torch.save(model, path)
    finally:
        model.model.__class__ = HFCLIPModel
        for cls, module in saved.items():
            cls.__module__ = module
        for name in fake:
            sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("tiny_mps")
    model = make_official(folder, seed=11)
    state = model.state_dict()
    legacy = {**state, "model.text_model.embeddings.position_ids": torch.arange(77)[None]}
    torch.save(legacy, folder / "mps_state.pth")  # transformers 4.27 saved position_ids
    save_file({f"mps.{k}": v.contiguous() for k, v in state.items()}, folder / "mps.safetensors")
    save_pickled_module(model, folder / "MPS_overall_checkpoint.pth")
    torch.save(make_official(folder / "other", seed=12).state_dict(), folder / "other.pth")
    return {"model": model, "state": state, "processor": str(folder / "clip"),
            "pretrained": str(folder / "mps_state.pth"), "other": str(folder / "other.pth"),
            "safetensors": str(folder / "mps.safetensors"),
            "pickled": str(folder / "MPS_overall_checkpoint.pth")}


def params(tiny, **change) -> dict:
    return {"pretrained": tiny["pretrained"], "processor": tiny["processor"], "device": "cpu",
            **change}


def sample(n: int, seed: int = 0) -> list[JudgeItem]:
    rng = np.random.default_rng(seed)
    sizes = [(48, 40), (32, 32), (64, 24), (40, 57), (33, 35), (80, 61)]
    out = []
    for i in range(n):
        w, h = sizes[i % len(sizes)]
        channels = 4 if i % 3 == 2 else 3  # RGBA: the official convert("RGB") drops alpha
        image = Image.fromarray(rng.integers(0, 255, (h, w, channels), dtype=np.uint8))
        out.append(JudgeItem(Prompt(id=f"p{i}", text=PROMPTS[i % len(PROMPTS)]), image,
                             hashlib.sha256(image.tobytes()).hexdigest()))
    return out


class TestMPSContract(PointwiseJudgeContract):
    plugin_cls = MPSJudge
    plugin_name = "mps"
    import_module = "autojudge.judges.mps"
    fingerprint_changes = [{"dtype": "bfloat16"}, {"revision": "0123abc"},
                           {"mask_threshold": 0.01}, {"processor": "org/other-clip"}]
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


# ------------------------------------------------------------- the official computation

def official_pixels(image, size: int):
    """convert("RGB"), then transformers 4.27's CLIPImageProcessor: the shorter side to
    `size` (PIL bicubic, the longer int(size * long / short)), a centre crop at floored
    offsets, /255, CLIP's mean and std."""
    image = image.convert("RGB")
    w, h = image.size
    new = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
    array = np.asarray(image.resize(new, Image.BICUBIC), dtype=np.float32)
    top, left = (array.shape[0] - size) // 2, (array.shape[1] - size) // 2
    array = array[top:top + size, left:left + size] * (1 / 255)
    mean = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
    std = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
    return torch.from_numpy(((array - mean) / std).transpose(2, 0, 1).copy())[None]


def official_score(model, tokenizer, prompt: str, image, threshold: float = 0.3):
    """(score, prompt tokens attended, the normalised similarities the mask thresholds) of
    infer_one_sample(image, prompt, ...) in eval_overall_mps_on_hpdv2.py."""
    clip = model.model

    def text_features(ids):  # XCLIPModel.get_text_features
        out = clip.text_model(input_ids=ids)
        return clip.text_projection(out[0]), clip.text_projection(out[1])

    def tokenize(caption):
        return tokenizer(caption, max_length=77, padding="max_length", truncation=True,
                         return_tensors="pt").input_ids

    with torch.no_grad():
        text_f, text_features_eos = text_features(tokenize(prompt))
        image_f = clip.visual_projection(clip.vision_model(
            pixel_values=official_pixels(image, clip.config.vision_config.image_size))[0])
        condition_f, _ = text_features(tokenize(CONDITION))
        sim_text_condition = torch.einsum("b i d, b j d -> b j i", text_f, condition_f)
        sim_text_condition = torch.max(sim_text_condition, dim=1, keepdim=True)[0]
        sim_text_condition = sim_text_condition / sim_text_condition.max()
        mask = torch.where(sim_text_condition > threshold, 0, float("-inf"))
        mask = mask.repeat(1, image_f.shape[1], 1)
        image_features = model.cross_model(image_f, text_f, mask)[:, 0, :]
        image_features = image_features / image_features.norm(dim=-1, keepdim=True)
        text_features_eos = text_features_eos / text_features_eos.norm(dim=-1, keepdim=True)
        score = float(model.logit_scale.exp() * text_features_eos @ image_features.T)
    return score, int((sim_text_condition > threshold).sum()), sim_text_condition.flatten()


def test_score_equals_the_official_computation(tiny):
    from transformers import AutoTokenizer

    items = sample(6, seed=3)
    ours = MPSJudge("mps", MPSJudge.Config(**params(tiny))).score(items)
    tokenizer = AutoTokenizer.from_pretrained(tiny["processor"])
    scale = float(tiny["model"].logit_scale.detach().exp())  # CLIP's initial 1/0.07 here
    for item, score in zip(items, ours):
        reference, kept, _ = official_score(tiny["model"], tokenizer, item.prompt.text,
                                            item.image)
        assert score.value == pytest.approx(reference, abs=1e-5), item.prompt.text
        assert score.raw["cosine"] == pytest.approx(reference / scale, abs=1e-6)
        assert score.raw["attended_tokens"] == kept
    assert len({round(s.value, 4) for s in ours}) > 1, "scores should differ between inputs"
    assert [s.raw["truncated"] for s in ours] == [i.prompt.text == PROMPTS[4] for i in items]


def test_masked_prompt_tokens_match_the_official_computation(tiny):
    """The tiny model's similarities all clear 0.3; a threshold at their median masks
    about half the prompt's token positions, in the judge as in the official code."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny["processor"])
    for item in sample(3, seed=4):
        _, _, sims = official_score(tiny["model"], tokenizer, item.prompt.text, item.image)
        ordered = sims.sort().values  # halfway between two neighbours: no tie to round
        threshold = float(ordered[38] + ordered[39]) / 2
        reference, kept, _ = official_score(tiny["model"], tokenizer, item.prompt.text,
                                            item.image, threshold=threshold)
        judge = MPSJudge("mps", MPSJudge.Config(**params(tiny, mask_threshold=threshold)))
        score = judge.score([item])[0]
        assert 1 <= kept < 77 and score.raw["attended_tokens"] == kept
        assert score.value == pytest.approx(reference, abs=1e-5), item.prompt.text


@pytest.mark.parametrize("layout", ["pickled", "safetensors"])
def test_every_checkpoint_layout_gives_the_same_scores(tiny, layout):
    """The official pickled model (its `trainer` classes absent here) and imscore's
    safetensors score exactly as the state dict does."""
    assert not any(name.startswith("trainer") for name in sys.modules)
    items = sample(3, seed=5)
    expected = MPSJudge("mps", MPSJudge.Config(**params(tiny))).score(items)
    got = MPSJudge("mps", MPSJudge.Config(**params(tiny, pretrained=tiny[layout]))).score(items)
    assert [s.value for s in got] == pytest.approx([s.value for s in expected], abs=1e-6)
    assert not any(name.startswith("trainer") for name in sys.modules)


def test_a_pickle_cannot_run_code(tiny, tmp_path):
    """The official file is a pickle; the restricted unpickler gives a stand-in for every
    global it does not know, so a callable in the file is never called."""
    import os

    from autojudge.judges.mps_checkpoint import read_checkpoint

    class Payload:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "ran"),))

    torch.save({"model.logit_scale": torch.ones(()), "x": Payload()}, tmp_path / "evil.pth")
    read_checkpoint(str(tmp_path / "evil.pth"))
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("state,needle", [
    ({"visual.proj": torch.zeros(2, 2)}, "not an MPS checkpoint"),
    ("drop", "lacks 'cross_model.layers.1.1.fn.attn_out.weight'"),
])
def test_a_checkpoint_of_another_layout_is_one_line(tiny, tmp_path, state, needle):
    if state == "drop":
        state = {k: v for k, v in tiny["state"].items()
                 if k != "cross_model.layers.1.1.fn.attn_out.weight"}
    torch.save(state, tmp_path / "bad.pth")
    judge = MPSJudge("mps", MPSJudge.Config(**params(tiny, pretrained=str(tmp_path / "bad.pth"))))
    with pytest.raises(AutojudgeError) as info:
        judge.score(sample(1))
    assert needle in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_offline_hub_weights_fail_fast_in_one_line_at_check(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    judge = MPSJudge("mps", MPSJudge.Config(cache_dir=str(tmp_path / "empty-cache")))
    attempts = record_connections(monkeypatch)
    with pytest.raises(AutojudgeError) as info:
        judge.check()
    assert attempts == []  # answered from the cache alone: no hub lookup to retry
    message = str(info.value)
    assert "\n" not in message and "judge.mps.pretrained=" in message, message
    assert "model.safetensors of RE-N-Y/mpsv1 is not in the Hugging Face cache" in message


@pytest.mark.parametrize("change,needle", [
    ({"pretrained": "hf-file:RE-N-Y/model.safetensors"}, "hf-file:ORG/REPO/FILE"),
    ({"pretrained": "/nowhere/MPS_overall_checkpoint.pth"}, "weights file not found"),
    ({"processor": "/nowhere/clip-h"}, "processor folder not found"),
    ({"processor": "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"}, "judge.mps.processor="),
    ({"dtype": "float64"}, "dtype 'float64'"),
])
def test_bad_settings_are_one_line(tiny, change, needle, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AutojudgeError) as info:
        MPSJudge("mps", MPSJudge.Config(**params(tiny, cache_dir=str(tmp_path), **change))).check()
    assert needle in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_a_processor_folder_without_the_clip_config_is_one_line(tiny, tmp_path):
    import shutil

    folder = tmp_path / "clip"
    shutil.copytree(tiny["processor"], folder)
    (folder / "config.json").unlink()
    with pytest.raises(AutojudgeError, match="has no config.json"):
        MPSJudge("mps", MPSJudge.Config(**params(tiny, processor=str(folder)))).check()


def test_runs_end_to_end_with_local_weights(tiny, tmp_path):
    run = tmp_path / "run"
    proc = run_cli(["autojudge", "model=[typeset,blank]", "judge=[mps]",
                    f"judge.mps.pretrained={tiny['pickled']}",
                    f"judge.mps.processor={tiny['processor']}", "judge.mps.device=cpu",
                    "suite.limit=4", "ratings.bootstrap_rounds=20", "logger=none",
                    "progress=false", f"store.root={tmp_path / 'store'}",
                    f"hydra.run.dir={run}"], cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    document = json.loads((run / "leaderboard.json").read_text())
    assert "mps" in {b["judge"] for b in document["boards"]}
    scores = [json.loads(line) for line in (run / "scores.jsonl").read_text().splitlines()]
    rows = [s for s in scores if s["judge"] == "mps"]
    assert rows and all(np.isfinite(s["score"]) for s in rows)
