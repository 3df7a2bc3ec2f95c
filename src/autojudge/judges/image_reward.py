"""ImageReward (Xu et al., NeurIPS 2023): a BLIP reward model trained on 137k expert
rankings of text-to-image outputs, as a pointwise judge.

It computes what the official `ImageReward.score(prompt, image)` (THUDM/ImageReward,
ImageReward/ImageReward.py) computes:

- image: Resize(224, bicubic) on the shorter side, CenterCrop(224), convert("RGB") (after
  the resize, as the official transform does), ToTensor, Normalize with CLIP's mean/std;
  BLIP's ViT-L/16 gives every patch embedding (after its final LayerNorm);
- prompt: the bert-base-uncased tokenizer with BLIP's added [DEC] / [ENC] tokens,
  padding="max_length", truncation, max_length=35; the first token stays [CLS] (the
  official score does not swap in [ENC]);
- BLIP's BERT-base text encoder with cross-attention to all image embeddings; the
  first token's last hidden state -> the MLP head (768-1024-128-64-16-1, linear layers
  only: the official ReLUs are commented out; dropout is off in eval) -> reward;
- score = (reward - 0.16717362830052426) / 1.0333394966054072.

Why not the `image-reward` package: it pins old timm/transformers (and fairscale). The
model is built on transformers' BLIP classes (`BlipVisionModel`, `BlipTextModel`), with
the official checkpoint's state dict converted at load time by `convert_state_dict`:

    blip.visual_encoder.cls_token             -> vision embeddings.class_embedding
    blip.visual_encoder.pos_embed             -> vision embeddings.position_embedding
    blip.visual_encoder.patch_embed.proj.*    -> vision embeddings.patch_embedding.*
    blip.visual_encoder.blocks.N.norm1/norm2  -> vision encoder.layers.N.layer_norm1/2
    blip.visual_encoder.blocks.N.attn.qkv     -> vision encoder.layers.N.self_attn.qkv
    blip.visual_encoder.blocks.N.attn.proj    -> vision encoder.layers.N.self_attn.projection
    blip.visual_encoder.blocks.N.mlp.fc1/fc2  -> vision encoder.layers.N.mlp.fc1/fc2
    blip.visual_encoder.norm                  -> vision post_layernorm
    blip.text_encoder.<rest>                  -> text <rest> (same BERT names; the
                                                 position_ids buffer is dropped)
    mlp.layers.{0,2,4,6,7}                    -> the head's linear layers, in order
    blip.vision_proj / blip.text_proj         -> unused (BLIP's contrastive projections)

Example (config):
    imagereward: {kind: imagereward}                      # hub, downloaded once
    imagereward: {kind: imagereward, pretrained: /weights/ImageReward.pt,
                  tokenizer: /weights/bert-base-uncased}
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from autojudge.errors import AutojudgeError
from autojudge.runtime.resources import JUDGES_DIR
from autojudge.judges.checkpoint import (CheckpointJudge, check_weights_file, file_identity,
                                         offline_error)
from autojudge.types import Failure, JudgeItem, Prompt, Score

__all__ = ["ImageRewardJudge", "convert_state_dict", "ARCHITECTURE"]

REWARD_MEAN = 0.16717362830052426  # ImageReward.__init__: self.mean, self.std
REWARD_STD = 1.0333394966054072
MAX_LENGTH = 35  # the official tokenizer call's max_length
PIXEL_MEAN = (0.48145466, 0.4578275, 0.40821073)  # the official _transform's Normalize
PIXEL_STD = (0.26862954, 0.26130258, 0.27577711)

# BLIP_Pretrain(image_size=224, vit='large') and ImageReward's med_config.json: the
# official model's sizes. `model_config` may override them (tiny test models).
ARCHITECTURE: dict[str, dict[str, Any]] = {
    "vision": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
               "intermediate_size": 4096, "image_size": 224, "patch_size": 16,
               "layer_norm_eps": 1e-6},
    "text": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
             "intermediate_size": 3072, "vocab_size": 30524,
             "max_position_embeddings": 512, "layer_norm_eps": 1e-12},
}

_VISION_KEYS = [  # official ViT (timm layout) -> transformers BlipVisionModel
    (r"cls_token", "embeddings.class_embedding"),
    (r"pos_embed", "embeddings.position_embedding"),
    (r"patch_embed\.proj\.(weight|bias)", r"embeddings.patch_embedding.\1"),
    (r"norm\.(weight|bias)", r"post_layernorm.\1"),
    (r"blocks\.(\d+)\.norm([12])\.(weight|bias)", r"encoder.layers.\1.layer_norm\2.\3"),
    (r"blocks\.(\d+)\.attn\.qkv\.(weight|bias)", r"encoder.layers.\1.self_attn.qkv.\2"),
    (r"blocks\.(\d+)\.attn\.proj\.(weight|bias)", r"encoder.layers.\1.self_attn.projection.\2"),
    (r"blocks\.(\d+)\.mlp\.fc([12])\.(weight|bias)", r"encoder.layers.\1.mlp.fc\2.\3"),
]
_UNUSED = ("blip.vision_proj.", "blip.text_proj.", "blip.text_encoder.embeddings.position_ids")


def convert_state_dict(state: dict[str, Any]) -> tuple[dict, dict, list[tuple[Any, Any]]]:
    """(BlipVisionModel state, BlipTextModel state, [(weight, bias) of the head's linear
    layers in order]) of an official ImageReward.pt state dict. Keys outside the three
    parts are skipped, as the official load_state_dict(strict=False) skips them; inside
    them every tensor must find its place (the strict loads that follow check the rest),
    so a checkpoint of another layout never loads half-way."""
    vision: dict[str, Any] = {}
    text: dict[str, Any] = {}
    head: dict[int, dict[str, Any]] = {}
    for key, value in state.items():
        if key.startswith(_UNUSED):
            continue
        if key.startswith("blip.visual_encoder."):
            vision[_vision_key(key[len("blip.visual_encoder."):])] = value
        elif key.startswith("blip.text_encoder."):
            text[key[len("blip.text_encoder."):]] = value
        elif key.startswith("mlp."):
            m = re.fullmatch(r"mlp\.layers\.(\d+)\.(weight|bias)", key)
            if m is None:
                raise ValueError(f"unexpected key '{key}' (not an ImageReward checkpoint)")
            head.setdefault(int(m.group(1)), {})[m.group(2)] = value
    if not vision or not text or not head:
        raise ValueError("no blip.visual_encoder / blip.text_encoder / mlp.layers weights "
                         "(not an ImageReward checkpoint)")
    layers = [(head[i]["weight"], head[i]["bias"]) for i in sorted(head)]
    return vision, text, layers


def _vision_key(name: str) -> str:
    for pattern, target in _VISION_KEYS:
        if re.fullmatch(pattern, name):
            return re.sub(pattern, target, name)
    raise ValueError(f"unexpected key 'blip.visual_encoder.{name}'")


def load_architecture(model_config: str) -> dict[str, dict[str, Any]]:
    """The official sizes, with the `vision` / `text` entries of a model_config JSON."""
    arch = {part: dict(sizes) for part, sizes in ARCHITECTURE.items()}
    if not model_config:
        return arch
    data = json.loads(Path(model_config).expanduser().read_text(encoding="utf-8"))
    if not isinstance(data, dict) or set(data) - set(arch):
        raise ValueError("expected a JSON object with 'vision' and/or 'text' entries")
    for part, sizes in data.items():
        unknown = set(sizes) - set(arch[part]) if isinstance(sizes, dict) else {"?"}
        if unknown:
            raise ValueError(f"unknown {part} size(s) {sorted(unknown)}; known: "
                             f"{', '.join(arch[part])}")
        arch[part].update(sizes)
    return arch


def preprocess(image: Any, size: int) -> Any:
    """The official _transform(size) on one PIL image, as torchvision does it on PIL:
    shorter side to `size` (bicubic, the longer side truncated), centre crop (rounded
    offsets), then RGB, [0, 1], CLIP's normalisation. A CHW float32 tensor."""
    import numpy as np
    import torch
    from PIL import Image

    width, height = image.size
    if (width <= height and width != size) or (height < width and height != size):
        if width <= height:
            new = (size, int(size * height / width))
        else:
            new = (int(size * width / height), size)
        image = image.resize(new, Image.BICUBIC)
    width, height = image.size
    top, left = int(round((height - size) / 2.0)), int(round((width - size) / 2.0))
    image = image.crop((left, top, left + size, top + size)).convert("RGB")
    pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy())
    pixels = pixels.permute(2, 0, 1).float().div(255.0)
    mean = torch.tensor(PIXEL_MEAN).view(3, 1, 1)
    std = torch.tensor(PIXEL_STD).view(3, 1, 1)
    return (pixels - mean) / std


class _Loaded:
    """The converted model, its tokenizer and head, on one device (loaded once)."""

    def __init__(self, weights: str, tokenizer: str, cache_dir: str,
                 arch: dict[str, dict[str, Any]], dtype: str, device: str):
        import torch
        from transformers import (BertTokenizer, BlipTextConfig, BlipTextModel,
                                  BlipVisionConfig, BlipVisionModel)

        state = torch.load(weights, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        vision_state, text_state, head = convert_state_dict(state)
        vision_cfg = BlipVisionConfig(**arch["vision"], hidden_act="gelu")
        # is_decoder builds the cross-attention layers (the forward runs bidirectional);
        # the generation token ids are unused by an encoder
        text_cfg = BlipTextConfig(**arch["text"], encoder_hidden_size=vision_cfg.hidden_size,
                                  is_decoder=True, hidden_act="gelu", bos_token_id=None,
                                  sep_token_id=None)
        self.vision = BlipVisionModel(vision_cfg)
        self.vision.load_state_dict(vision_state, strict=True)
        self.text = BlipTextModel(text_cfg, add_pooling_layer=False)
        self.text.load_state_dict(text_state, strict=True)
        self.head = torch.nn.Sequential(*[torch.nn.Linear(w.shape[1], w.shape[0])
                                          for w, _ in head])
        for linear, (w, b) in zip(self.head, head):
            linear.weight.data.copy_(w)
            linear.bias.data.copy_(b)
        self.device, self.dtype = device, getattr(torch, dtype)
        self.vision.to(device, self.dtype).eval()
        self.text.to(device, self.dtype).eval()
        self.head.to(device).eval()  # float32: the official casts the features .float()
        self.image_size = int(vision_cfg.image_size)
        kwargs = {"cache_dir": cache_dir} if cache_dir else {}
        self.tokenizer = BertTokenizer.from_pretrained(tokenizer, **kwargs)
        self.tokenizer.add_special_tokens({"bos_token": "[DEC]"})  # blip.init_tokenizer
        self.tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
        if len(self.tokenizer) > text_cfg.vocab_size:
            raise ValueError(f"the tokenizer has {len(self.tokenizer)} tokens but the text "
                             f"encoder only {text_cfg.vocab_size} embeddings")

    def rewards(self, prompts: list[str], images: list[Any]) -> tuple[Any, Any, list[int]]:
        """(scores, rewards before normalisation, prompt token counts) of aligned lists."""
        import torch

        pixels = torch.stack([preprocess(im, self.image_size) for im in images])
        tokens = self.tokenizer(prompts, padding="max_length", truncation=True,
                                max_length=MAX_LENGTH, return_tensors="pt")
        counts = [len(self.tokenizer(p)["input_ids"]) for p in prompts]
        with torch.inference_mode():
            embeds = self.vision(pixel_values=pixels.to(self.device, self.dtype)).last_hidden_state
            out = self.text(input_ids=tokens["input_ids"].to(self.device),
                            attention_mask=tokens["attention_mask"].to(self.device),
                            encoder_hidden_states=embeds, is_decoder=False)
            features = out.last_hidden_state[:, 0, :].float()
            reward = self.head(features)[:, 0]
            score = (reward - REWARD_MEAN) / REWARD_STD  # in float32, as the official
        return score.cpu().tolist(), reward.cpu().tolist(), counts




def _check(c: Any, who: str, key: str) -> None:
    """One line (what, where, what to do) unless the weights, tokenizer and sizes are on
    disk or can be fetched now; answered from local files alone when offline."""
    from autojudge.runtime.extras import require
    from autojudge.runtime.weights import hf_cached, hub_offline

    require("clip", who, ("torch", "transformers"))
    if c.model_config:
        try:
            load_architecture(c.model_config)
        except (OSError, ValueError) as exc:
            raise AutojudgeError(f"{who}: model_config {c.model_config} is not usable "
                                 f"({' '.join(str(exc).split())[:200]})") from None
    check_weights_file(c, who, key, "ImageReward.pt")
    folder = Path(c.tokenizer).expanduser()
    names = ["vocab.txt", "tokenizer.json"]
    if folder.is_dir():
        if not any((folder / name).is_file() for name in names):
            raise AutojudgeError(f"{who}: {folder} has no vocab.txt or tokenizer.json; set "
                                 f"{key}.tokenizer to a folder written by save_pretrained")
    elif c.tokenizer.startswith(("/", ".", "~")):
        raise AutojudgeError(f"{who}: tokenizer folder not found: {folder}; set "
                             f"{key}.tokenizer to an existing folder or a hub id")
    elif not hf_cached(c.tokenizer, names, c.cache_dir) and hub_offline():
        raise offline_error(who, f"the tokenizer {c.tokenizer} is not in the Hugging Face cache",
                       f"{key}.tokenizer=/path/to/bert-base-uncased")


class ImageRewardJudge(CheckpointJudge):
    """ImageReward: the official BLIP reward model's normalised score of (prompt, image).

    raw = {"reward" (before normalisation, and before the clamp to score_range),
    "truncated" (the prompt was cut at 35 tokens), "prompt_tokens"}.
    """

    kind = "imagereward"
    # the head is linear, so unbounded; real images score within about -2.5..2.5 (the
    # training distribution's standard deviations), so +-10 clamps nothing real
    score_range = (-10.0, 10.0)
    card = JUDGES_DIR / "imagereward.md"
    validation_families = ("alignment", "quality")
    non_semantic = ("device", "cache_dir", "batch_size")

    @dataclass
    class Config:
        """Params of the `imagereward` judge.

        Attributes:
            pretrained: the official checkpoint: hf-file:ORG/REPO/FILE (downloaded once
                into the Hugging Face cache) or a local ImageReward.pt.
            revision: hub revision of an hf-file: checkpoint (a commit pins it; "" = main).
            tokenizer: BLIP's tokenizer base: a hub id or a save_pretrained folder.
            model_config: optional JSON of architecture sizes ({"vision": {...}, "text":
                {...}}, keys as in ARCHITECTURE); "" = the official ViT-L / BERT-base.
            dtype: float32 | float16 | bfloat16 (the head always runs in float32).
            device: auto (cuda > mps > cpu) | cpu | cuda | cuda:N | mps.
            cache_dir: hub download cache ("" = the library's default).
            batch_size: items per call of the judge (each image still gets its own
                forward pass, as in the official score(), so it never changes a score).
        """

        pretrained: str = "hf-file:THUDM/ImageReward/ImageReward.pt"
        revision: str = ""
        tokenizer: str = "bert-base-uncased"
        model_config: str = ""
        dtype: str = "float32"
        device: str = "auto"
        cache_dir: str = ""
        batch_size: int = 8


    def fingerprint_params(self) -> dict[str, Any]:
        # the weights by identity (a local file by digest), never device or batch size
        from autojudge.runtime.weights import model_ref_identity

        c = self.config
        return {"pretrained": file_identity(c.pretrained), "revision": c.revision,
                "tokenizer": model_ref_identity(c.tokenizer),
                "model_config": file_identity(c.model_config), "dtype": c.dtype}

    def check(self) -> None:
        _check(self.config, self.where, f"judge.{self.name}")

    def applies(self, prompt: Prompt) -> bool:
        return bool(prompt.text and prompt.text.strip())

    def _load(self, device: str) -> _Loaded:
        c = self.config
        try:
            weights = self.weights_file()
            tokenizer = str(Path(c.tokenizer).expanduser()) \
                if Path(c.tokenizer).expanduser().is_dir() else c.tokenizer
            return _Loaded(str(Path(weights).expanduser()), tokenizer, c.cache_dir,
                           load_architecture(c.model_config), c.dtype, device)
        except AutojudgeError:
            raise
        except Exception as exc:  # a corrupt file, a failed download, a wrong layout
            raise AutojudgeError(
                f"{self.where}: could not load ImageReward from {c.pretrained} "
                f"({type(exc).__name__}: {' '.join(str(exc).split())[:300]}); check "
                f"judge.{self.name}.pretrained, .tokenizer and .model_config") from exc

    def score(self, items: Sequence[JudgeItem]) -> list[Score]:
        ok = [i for i, item in enumerate(items) if self.applies(item.prompt)]
        out = [Score(None, failure=Failure(
            "not_applicable", f"judge '{self.name}': prompt '{item.prompt.id}' is empty"))
            for item in items]
        if not ok:
            return out
        model = self._model()
        low, high = self.score_range
        for i in ok:
            # one forward pass per image, as the official score(): a batched matmul
            # rounds differently per batch shape, and a cached score must not depend
            # on which images happened to share its batch
            scores, rewards, counts = model.rewards([items[i].prompt.text], [items[i].image])
            raw = {"reward": round(float(rewards[0]), 8), "truncated": counts[0] > MAX_LENGTH,
                   "prompt_tokens": int(counts[0])}
            out[i] = Score(min(max(float(scores[0]), low), high), raw=raw)
        return out
