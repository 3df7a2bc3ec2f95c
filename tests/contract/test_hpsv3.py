"""Contract + reference computation of the HPSv3 judge, on a tiny random Qwen2-VL of the
official layout built here: a base folder as Qwen/Qwen2-VL-7B-Instruct ships it
(config.json in its flat transformers-4.4x form, a byte-level tokenizer with Qwen's
special tokens, Qwen2-VL's chat template, the Qwen2-VL image processor) and a checkpoint
with the official state dict's key names (visual.*, model.*, lm_head.weight, rm_head.*)
saved as HPSv3.safetensors is.

The reference follows HPSv3RewardInferencer.reward step by step, written out here: the
qwen-vl-utils resize, the chat template rendered by hand, the image processor's
normalise-and-patchify in numpy, and Qwen2VLRewardModelBT.forward in plain torch on the
original key names (vision tower with 2-D rotary attention and the patch merger; the
decoder with sequential 1-D positions; the hidden state at <|Reward|> through rm_head).
It shares nothing with the judge's key mapping or its transformers modules."""
from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
from helpers import REPO, record_connections, run_cli
from judge_contract import PointwiseJudgeContract
from PIL import Image

from autojudge.errors import AutojudgeError
from autojudge.judges.hpsv3 import INSTRUCTION, REWARD_SUFFIX, HPSv3Judge
from autojudge.types import JudgeItem, Prompt

TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 2, "num_key_value_heads": 1, "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]}
VISION = {"depth": 1, "embed_dim": 32, "mlp_ratio": 2, "num_heads": 2, "patch_size": 14,
          "spatial_merge_size": 2, "temporal_patch_size": 2}
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
            "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
# Qwen2-VL-7B-Instruct's chat template
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture "
    "{{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video "
    "{{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
PROMPTS = ["a photo of a cat", "a red bicycle leaning on a wall",
           "a bakery sign that reads FRESH BREAD", "two dogs playing in the snow",
           "Ünïcode façade, {braces} and punctuation!?"]
# sha256 of hpsv3/dataset/data_collator_qwen.py's INSTRUCTION + prompt_with_special_token
PROMPT_SHA256 = "f6ee57479d4e9eee76b49c00dc962e1e696a5a2b3cc32cebd9b1fa76fe27502c"


def make_base(folder) -> int:
    """The base folder: tokenizer, processor, chat template, config.json; returns the
    tokenizer's length before <|Reward|>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2VLProcessor
    from transformers.models.qwen2_vl import Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    # byte-level BPE with merges learnt from the instruction: short sequences, fast tests
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([INSTRUCTION + REWARD_SUFFIX] * 5, trainer=trainers.BpeTrainer(
        vocab_size=500, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>")
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIALS})
    processor = Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(), tokenizer=tokenizer,
                                 video_processor=Qwen2VLVideoProcessor(),
                                 chat_template=CHAT_TEMPLATE)
    processor.save_pretrained(folder)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIALS}
    config = {"architectures": ["Qwen2VLForConditionalGeneration"], "model_type": "qwen2_vl",
              "hidden_act": "silu", "max_position_embeddings": 32768, "sliding_window": 32768,
              "use_sliding_window": False, "max_window_layers": 2, "attention_dropout": 0.0,
              "tie_word_embeddings": False, "torch_dtype": "bfloat16", "vocab_size": 1000,
              "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
              "vision_start_token_id": ids["<|vision_start|>"],
              "vision_end_token_id": ids["<|vision_end|>"],
              "vision_token_id": ids["<|vision_pad|>"],
              "image_token_id": ids["<|image_pad|>"], "video_token_id": ids["<|video_pad|>"],
              "rope_scaling": {"type": "mrope", "mrope_section": TEXT["mrope_section"]},
              "vision_config": {**VISION, "in_chans": 3, "hidden_size": TEXT["hidden_size"]},
              **{k: v for k, v in TEXT.items() if k != "mrope_section"}}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return len(tokenizer)


def official_state(vocab: int, seed: int) -> dict:
    """Random tensors under Qwen2VLRewardModelBT's state dict names and shapes."""
    import torch

    g = torch.Generator().manual_seed(seed)
    H, I, E = TEXT["hidden_size"], TEXT["intermediate_size"], VISION["embed_dim"]
    KV = H // TEXT["num_attention_heads"] * TEXT["num_key_value_heads"]
    P, T, M = VISION["patch_size"], VISION["temporal_patch_size"], E * 4
    shapes = {"visual.patch_embed.proj.weight": (E, 3, T, P, P),
              "visual.merger.ln_q.weight": (E,), "visual.merger.ln_q.bias": (E,),
              "visual.merger.mlp.0.weight": (M, M), "visual.merger.mlp.0.bias": (M,),
              "visual.merger.mlp.2.weight": (H, M), "visual.merger.mlp.2.bias": (H,),
              "model.embed_tokens.weight": (vocab, H), "model.norm.weight": (H,),
              "lm_head.weight": (vocab, H),
              "rm_head.0.weight": (1024, H), "rm_head.0.bias": (1024,),
              "rm_head.3.weight": (16, 1024), "rm_head.3.bias": (16,),
              "rm_head.5.weight": (2, 16), "rm_head.5.bias": (2,)}
    for i in range(VISION["depth"]):
        b, I_v = f"visual.blocks.{i}.", E * VISION["mlp_ratio"]
        for name, shape in {"norm1": (E,), "norm2": (E,), "attn.qkv": (3 * E, E),
                            "attn.proj": (E, E), "mlp.fc1": (I_v, E), "mlp.fc2": (E, I_v)}.items():
            shapes[f"{b}{name}.weight"], shapes[f"{b}{name}.bias"] = shape, shape[:1]
    for i in range(TEXT["num_hidden_layers"]):
        b = f"model.layers.{i}."
        for name, shape in {"q_proj": (H, H), "k_proj": (KV, H), "v_proj": (KV, H)}.items():
            shapes[f"{b}self_attn.{name}.weight"], shapes[f"{b}self_attn.{name}.bias"] = \
                shape, shape[:1]
        shapes.update({f"{b}self_attn.o_proj.weight": (H, H), f"{b}mlp.gate_proj.weight": (I, H),
                       f"{b}mlp.up_proj.weight": (I, H), f"{b}mlp.down_proj.weight": (H, I),
                       f"{b}input_layernorm.weight": (H,),
                       f"{b}post_attention_layernorm.weight": (H,)})
    state = {}
    for key, shape in shapes.items():
        t = torch.randn(shape, generator=g)
        if ("norm" in key or "ln_q" in key) and key.endswith("weight"):
            t = 1.0 + 0.1 * t  # norm gains near 1, so a swapped mapping shows
        elif len(shape) >= 2 and "embed_tokens" not in key:
            t = t / float(np.prod(shape[1:])) ** 0.5
        else:
            t = 0.5 * t
        state[key] = t.contiguous()
    return state


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("tiny_hpsv3")
    base = folder / "Qwen2-VL-tiny"
    base.mkdir()
    vocab = make_base(base) + 1  # + <|Reward|>, as resize_token_embeddings(len(tokenizer))
    state = official_state(vocab, seed=7)
    save_file(state, str(folder / "HPSv3.safetensors"))
    save_file(official_state(vocab, seed=8), str(folder / "other.safetensors"))
    return {"pretrained": str(folder / "HPSv3.safetensors"), "base": str(base),
            "other": str(folder / "other.safetensors"), "state": state, "folder": folder}


def params(tiny) -> dict:
    return {"pretrained": tiny["pretrained"], "base": tiny["base"], "dtype": "float32",
            "device": "cpu"}


def sample(n: int, seed: int = 0) -> list[JudgeItem]:
    rng = np.random.default_rng(seed)
    sizes = [(512, 512), (300, 200), (640, 360), (100, 150), (1024, 96)]
    out = []
    for i in range(n):
        w, h = sizes[i % len(sizes)]
        channels = 4 if i % 3 == 2 else 3  # RGBA: the alpha is dropped by convert("RGB")
        image = Image.fromarray(rng.integers(0, 255, (h, w, channels), dtype=np.uint8))
        out.append(JudgeItem(Prompt(id=f"p{i}", text=PROMPTS[i % len(PROMPTS)]), image,
                             hashlib.sha256(image.tobytes()).hexdigest()))
    return out


class TestHPSv3Contract(PointwiseJudgeContract):
    plugin_cls = HPSv3Judge
    plugin_name = "hpsv3"
    import_module = "autojudge.judges.hpsv3"
    fingerprint_changes = [{"dtype": "bfloat16"}, {"revision": "0123abc"},
                           {"base_revision": "0123abc"}, {"base": "Qwen/Qwen2-VL-2B-Instruct"}]
    fingerprint_invariant = [{"batch_size": 1}, {"device": "auto"}, {"cache_dir": "/tmp/x"}]

    @pytest.fixture
    def plugin_params(self, tiny):
        return params(tiny)

    def sample_items(self):
        return sample(5)

    def other_prompts(self):
        return [Prompt(id="empty", text="  ")]

    def test_other_weights_change_the_fingerprint(self, make_plugin, tiny):
        assert make_plugin().fingerprint() != make_plugin(pretrained=tiny["other"]).fingerprint()


# -------------------------------------------------- the official inferencer, step by step

def ref_image(image):
    """qwen-vl-utils fetch_image (hpsv3/dataset/utils.py) at min = max = 256*28*28."""
    image = image.convert("RGB")
    width, height = image.size
    pixels, factor = 256 * 28 * 28, 28
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > pixels:
        beta = math.sqrt(height * width / pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < pixels:
        beta = math.sqrt(pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return image.resize((w_bar, h_bar), Image.BICUBIC)


def ref_patches(image):
    """Qwen2VLImageProcessor._preprocess of one image: rescale, CLIP normalise, the frame
    tiled to temporal_patch_size, patches in 2x2 merge order. (patches, (t, h, w))."""
    import torch

    x = (np.asarray(image).astype(np.float64) / 255.0).astype(np.float32)
    x = ((x - MEAN) / STD).transpose(2, 0, 1)[None]
    x = np.tile(x, (VISION["temporal_patch_size"], 1, 1, 1))
    T, C, H, W = x.shape
    P, m = VISION["patch_size"], VISION["spatial_merge_size"]
    gh, gw = H // P, W // P
    x = x.reshape(1, T, C, gh // m, m, P, gw // m, m, P).transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return torch.from_numpy(x.reshape(gh * gw, C * T * P * P).copy()), (1, gh, gw)


def _rotate(x, cos, sin):
    import torch

    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin


def _attend(q, k, v, mask=None):
    """(heads, N, d) scaled dot-product attention, written out."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    return (scores if mask is None else scores + mask).softmax(-1) @ v


def ref_vision(s, patches, grid):
    """Qwen2VisionTransformerPretrainedModel.forward on one image: patch embedding, blocks
    (LayerNorm, 2-D rotary attention, quick-GELU MLP), PatchMerger."""
    import torch
    import torch.nn.functional as F

    _, gh, gw = grid
    E, heads = VISION["embed_dim"], VISION["num_heads"]
    hd, N = E // heads, patches.shape[0]
    x = patches @ s["visual.patch_embed.proj.weight"].reshape(E, -1).T  # Conv3d, stride=kernel
    order = lambda t: t.reshape(gh // 2, 2, gw // 2, 2).permute(0, 2, 1, 3).flatten()  # noqa: E731
    hpos = order(torch.arange(gh)[:, None].expand(gh, gw))
    wpos = order(torch.arange(gw)[None, :].expand(gh, gw))
    inv = 1.0 / 10000 ** (torch.arange(0, hd // 2, 2, dtype=torch.float) / (hd // 2))
    table = torch.outer(torch.arange(max(gh, gw)).float(), inv)
    freqs = torch.cat([table[hpos], table[wpos]], dim=-1)
    cos, sin = freqs.cos().repeat(1, 2)[:, None], freqs.sin().repeat(1, 2)[:, None]

    def ln(t, name):
        return F.layer_norm(t, (E,), s[f"{name}.weight"], s[f"{name}.bias"], 1e-6)

    for i in range(VISION["depth"]):
        b = f"visual.blocks.{i}."
        qkv = F.linear(ln(x, b + "norm1"), s[b + "attn.qkv.weight"], s[b + "attn.qkv.bias"])
        q, k, v = qkv.reshape(N, 3, heads, hd).permute(1, 0, 2, 3)
        q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        o = _attend(q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1))
        x = x + F.linear(o.transpose(0, 1).reshape(N, E), s[b + "attn.proj.weight"],
                         s[b + "attn.proj.bias"])
        h = F.linear(ln(x, b + "norm2"), s[b + "mlp.fc1.weight"], s[b + "mlp.fc1.bias"])
        x = x + F.linear(h * torch.sigmoid(1.702 * h), s[b + "mlp.fc2.weight"],
                         s[b + "mlp.fc2.bias"])
    x = F.layer_norm(x, (E,), s["visual.merger.ln_q.weight"], s["visual.merger.ln_q.bias"],
                     1e-6).reshape(-1, 4 * E)
    x = F.gelu(F.linear(x, s["visual.merger.mlp.0.weight"], s["visual.merger.mlp.0.bias"]))
    return F.linear(x, s["visual.merger.mlp.2.weight"], s["visual.merger.mlp.2.bias"])


def ref_decoder(s, x):
    """Qwen2-VL's decoder as the reward model calls it: no input_ids, no position_ids, so
    positions 0..L-1 in all three M-RoPE sections (plain 1-D rotary); causal attention."""
    import torch
    import torch.nn.functional as F

    L, H = x.shape
    nh, nkv = TEXT["num_attention_heads"], TEXT["num_key_value_heads"]
    hd = H // nh

    def rms(t, name):
        return t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + TEXT["rms_norm_eps"]) * s[name]

    inv = 1.0 / TEXT["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float) / hd)
    angles = torch.outer(torch.arange(L).float(), inv)
    cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()
    mask = torch.full((L, L), float("-inf")).triu(1)
    for i in range(TEXT["num_hidden_layers"]):
        b = f"model.layers.{i}."
        h = rms(x, b + "input_layernorm.weight")
        q, k, v = (F.linear(h, s[f"{b}self_attn.{n}.weight"], s[f"{b}self_attn.{n}.bias"])
                   .view(L, heads, hd).transpose(0, 1)
                   for n, heads in (("q_proj", nh), ("k_proj", nkv), ("v_proj", nkv)))
        q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        k, v = k.repeat_interleave(nh // nkv, 0), v.repeat_interleave(nh // nkv, 0)
        o = _attend(q, k, v, mask).transpose(0, 1).reshape(L, H)
        x = x + F.linear(o, s[b + "self_attn.o_proj.weight"])
        h = rms(x, b + "post_attention_layernorm.weight")
        x = x + F.linear(F.silu(F.linear(h, s[b + "mlp.gate_proj.weight"]))
                         * F.linear(h, s[b + "mlp.up_proj.weight"]), s[b + "mlp.down_proj.weight"])
    return rms(x, "model.norm.weight")


def official_reward(s, base, prompt: str, image) -> tuple[float, float, int]:
    """HPSv3RewardInferencer.reward([image], [prompt])[0] on state dict `s`: (mu, log
    sigma, tokens)."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|Reward|>"]})
    patches, grid = ref_patches(ref_image(image))
    n_image = grid[0] * grid[1] * grid[2] // VISION["spatial_merge_size"] ** 2
    text = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
            "<|vision_start|>" + "<|image_pad|>" * n_image + "<|vision_end|>"
            + INSTRUCTION.format(text_prompt=prompt) + REWARD_SUFFIX
            + "<|im_end|>\n<|im_start|>assistant\n")
    ids = torch.tensor(tokenizer(text)["input_ids"])
    with torch.no_grad():
        x = s["model.embed_tokens.weight"][ids].clone()
        x[ids == tokenizer.convert_tokens_to_ids("<|image_pad|>")] = ref_vision(s, patches, grid)
        hidden = ref_decoder(s, x)[ids == tokenizer.convert_tokens_to_ids("<|Reward|>")]
        r = F.relu(F.linear(hidden.float(), s["rm_head.0.weight"], s["rm_head.0.bias"]))
        r = F.relu(F.linear(r, s["rm_head.3.weight"], s["rm_head.3.bias"]))
        r = F.linear(r, s["rm_head.5.weight"], s["rm_head.5.bias"])  # [1, 2]: mu, log sigma
    return float(r[0, 0]), float(r[0, 1]), int(ids.shape[0])


def test_score_equals_the_official_computation(tiny):
    items = sample(5, seed=3)
    ours = HPSv3Judge("hpsv3", HPSv3Judge.Config(**params(tiny))).score(items)
    for item, score in zip(items, ours):
        mu, log_sigma, tokens = official_reward(tiny["state"], tiny["base"], item.prompt.text,
                                                item.image)
        assert score.value == pytest.approx(mu, abs=1e-5), item.prompt.text
        assert score.raw["log_sigma"] == pytest.approx(log_sigma, abs=1e-5)
        assert score.raw["tokens"] == tokens
    assert len({round(s.value, 4) for s in ours}) == len(ours), "scores should differ"


def test_the_prompt_is_the_trained_format():
    """The trailing spaces and the exact suffix are what the model was trained on."""
    assert hashlib.sha256((INSTRUCTION + REWARD_SUFFIX).encode()).hexdigest() == PROMPT_SHA256
    assert "**Visual Quality:**  \n" in INSTRUCTION and "**Text Alignment:**  \n" in INSTRUCTION
    assert INSTRUCTION.startswith("\nYou are tasked with evaluating a generated image")
    assert INSTRUCTION.endswith("Textual prompt - {text_prompt}\n\n\n")
    assert REWARD_SUFFIX == \
        "\nPlease provide the overall ratings of this image: <|Reward|>\n\nEND\n"


def test_newer_transformers_key_names_load_the_same(tiny, tmp_path):
    """A checkpoint saved from transformers >= 4.52 (model.visual.*,
    model.language_model.*) holds the same tensors under other names."""
    from safetensors.torch import save_file

    renamed = {("model." + k if k.startswith("visual.") else
                k.replace("model.", "model.language_model.", 1) if k.startswith("model.")
                else k): v for k, v in tiny["state"].items()}
    save_file(renamed, str(tmp_path / "HPSv3.safetensors"))
    items = sample(2, seed=5)
    legacy = HPSv3Judge("hpsv3", HPSv3Judge.Config(**params(tiny))).score(items)
    modern = HPSv3Judge("hpsv3", HPSv3Judge.Config(**{
        **params(tiny), "pretrained": str(tmp_path / "HPSv3.safetensors")})).score(items)
    assert [s.value for s in modern] == pytest.approx([s.value for s in legacy], abs=1e-6)


@pytest.mark.parametrize("state,needle", [
    ({"text_projection": [[0.0]]}, "unexpected key 'text_projection' (not an HPSv3 checkpoint)"),
    ({"visual.proj": [[0.0]]}, "not an HPSv3 checkpoint"),  # no rm_head
])
def test_a_checkpoint_of_another_layout_is_one_line(tiny, tmp_path, state, needle):
    import torch
    from safetensors.torch import save_file

    save_file({k: torch.tensor(v) for k, v in state.items()}, str(tmp_path / "x.safetensors"))
    judge = HPSv3Judge("hpsv3", HPSv3Judge.Config(
        **{**params(tiny), "pretrained": str(tmp_path / "x.safetensors")}))
    with pytest.raises(AutojudgeError) as info:
        judge.score(sample(1))
    assert needle in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_a_missing_tensor_is_one_line(tiny, tmp_path):
    from safetensors.torch import save_file

    state = {k: v for k, v in tiny["state"].items() if k != "model.layers.1.mlp.up_proj.weight"}
    save_file(state, str(tmp_path / "HPSv3.safetensors"))
    judge = HPSv3Judge("hpsv3", HPSv3Judge.Config(**{
        **params(tiny), "pretrained": str(tmp_path / "HPSv3.safetensors")}))
    with pytest.raises(AutojudgeError) as info:
        judge.score(sample(1))
    assert "language_model.layers.1.mlp.up_proj.weight" in str(info.value)
    assert "\n" not in str(info.value)


def test_an_unscorable_item_fails_alone(tiny):
    """The reward token typed into a prompt, or an aspect ratio qwen-vl-utils refuses:
    that item gets a typed failure, the others their scores."""
    items = sample(1) + [
        JudgeItem(Prompt(id="tok", text="a cat <|Reward|>"), sample(1)[0].image, "a"),
        JudgeItem(Prompt(id="thin", text="a line"), Image.new("RGB", (1000, 4)), "b")]
    out = HPSv3Judge("hpsv3", HPSv3Judge.Config(**params(tiny))).score(items)
    assert out[0].failure is None and math.isfinite(out[0].value)
    assert [s.failure.kind for s in out[1:]] == ["bad_input", "bad_input"]
    assert "<|Reward|>" in out[1].failure.message and "aspect ratio" in out[2].failure.message


def test_offline_without_weights_fails_fast_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    judge = HPSv3Judge("hpsv3", HPSv3Judge.Config(cache_dir=str(tmp_path / "empty-cache")))
    attempts = record_connections(monkeypatch)
    with pytest.raises(AutojudgeError) as info:
        judge.check()
    assert attempts == []  # answered from the cache alone: no hub lookup to retry
    message = str(info.value)
    assert "\n" not in message and "judge.hpsv3.pretrained=" in message, message
    assert "HPSv3.safetensors of MizzenAI/HPSv3 is not in the Hugging Face cache" in message


def test_offline_without_the_base_files_fails_fast_in_one_line(tiny, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    judge = HPSv3Judge("hpsv3", HPSv3Judge.Config(pretrained=tiny["pretrained"],
                                                  cache_dir=str(tmp_path / "empty-cache")))
    attempts = record_connections(monkeypatch)
    with pytest.raises(AutojudgeError) as info:
        judge.check()
    assert attempts == []
    message = str(info.value)
    assert "\n" not in message and "judge.hpsv3.base=" in message, message
    assert "Qwen/Qwen2-VL-7B-Instruct" in message


@pytest.mark.parametrize("change,needle", [
    ({"pretrained": "hf-file:MizzenAI/HPSv3.safetensors"}, "hf-file:ORG/REPO/FILE"),
    ({"pretrained": "/nowhere/HPSv3.safetensors"}, "weights file not found"),
    ({"base": "/nowhere/Qwen2-VL-7B-Instruct"}, "base folder not found"),
    ({"dtype": "int8"}, "dtype 'int8'"),
    ({"device": "tpu"}, "device='tpu'"),
])
def test_bad_settings_are_one_line(tiny, change, needle, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AutojudgeError) as info:
        HPSv3Judge("hpsv3", HPSv3Judge.Config(**{**params(tiny), **change})).check()
    assert needle in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_a_base_folder_without_a_tokenizer_is_one_line(tiny, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(AutojudgeError) as info:
        HPSv3Judge("hpsv3", HPSv3Judge.Config(**{**params(tiny),
                                                 "base": str(tmp_path)})).check()
    assert "lacks config.json or the tokenizer" in str(info.value)


def test_runs_end_to_end_with_local_weights(tiny, tmp_path):
    run = tmp_path / "run"
    proc = run_cli(["autojudge", "model=[typeset,blank]", "judge=[hpsv3]",
                    f"judge.hpsv3.pretrained={tiny['pretrained']}",
                    f"judge.hpsv3.base={tiny['base']}", "judge.hpsv3.dtype=float32",
                    "judge.hpsv3.device=cpu", "suite.limit=3",
                    "ratings.bootstrap_rounds=20", "logger=none", "progress=false",
                    f"store.root={tmp_path / 'store'}", f"hydra.run.dir={run}"],
                   cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    document = json.loads((run / "leaderboard.json").read_text())
    assert "hpsv3" in {b["judge"] for b in document["boards"]}
    scores = [json.loads(line) for line in (run / "scores.jsonl").read_text().splitlines()]
    rows = [s for s in scores if s["judge"] == "hpsv3"]
    assert rows and all(np.isfinite(s["score"]) for s in rows)
