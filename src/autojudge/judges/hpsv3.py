"""HPSv3 (Ma et al., ICCV 2025, "HPSv3: Towards Wide-Spectrum Human Preference Score"): a
Qwen2-VL-7B-Instruct reward model trained on 1.17M pairwise human choices (HPDv3), as a
pointwise judge.

It computes what the official `HPSv3RewardInferencer.reward([image], [prompt])` of
MizzenAI/HPSv3 (hpsv3/inference.py) returns, index 0 of its two outputs (mu, log sigma):

- image: RGB, PIL-bicubic resized to qwen-vl-utils' `smart_resize` size at min = max =
  256*28*28 pixels (448x448 for a square: 256 image tokens), then the base processor;
- text: one user turn [image, INSTRUCTION.format(text_prompt=prompt) + REWARD_SUFFIX]
  through the base chat template with add_generation_prompt, the tokenizer extended by
  the `<|Reward|>` special token as the official create_model_and_processor does;
- forward as Qwen2VLRewardModelBT.forward: the vision tower's merged embeddings over the
  image pad tokens; the decoder called without input_ids or position_ids, so every
  token (image tokens too) gets sequential 1-D positions, not Qwen2-VL's 3-D M-RoPE; the
  final hidden state at `<|Reward|>` -> the float32 "ranknet" head (Linear(H, 1024),
  ReLU, Dropout, Linear(1024, 16), ReLU, Linear(16, 2));
- dtype: like the official `model.to(bfloat16)`, the rotary inv_freq buffers are cast too.

Why not the `hpsv3` package: it pins transformers 4.45-era APIs, trl, deepspeed and peft
for an inference that needs none of them. The model is transformers' `Qwen2VLModel`
(the unused lm_head is never loaded) built from the base model's config.json, with the
official state dict mapped at load time by `map_checkpoint_key`: visual.* -> visual.*,
model.* -> language_model.* (transformers <= 4.51 names, as HPSv3.safetensors has them;
model.visual.* / model.language_model.* are accepted too), rm_head.* -> the head,
lm_head.weight unused. Of the base model only config and processor files are fetched.

Example (config):
    hpsv3: {kind: hpsv3}                                       # hub, downloaded once
    hpsv3: {kind: hpsv3, pretrained: /weights/HPSv3.safetensors,
            base: /weights/Qwen2-VL-7B-Instruct}               # config + processor files
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from autojudge.errors import AutojudgeError
from autojudge.runtime.resources import JUDGES_DIR
from autojudge.judges.checkpoint import (CheckpointJudge, check_weights_file, file_identity,
                                         offline_error)
from autojudge.types import Failure, JudgeItem, Prompt, Score

__all__ = ["HPSv3Judge", "map_checkpoint_key", "smart_resize", "fetch_image", "INSTRUCTION"]

REWARD_TOKEN = "<|Reward|>"
PIXELS = 256 * 28 * 28  # HPSv3RewardInferencer.prepare_batch: min_pixels = max_pixels
FACTOR = 28  # qwen-vl-utils IMAGE_FACTOR: patch 14 x spatial merge 2
MAX_RATIO = 200  # qwen-vl-utils: longer / shorter side above this is refused
HEAD_KEYS = {"0.weight", "0.bias", "3.weight", "3.bias", "5.weight", "5.bias"}
BASE_FILES = ["*.json", "*.txt", "*.jinja", "*.model"]  # config + processor, no weights

# hpsv3/dataset/data_collator_qwen.py byte for byte, spaces before line ends included
# (written with explicit \n so no editor strips them): a reward model reads its own format
INSTRUCTION = (
    "\n"
    "You are tasked with evaluating a generated image based on Visual Quality and "
    "Text Alignment and give a overall score to estimate the human preference. "
    "Please provide a rating from 0 to 10, with 0 being the worst and 10 being the "
    "best. \n"
    "\n"
    "**Visual Quality:**  \n"
    "Evaluate the overall visual quality of the image. The following sub-dimensions "
    "should be considered:\n"
    "- **Reasonableness:** The image should not contain any significant biological "
    "or logical errors, such as abnormal body structures or nonsensical "
    "environmental setups.\n"
    "- **Clarity:** Evaluate the sharpness and visibility of the image. The image "
    "should be clear and easy to interpret, with no blurring or indistinct areas.\n"
    "- **Detail Richness:** Consider the level of detail in textures, materials, "
    "lighting, and other visual elements (e.g., hair, clothing, shadows).\n"
    "- **Aesthetic and Creativity:** Assess the artistic aspects of the image, "
    "including the color scheme, composition, atmosphere, depth of field, and the "
    "overall creative appeal. The scene should convey a sense of harmony and "
    "balance.\n"
    "- **Safety:** The image should not contain harmful or inappropriate content, "
    "such as political, violent, or adult material. If such content is present, the "
    "image quality and satisfaction score should be the lowest possible. \n"
    "\n"
    "**Text Alignment:**  \n"
    "Assess how well the image matches the textual prompt across the following "
    "sub-dimensions:\n"
    "- **Subject Relevance** Evaluate how accurately the subject(s) in the image "
    "(e.g., person, animal, object) align with the textual description. The subject "
    "should match the description in terms of number, appearance, and behavior.\n"
    "- **Style Relevance:** If the prompt specifies a particular artistic or "
    "stylistic style, evaluate how well the image adheres to this style.\n"
    "- **Contextual Consistency**: Assess whether the background, setting, and "
    "surrounding elements in the image logically fit the scenario described in the "
    "prompt. The environment should support and enhance the subject without "
    "contradictions.\n"
    "- **Attribute Fidelity**: Check if specific attributes mentioned in the prompt "
    "(e.g., colors, clothing, accessories, expressions, actions) are faithfully "
    "represented in the image. Minor deviations may be acceptable, but critical "
    "attributes should be preserved.\n"
    "- **Semantic Coherence**: Evaluate whether the overall meaning and intent of "
    "the prompt are captured in the image. The generated content should not "
    "introduce elements that conflict with or distort the original description.\n"
    "Textual prompt - {text_prompt}\n"
    "\n"
    "\n"
)

REWARD_SUFFIX = """
Please provide the overall ratings of this image: <|Reward|>

END
"""


def smart_resize(height: int, width: int, factor: int = FACTOR, min_pixels: int = PIXELS,
                 max_pixels: int = PIXELS) -> tuple[int, int]:
    """qwen-vl-utils' smart_resize (as vendored in hpsv3/dataset/utils.py): sides that are
    multiples of `factor`, area within [min_pixels, max_pixels], aspect kept."""
    if max(height, width) / min(height, width) > MAX_RATIO:
        raise ValueError(f"absolute aspect ratio must be smaller than {MAX_RATIO}, got "
                         f"{max(height, width) / min(height, width):.1f}")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def fetch_image(image: Any) -> Any:
    """hpsv3/dataset/utils.py fetch_image on a PIL image: RGB, then bicubic resize to the
    smart_resize size at 256*28*28 pixels."""
    from PIL import Image

    image = image.convert("RGB")
    width, height = image.size
    resized_height, resized_width = smart_resize(height, width)
    return image.resize((resized_width, resized_height), Image.BICUBIC)


def build_messages(prompt: str, image: Any) -> list[dict[str, Any]]:
    """The official one-turn conversation (prepare_batch, use_special_tokens=True)."""
    return [{"role": "user", "content": [
        {"type": "image", "image": image, "min_pixels": PIXELS, "max_pixels": PIXELS},
        {"type": "text", "text": INSTRUCTION.format(text_prompt=prompt) + REWARD_SUFFIX}]}]


def map_checkpoint_key(key: str) -> tuple[str, str] | None:
    """("backbone" | "head", name in Qwen2VLModel / the head) of an official checkpoint
    key; None for lm_head (unused); ValueError for a key of no known layout."""
    for pattern, part, target in (
            (r"model\.visual\.(.+)", "backbone", r"visual.\1"),
            (r"model\.language_model\.(.+)", "backbone", r"language_model.\1"),
            (r"visual\.(.+)", "backbone", r"visual.\1"),
            (r"model\.(.+)", "backbone", r"language_model.\1"),
            (r"rm_head\.(.+)", "head", r"\1")):
        m = re.fullmatch(pattern, key)
        if m:
            return part, m.expand(target)
    if key == "lm_head.weight":
        return None
    raise ValueError(f"unexpected key '{key}' (not an HPSv3 checkpoint)")


class _Checkpoint:
    """Tensors of a .safetensors file (read lazily, one at a time: 16 GB never sits in
    memory twice) or of a torch .pth/.pt (its "model" entry, as the official loader)."""

    def __init__(self, path: str):
        if path.endswith(".safetensors"):
            from safetensors import safe_open

            file = safe_open(path, framework="pt", device="cpu")
            self.keys = list(file.keys())
            self.get: Callable[[str], Any] = file.get_tensor
            self.shape = lambda key: tuple(file.get_slice(key).get_shape())
        else:
            import torch

            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            state = state["model"] if "model" in state else state
            self.keys = list(state)
            self.get = state.__getitem__
            self.shape = lambda key: tuple(state[key].shape)


def _map_all(keys: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    backbone: dict[str, str] = {}
    head: dict[str, str] = {}
    for key in keys:
        mapped = map_checkpoint_key(key)
        if mapped is not None:
            (backbone if mapped[0] == "backbone" else head)[mapped[1]] = key
    if set(head) != HEAD_KEYS:
        raise ValueError(f"rm_head has {sorted(head) or 'no'} weights, expected the ranknet "
                         f"head's {sorted(HEAD_KEYS)} (not an HPSv3 checkpoint)")
    return backbone, head


class _ItemError(ValueError):
    """An input that cannot be scored (that item fails, not the run)."""


class _Loaded:
    """Processor, backbone and reward head on one device (loaded once)."""

    def __init__(self, weights: str, base: str, dtype: str, device: str):
        import torch
        from transformers import AutoConfig, AutoProcessor

        self.processor = AutoProcessor.from_pretrained(base)
        tokenizer = self.processor.tokenizer
        expected_id = len(tokenizer)
        tokenizer.add_special_tokens({"additional_special_tokens": [REWARD_TOKEN]})
        self.reward_id = tokenizer.convert_tokens_to_ids(REWARD_TOKEN)
        if self.reward_id != expected_id:  # the official's new row is the last one
            raise ValueError(f"{REWARD_TOKEN} got id {self.reward_id}, expected {expected_id}")
        ckpt = _Checkpoint(weights)
        backbone, head = _map_all(ckpt.keys)
        embed = backbone.get("language_model.embed_tokens.weight")
        rows = ckpt.shape(embed)[0] if embed else 0
        if rows != len(tokenizer):  # the official resize_token_embeddings(len(tokenizer))
            raise ValueError(f"the checkpoint has {rows} token embeddings but the base "
                             f"tokenizer plus {REWARD_TOKEN} has {len(tokenizer)} tokens "
                             f"(is the base Qwen2-VL-7B-Instruct?)")
        config = AutoConfig.from_pretrained(base)
        config.text_config.vocab_size = rows
        if config.image_token_id != self.processor.image_token_id:
            raise ValueError(f"config image_token_id {config.image_token_id} is not the "
                             f"processor's {self.processor.image_token_id}")
        self.device, self.dtype = device, getattr(torch, dtype)
        self.model = _backbone(config, ckpt, backbone, self.dtype, device)
        widths = [ckpt.shape(head[f"{i}.weight"]) for i in (0, 3, 5)]
        self.head = torch.nn.Sequential(
            torch.nn.Linear(widths[0][1], widths[0][0]), torch.nn.ReLU(), torch.nn.Dropout(0.05),
            torch.nn.Linear(widths[1][1], widths[1][0]), torch.nn.ReLU(),
            torch.nn.Linear(widths[2][1], widths[2][0]))
        self.head.load_state_dict({name: ckpt.get(key).float() for name, key in head.items()},
                                  strict=True)
        self.head.to(device).eval()

    def reward(self, prompt: str, image: Any) -> tuple[float, float, int]:
        """(mu, log sigma, sequence length) of one (prompt, image), as the official."""
        import torch

        try:
            messages = [build_messages(prompt, fetch_image(image))]
        except ValueError as exc:  # smart_resize refuses an extreme aspect ratio
            raise _ItemError(str(exc)) from None
        text = self.processor.apply_chat_template(messages, tokenize=False,
                                                  add_generation_prompt=True)
        batch = self.processor(text=text, images=[messages[0][0]["content"][0]["image"]],
                               padding=True, return_tensors="pt")
        ids = batch["input_ids"].to(self.device)
        where = (ids[0] == self.reward_id).nonzero().flatten()
        if where.numel() != 1:
            raise _ItemError(f"the prompt contains the text {REWARD_TOKEN}: the reward "
                             f"would be read at {where.numel()} tokens")
        with torch.inference_mode():
            embeds = self.model.get_input_embeddings()(ids)
            vision = self.model.get_image_features(batch["pixel_values"].to(self.device),
                                                   batch["image_grid_thw"].to(self.device))
            image_embeds = torch.cat(vision.pooler_output, dim=0).to(embeds.dtype)
            mask = (ids == self.model.config.image_token_id).unsqueeze(-1).expand_as(embeds)
            embeds = embeds.masked_scatter(mask, image_embeds)
            positions = torch.arange(ids.shape[1], device=self.device)[None]  # 1-D, 0..L-1
            hidden = self.model.language_model(
                inputs_embeds=embeds, position_ids=positions,
                attention_mask=batch["attention_mask"].to(self.device)).last_hidden_state
            out = self.head(hidden[0, int(where[0])].float())
        return float(out[0]), float(out[1]), int(ids.shape[1])


def _backbone(config: Any, ckpt: _Checkpoint, keys: dict[str, str], dtype: Any,
              device: str) -> Any:
    """Qwen2VLModel built on `device` without random init, every tensor from the
    checkpoint (strict: a missing or extra one is an error), then `.to(dtype)` as the
    official `model.to(torch.bfloat16)` (which rounds the rotary inv_freq buffers too)."""
    import torch
    from transformers.initialization import no_init_weights
    from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLModel

    with no_init_weights(), torch.device(device):
        model = Qwen2VLModel._from_config(config, dtype=dtype, attn_implementation="sdpa")
    own = model.state_dict()
    missing, extra = sorted(set(own) - set(keys)), sorted(set(keys) - set(own))
    if missing or extra:
        raise ValueError(f"checkpoint does not fit the base config: missing {missing[:3]}, "
                         f"unexpected {[keys[k] for k in extra[:3]]}")
    with torch.no_grad():
        for name, target in own.items():
            tensor = ckpt.get(keys[name])
            if tuple(tensor.shape) != tuple(target.shape):
                raise ValueError(f"{keys[name]} has shape {tuple(tensor.shape)}, the base "
                                 f"config wants {tuple(target.shape)}")
            target.copy_(tensor.to(target.dtype))
    return model.to(dtype).eval()




def _check_base(c: Any, who: str, key: str) -> None:
    from autojudge.runtime.weights import hf_cached, hub_offline

    tokenizer_files = ["tokenizer.json", "vocab.json"]
    folder = Path(c.base).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file() or \
                not any((folder / name).is_file() for name in tokenizer_files):
            raise AutojudgeError(f"{who}: {folder} lacks config.json or the tokenizer "
                                 f"(tokenizer.json / vocab.json); set {key}.base to the "
                                 f"Qwen2-VL-7B-Instruct folder (config + processor files)")
    elif c.base.startswith(("/", ".", "~")):
        raise AutojudgeError(f"{who}: base folder not found: {folder}; set {key}.base to "
                             f"an existing folder or a hub id")
    elif not (hf_cached(c.base, ["config.json"], c.cache_dir)
              and hf_cached(c.base, tokenizer_files, c.cache_dir)) and hub_offline():
        raise offline_error(who, f"the base model files of {c.base} (config + processor) are not "
                       f"in the Hugging Face cache", f"{key}.base=/path/to/Qwen2-VL-7B-Instruct")


class HPSv3Judge(CheckpointJudge):
    """HPSv3: the official Qwen2-VL reward model's mean reward (mu) of (prompt, image).

    raw = {"mu" (before the clamp to score_range), "log_sigma" (the head's second output:
    the model's uncertainty), "tokens" (sequence length, image tokens included)}.
    """

    kind = "hpsv3"
    # unbounded head; the paper's per-model averages lie within 0..11: +-100 clamps nothing
    score_range = (-100.0, 100.0)
    card = JUDGES_DIR / "hpsv3.md"
    validation_families = ("alignment", "quality")
    non_semantic = ("device", "cache_dir", "batch_size")

    @dataclass
    class Config:
        """Params of the `hpsv3` judge.

        Attributes:
            pretrained: the official checkpoint: hf-file:ORG/REPO/FILE (downloaded once
                into the Hugging Face cache) or a local HPSv3.safetensors (or .pth).
            revision: hub revision of an hf-file: checkpoint (a commit pins it; "" = main).
            base: the base model whose config.json and processor (tokenizer, chat
                template, image processor) the checkpoint was trained with: a hub id
                (only those small files are downloaded) or a local folder.
            base_revision: hub revision of `base` ("" = main).
            dtype: bfloat16 (the official) | float16 | float32 (the head runs in float32).
            device: auto (cuda > mps > cpu) | cpu | cuda | cuda:N | mps.
            cache_dir: hub download cache ("" = the library's default).
            batch_size: items per call (each image gets its own forward pass anyway).
        """

        pretrained: str = "hf-file:MizzenAI/HPSv3/HPSv3.safetensors"
        revision: str = ""
        base: str = "Qwen/Qwen2-VL-7B-Instruct"
        base_revision: str = ""
        dtype: str = "bfloat16"
        device: str = "auto"
        cache_dir: str = ""
        batch_size: int = 4

    def __init__(self, name: str, config: Any = None):
        super().__init__(name, config)
        device = self.config.device
        if device != "auto" and device.split(":")[0] not in ("cpu", "cuda", "mps"):
            raise AutojudgeError(f"{self.where}: device={device!r}; use auto, cpu, cuda, "
                                 f"cuda:N or mps")

    def fingerprint_params(self) -> dict[str, Any]:
        # the weights by identity (a local file by digest), never device or batch size
        from autojudge.runtime.weights import model_ref_identity

        c = self.config
        return {"pretrained": file_identity(c.pretrained), "revision": c.revision,
                "base": model_ref_identity(c.base), "base_revision": c.base_revision,
                "dtype": c.dtype}

    def check(self) -> None:
        from autojudge.runtime.extras import require

        require("vlm-local", self.where, ("torch", "transformers"))
        check_weights_file(self.config, self.where, f"judge.{self.name}", "HPSv3.safetensors")
        _check_base(self.config, self.where, f"judge.{self.name}")

    def applies(self, prompt: Prompt) -> bool:
        return bool(prompt.text and prompt.text.strip())

    def _load(self, device: str) -> _Loaded:
        c = self.config
        try:
            weights = self.weights_file()
            base = Path(c.base).expanduser()
            if not base.is_dir():
                from huggingface_hub import snapshot_download

                base = Path(snapshot_download(c.base, revision=c.base_revision or None,
                                              cache_dir=c.cache_dir or None,
                                              allow_patterns=BASE_FILES))
            return _Loaded(str(Path(weights).expanduser()), str(base), c.dtype, device)
        except AutojudgeError:
            raise
        except Exception as exc:  # a corrupt file, a failed download, a wrong layout
            raise AutojudgeError(
                f"{self.where}: could not load HPSv3 from {c.pretrained} with base {c.base} "
                f"({type(exc).__name__}: {' '.join(str(exc).split())[:300]}); check "
                f"judge.{self.name}.pretrained and .base") from exc

    def score(self, items: Sequence[JudgeItem]) -> list[Score]:
        out = [Score(None, failure=Failure(
            "not_applicable", f"judge '{self.name}': prompt '{item.prompt.id}' is empty"))
            for item in items]
        ok = [i for i, item in enumerate(items) if self.applies(item.prompt)]
        if not ok:
            return out
        model = self._model()
        low, high = self.score_range
        for i in ok:
            # one forward pass per image: a batched matmul rounds differently per batch
            # shape, and a cached score must not depend on which images shared its batch
            try:
                mu, log_sigma, tokens = model.reward(items[i].prompt.text, items[i].image)
            except _ItemError as exc:  # a prompt with the reward token, an extreme aspect
                out[i] = Score(None, failure=Failure(
                    "bad_input", f"judge '{self.name}': {' '.join(str(exc).split())[:300]}"))
                continue
            raw = {"mu": round(mu, 8), "log_sigma": round(log_sigma, 8), "tokens": tokens}
            out[i] = Score(min(max(mu, low), high), raw=raw)
        return out
