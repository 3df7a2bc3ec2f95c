"""MPS (Zhang et al., CVPR 2024, "Learning Multi-dimensional Human Preference for
Text-to-Image Generation"; Kwai-Kolors/MPS): the "overall" preference score of one
(prompt, image), computed as the official `infer_one_sample` (eval_overall_mps_on_*.py,
the scripts behind the paper's figures) computes it:

- image: convert("RGB"), CLIP-ViT-H-14's (PIL) CLIPImageProcessor; the vision tower's last
  hidden state (every token, before post_layernorm) through `visual_projection`: image_f;
- prompt and the fixed "overall" condition: the CLIP-H tokenizer padded to 77; the text
  tower's last hidden state through `text_projection`: text_f, condition_f; the end-of-text
  token (argmax of the ids, as transformers 4.27 pooled) through it: text_eos;
- mask: per prompt token its largest dot product with a condition token, over the
  prompt's largest; tokens above `mask_threshold` (0.3) are attended, the others -inf;
- the cross model (4 layers: multi-query cross-attention to the prompt tokens with a
  parallel SwiGLU, then a rotary self-attention + SwiGLU block) over image_f; its first
  token is the image feature; score = logit_scale.exp() * cos(text_eos, that feature).

Why not the MPS repository or `imscore`: the first pins transformers 4.27 and ships its
model as a whole pickled module (unpickling needs its `trainer` package and that
transformers); `imscore` pins transformers < 5 and uses the training forward's 0.01 mask
threshold. Here the CLIP part is transformers' `CLIPModel` (sizes from the processor
repo's config.json; CLIP-H's own weights are never loaded) and the cross model a few torch
functions on its weights (sizes read off them). `autojudge.judges.mps_checkpoint` reads
the official MPS_overall_checkpoint.pth (a pickled model, by a restricted unpickler that
runs none of its code), a state dict of it (model.*, cross_model.*) or imscore's hub copy
(RE-N-Y/mpsv1: mps.model.*, mps.cross_model.*):

    model.<CLIPModel key>        -> transformers CLIPModel (position_ids buffers dropped)
    cross_model.layers.N.0.fn.*  -> layer N's cross-attention (norm, to_q, to_kv, to_out,
                                    ff.0, ff.2)
    cross_model.layers.N.1.fn.*  -> layer N's parallel block (norm, fused_attn_ff_proj,
                                    attn_out, ff_out.1, rotary_emb.inv_freq)

Example (config):
    mps: {kind: mps}                                       # hub, downloaded once
    mps: {kind: mps, pretrained: /weights/MPS_overall_checkpoint.pth,
          processor: /weights/CLIP-ViT-H-14-laion2B-s32B-b79K}
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from autojudge.errors import AutojudgeError
from autojudge.runtime.resources import JUDGES_DIR
from autojudge.judges.checkpoint import (CheckpointJudge, check_weights_file, file_identity,
                                         offline_error)
from autojudge.types import Failure, JudgeItem, Prompt, Score

__all__ = ["MPSJudge", "CONDITION", "cross_forward"]

# the official condition for the "overall" preference (README and eval scripts)
CONDITION = ("light, color, clarity, tone, style, ambiance, artistry, shape, face, hair, "
             "hands, limbs, structure, instance, texture, quantity, attributes, position, "
             "number, location, word, things.")
TEXT_MEMO = 256  # prompts whose text features stay in memory


# ------------------------------------------------------- the condition-aware cross model

def _layer_norm(x: Any, p: dict, prefix: str) -> Any:
    import torch.nn.functional as F

    return F.layer_norm(x, x.shape[-1:], p[prefix + "norm.weight"], p[prefix + "norm.bias"])


def _swiglu(x: Any, weight: Any) -> Any:
    import torch.nn.functional as F

    value, gate = x.chunk(2, dim=-1)
    return F.linear(F.silu(gate) * value, weight)


def _attend(q: Any, k: Any, v: Any, mask: Any = None) -> Any:
    """Multi-query attention: q [b, h, n, d] on one key/value head k, v [b, j, d]."""
    import torch

    sim = torch.einsum("bhid,bjd->bhij", q, k)
    if mask is not None:
        sim = sim + mask[:, None]
    sim = sim - sim.amax(dim=-1, keepdim=True)
    out = torch.einsum("bhij,bjd->bhid", sim.softmax(dim=-1), v)
    return out.transpose(1, 2).reshape(q.shape[0], q.shape[2], -1)


def _cross_attention(p: dict, prefix: str, x: Any, context: Any, mask: Any, heads: int,
                     dim_head: int) -> Any:
    """CrossAttention(parallel_ff=True) plus its residual."""
    import torch.nn.functional as F

    h = _layer_norm(x, p, prefix)
    q = F.linear(h, p[prefix + "to_q.weight"])
    q = q.view(*q.shape[:2], heads, dim_head).transpose(1, 2) * dim_head ** -0.5
    k, v = F.linear(context, p[prefix + "to_kv.weight"]).chunk(2, dim=-1)
    out = F.linear(_attend(q, k, v, mask), p[prefix + "to_out.weight"])
    ff = _swiglu(F.linear(h, p[prefix + "ff.0.weight"]), p[prefix + "ff.2.weight"])
    return out + ff + x


def _rotate(t: Any, positions: Any) -> Any:
    import torch

    first, second = t.chunk(2, dim=-1)
    return t * positions.cos() + torch.cat((-second, first), dim=-1) * positions.sin()


def _parallel_block(p: dict, prefix: str, x: Any, heads: int, dim_head: int) -> Any:
    """ParallelTransformerBlock (rotary multi-query self-attention + SwiGLU) + residual."""
    import torch
    import torch.nn.functional as F

    h = _layer_norm(x, p, prefix)
    fused = p[prefix + "fused_attn_ff_proj.weight"]
    inner = heads * dim_head
    q, k, v, ff = F.linear(h, fused).split(
        (inner, dim_head, dim_head, fused.shape[0] - inner - 2 * dim_head), dim=-1)
    q = q.view(*q.shape[:2], heads, dim_head).transpose(1, 2)
    inv_freq = p[prefix + "rotary_emb.inv_freq"]
    seq = torch.arange(x.shape[1], device=x.device, dtype=inv_freq.dtype)
    freqs = torch.einsum("i,j->ij", seq, inv_freq)
    positions = torch.cat((freqs, freqs), dim=-1)
    q, k = _rotate(q, positions) * dim_head ** -0.5, _rotate(k, positions)
    out = F.linear(_attend(q, k, v), p[prefix + "attn_out.weight"])
    return out + _swiglu(ff, p[prefix + "ff_out.1.weight"]) + x


def cross_forward(p: dict[str, Any], image_f: Any, text_f: Any, mask: Any) -> Any:
    """Cross_model(image tokens, prompt tokens, additive mask [b, n, j]) -> [b, n, D]; the
    sizes (layers, heads, head width) are read off the weights."""
    layers = 1 + max(int(k.split(".")[1]) for k in p)
    dim_head = p["layers.0.0.fn.to_kv.weight"].shape[0] // 2
    heads = p["layers.0.0.fn.to_q.weight"].shape[0] // dim_head
    x = image_f
    for i in range(layers):
        x = _cross_attention(p, f"layers.{i}.0.fn.", x, text_f, mask, heads, dim_head)
        x = _parallel_block(p, f"layers.{i}.1.fn.", x, heads, dim_head)
    return x


# ------------------------------------------------------------------------ the model

class _Loaded:
    """The MPS model, its tokenizer and image processor, on one device (loaded once)."""

    def __init__(self, weights: str, processor: str, cache_dir: str, dtype: str,
                 device: str, threshold: float):
        import torch
        from transformers import AutoTokenizer, CLIPConfig, CLIPModel

        try:  # transformers >= 5: the PIL path is its own class (the default is torchvision)
            from transformers import CLIPImageProcessorPil as ImageProcessor
        except ImportError:  # transformers 4: CLIPImageProcessor is the PIL path
            from transformers import CLIPImageProcessor as ImageProcessor
        try:
            from transformers.initialization import no_init_weights
        except ImportError:
            from transformers.modeling_utils import no_init_weights

        from autojudge.judges.mps_checkpoint import convert_state_dict, read_checkpoint

        clip_state, cross_state = convert_state_dict(read_checkpoint(weights))
        kwargs = {"cache_dir": cache_dir} if cache_dir else {}
        with no_init_weights():  # every weight comes from the checkpoint
            self.clip = CLIPModel(CLIPConfig.from_pretrained(processor, **kwargs))
        # assign: the checkpoint's tensors become the parameters (no second copy of CLIP-H)
        self.clip.load_state_dict(clip_state, strict=True, assign=True)
        del clip_state
        self.device, self.dtype = device, getattr(torch, dtype)
        self.clip.to(device, self.dtype).eval()
        self.cross = {k: v.to(device, self.dtype) for k, v in cross_state.items()}
        self.tokenizer = AutoTokenizer.from_pretrained(processor, **kwargs)
        self.images = ImageProcessor.from_pretrained(processor, **kwargs)
        self.length = min(int(self.tokenizer.model_max_length),
                          int(self.clip.config.text_config.max_position_embeddings))
        self.threshold = threshold
        self._texts: OrderedDict[str, tuple[Any, Any, int]] = OrderedDict()
        self._condition = self._encode(CONDITION)[0]

    def _encode(self, text: str) -> tuple[Any, Any, int]:
        """(projected last hidden states [1, L, D], projected end-of-text state [1, D],
        token count before truncation) of one text, padded to the context as officially."""
        import torch

        ids = self.tokenizer(text, max_length=self.length, padding="max_length",
                             truncation=True, return_tensors="pt").input_ids.to(self.device)
        with torch.inference_mode():
            hidden = self.clip.text_model(input_ids=ids).last_hidden_state
            # transformers 4.27 (the official) pooled at the largest id: the end-of-text token
            eos = hidden[torch.arange(hidden.shape[0], device=ids.device), ids.argmax(dim=-1)]
            tokens = self.clip.text_projection(hidden)
            pooled = self.clip.text_projection(eos)
        return tokens, pooled, len(self.tokenizer(text, truncation=False)["input_ids"])

    def text(self, prompt: str) -> tuple[Any, Any, int]:
        # every token's features (77 x 1024 floats a prompt), so only the recent prompts
        if prompt not in self._texts:
            self._texts[prompt] = self._encode(prompt)
            while len(self._texts) > TEXT_MEMO:
                self._texts.popitem(last=False)
        self._texts.move_to_end(prompt)
        return self._texts[prompt]

    def score(self, prompt: str, image: Any) -> tuple[float, float, int, int]:
        """(score, cosine, prompt token count, prompt tokens attended) of one image: one
        forward pass per image, as the official, so no score depends on its batch."""
        import torch

        text_f, text_eos, count = self.text(prompt)
        pixels = self.images(images=[image.convert("RGB")], return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            hidden = self.clip.vision_model(
                pixel_values=pixels.to(self.device, self.dtype)).last_hidden_state
            image_f = self.clip.visual_projection(hidden)
            sim = torch.einsum("bid,bjd->bji", text_f, self._condition).amax(dim=1, keepdim=True)
            sim = sim / sim.amax(dim=-1, keepdim=True)  # the official divides by the max
            keep = sim > self.threshold                  # of its one-prompt batch
            mask = torch.zeros(keep.shape, dtype=self.dtype, device=self.device)
            mask = mask.masked_fill(~keep, float("-inf")).expand(-1, image_f.shape[1], -1)
            fused = cross_forward(self.cross, image_f, text_f, mask)[:, 0, :].float()
            fused = fused / fused.norm(dim=-1, keepdim=True)
            text = text_eos.float() / text_eos.float().norm(dim=-1, keepdim=True)
            cosine = float((fused * text).sum())
            scale = float(self.clip.logit_scale.float().exp())
        return scale * cosine, cosine, count, int(keep.sum())


_LOCK = threading.Lock()


_PROCESSOR_FILES = {"config.json": ["config.json"],
                    "preprocessor_config.json": ["preprocessor_config.json",
                                                 "processor_config.json"],
                    "a tokenizer": ["tokenizer.json", "vocab.json"]}


def _check_processor(c: Any, who: str, key: str) -> None:
    """The processor repo gives the CLIP sizes, the image processor and the tokenizer."""
    from autojudge.runtime.weights import hf_cached, hub_offline

    folder = Path(c.processor).expanduser()
    if folder.is_dir():
        for what, names in _PROCESSOR_FILES.items():
            if not any((folder / name).is_file() for name in names):
                raise AutojudgeError(f"{who}: {folder} has no {what}; set {key}.processor to "
                                     f"a folder with CLIP-ViT-H-14's config, preprocessor "
                                     f"and tokenizer files (save_pretrained)")
    elif c.processor.startswith(("/", ".", "~")):
        raise AutojudgeError(f"{who}: processor folder not found: {folder}; set "
                             f"{key}.processor to an existing folder or a hub id")
    elif not all(hf_cached(c.processor, names, c.cache_dir)
                 for names in _PROCESSOR_FILES.values()) and hub_offline():
        raise offline_error(who, f"the processor {c.processor} is not in the Hugging Face cache",
                       f"{key}.processor=/path/to/CLIP-ViT-H-14-laion2B-s32B-b79K")


def _check(c: Any, who: str, key: str) -> None:
    """One line (what, where, what to do) unless the weights and the processor files are
    on disk or can be fetched now; answered from local files alone when offline."""
    from autojudge.runtime.extras import require

    require("clip", who, ("torch", "transformers"))
    check_weights_file(c, who, key, "MPS_overall_checkpoint.pth")
    _check_processor(c, who, key)


class MPSJudge(CheckpointJudge):
    """MPS (overall): logit_scale.exp() x cos(prompt, condition-fused image feature).

    raw = {"cosine", "truncated" (the prompt was cut at 77 tokens), "prompt_tokens",
    "attended_tokens" (prompt token positions, padding included, the condition mask keeps)}.
    """

    kind = "mps"
    score_range = (-100.0, 100.0)  # the learned scale (100) times a cosine
    card = JUDGES_DIR / "mps.md"
    validation_families = ("alignment", "quality")
    non_semantic = ("device", "cache_dir", "batch_size")

    @dataclass
    class Config:
        """Params of the `mps` judge.

        Attributes:
            pretrained: hf-file:ORG/REPO/FILE (downloaded once into the Hugging Face cache)
                or a local file: MPS_overall_checkpoint.pth, a state dict of it, or
                imscore's model.safetensors.
            revision: hub revision of an hf-file: checkpoint (a commit pins it; "" = main).
            processor: CLIP-ViT-H-14's hub repo or a folder: config.json (the CLIP sizes),
                the preprocessor config and the tokenizer; its weights are not loaded.
            mask_threshold: prompt tokens above it (similarity to the condition over the
                prompt's largest) are attended: 0.3 as the official evaluation scripts;
                the training forward and imscore use 0.01.
            dtype: float32 | float16 | bfloat16 (the official inference ran in float16).
            device: auto (cuda > mps > cpu) | cpu | cuda | cuda:N | mps.
            cache_dir: hub download cache ("" = the library's default).
            batch_size: items per call (each image gets its own forward pass, as in the
                official, so it never changes a score).
        """

        pretrained: str = "hf-file:RE-N-Y/mpsv1/model.safetensors"
        revision: str = ""
        processor: str = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
        mask_threshold: float = 0.3
        dtype: str = "float32"
        device: str = "auto"
        cache_dir: str = ""
        batch_size: int = 8


    def fingerprint_params(self) -> dict[str, Any]:
        # the weights by identity (a local file by digest), never device or batch size
        from autojudge.runtime.weights import model_ref_identity

        c = self.config
        return {"pretrained": file_identity(c.pretrained), "revision": c.revision,
                "processor": model_ref_identity(c.processor),
                "mask_threshold": float(c.mask_threshold), "dtype": c.dtype}

    def check(self) -> None:
        _check(self.config, self.where, f"judge.{self.name}")

    def applies(self, prompt: Prompt) -> bool:
        return bool(prompt.text and prompt.text.strip())

    def _load(self, device: str) -> _Loaded:
        c = self.config
        try:
            weights = self.weights_file()
            folder = Path(c.processor).expanduser()
            processor = str(folder) if folder.is_dir() else c.processor
            return _Loaded(str(Path(weights).expanduser()), processor, c.cache_dir, c.dtype,
                           device, float(c.mask_threshold))
        except AutojudgeError:
            raise
        except Exception as exc:  # a corrupt file, a failed download, a wrong layout
            raise AutojudgeError(
                f"{self.where}: could not load MPS from {c.pretrained} "
                f"({type(exc).__name__}: {' '.join(str(exc).split())[:300]}); check "
                f"judge.{self.name}.pretrained and .processor") from exc

    def score(self, items: Sequence[JudgeItem]) -> list[Score]:
        ok = [i for i, item in enumerate(items) if self.applies(item.prompt)]
        out = [Score(None, failure=Failure(
            "not_applicable", f"judge '{self.name}': prompt '{item.prompt.id}' is empty"))
            for item in items]
        if not ok:
            return out
        model = self._model()
        with _LOCK:  # the model's prompt memo is shared by every judge on these weights
            for i in ok:
                value, cosine, count, kept = model.score(items[i].prompt.text, items[i].image)
                if value != value or abs(value) == float("inf"):  # all prompt tokens masked
                    out[i] = Score(None, failure=Failure(
                        "non_finite", f"judge '{self.name}': MPS gave {value} for prompt "
                                      f"'{items[i].prompt.id}'"))
                    continue
                raw = {"cosine": round(cosine, 8), "truncated": count > model.length,
                       "prompt_tokens": int(count), "attended_tokens": kept}
                out[i] = Score(value, raw=raw)
        return out
