"""CLIP score judge: how well does the image match its prompt, by a CLIP model?

score = 100 * max(cos(E_image, E_prompt), 0), the CLIPScore of Hessel et al. (2021) as
torchmetrics computes it (torchmetrics' `CLIPScore`, `max(100 * cos, 0)`; Hessel's paper
additionally multiplies by w = 2.5, which only rescales). Scores lie in [0, 100]; typical
real text-image pairs score 20-35 with ViT-B/32.

The model is any open_clip architecture + pretrained tag or local weights file (or a
transformers `CLIPModel`); see `autojudge.judges.clip_backbone`. Image embeddings are
cached per (backbone fingerprint, image sha256) in memory and in the store, and shared
with every judge on the same backbone (e.g. the aesthetic predictor on ViT-L/14).

Prompts longer than the text context (77 tokens for CLIP) are truncated explicitly; each
score's raw says `truncated` and `prompt_tokens`, and `truncated_prompts` counts them.

Example (config):
    clip: {kind: clip, arch: ViT-B-32, pretrained: openai}
    clip: {kind: clip, arch: ViT-L-14, pretrained: /weights/open_clip_pytorch_model.bin}
    clip: {kind: clip, backend: transformers, arch: /weights/clip-vit-base-patch32}
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from autojudge.judges.clip_backbone import BackboneSpec, get_backbone
from autojudge.judges.clip_weights import check_weights
from autojudge.runtime.resources import JUDGES_DIR
from autojudge.sdk import PointwiseJudge
from autojudge.types import Failure, JudgeItem, Prompt, Score

__all__ = ["CLIPScoreJudge", "EmbeddingScorer", "clip_score_value"]


def clip_score_value(cosine: float) -> float:
    """torchmetrics' convention: 100 * cosine, floored at 0."""
    return max(100.0 * float(cosine), 0.0)


class EmbeddingScorer(PointwiseJudge):
    """A judge whose score is a function (`value`) of cos(text, image) on one CLIP
    backbone: CLIP score here, the learned preference scorers in
    `autojudge.judges.preference`. It owns what they share: batching through the
    backbone, the embedding cache, long prompts truncated and counted, the raw fields."""

    non_semantic = ("device", "cache_dir", "batch_size")
    #: the formula's name in the fingerprint
    formula = ""

    def __init__(self, name: str, config: Any = None):
        super().__init__(name, config)
        self.spec = self.backbone_spec()
        self.spec.validate(self.where)
        #: prompts truncated to the text context, over this judge's lifetime
        self.truncated_prompts = 0
        self._truncated_seen: set[str] = set()

    def backbone_spec(self) -> BackboneSpec:
        raise NotImplementedError

    def value(self, cosine: float) -> float:
        """The judge's formula on one cosine."""
        raise NotImplementedError

    @property
    def backbone(self) -> Any:
        return get_backbone(self.spec)

    def fingerprint_params(self) -> dict[str, Any]:
        # the backbone's identity (weights by digest), never device or batch size
        return {"backbone": self.spec.fingerprint(), "formula": self.formula}

    def check(self) -> None:
        check_weights(self.spec, f"judge '{self.name}'", f"judge.{self.name}")

    def applies(self, prompt: Prompt) -> bool:
        return bool(prompt.text and prompt.text.strip())

    def score(self, items: Sequence[JudgeItem]) -> list[Score]:
        ok = [i for i, item in enumerate(items) if self.applies(item.prompt)]
        out = [Score(None, failure=Failure(
            "not_applicable", f"judge '{self.name}': prompt '{item.prompt.id}' is empty"))
            for item in items]
        if not ok:
            return out
        backbone = self.backbone
        images = backbone.encode_images([items[i] for i in ok], store=self.cache,
                                        batch_size=self.batch_size)
        texts, truncated, n_tokens = backbone.encode_texts([items[i].prompt.text for i in ok])
        cosines = (images.astype("float64") * texts.astype("float64")).sum(axis=1)
        for j, i in enumerate(ok):
            if truncated[j] and items[i].prompt.text not in self._truncated_seen:
                self._truncated_seen.add(items[i].prompt.text)
                self.truncated_prompts += 1
            raw = {"cosine": round(float(cosines[j]), 8), "truncated": bool(truncated[j]),
                   "prompt_tokens": int(n_tokens[j])}
            out[i] = Score(self.value(float(cosines[j])), raw=raw)
        return out

    def run_stats(self) -> dict[str, Any]:
        """Run-level numbers for the report."""
        return {"truncated_prompts": self.truncated_prompts,
                **{f"backbone_{k}": v for k, v in self.backbone.counts.as_dict().items()}}


class CLIPScoreJudge(EmbeddingScorer):
    """Pointwise judge: 100 * max(cosine(image, prompt), 0) in [0, 100].

    raw = {"cosine", "truncated", "prompt_tokens"}.
    """

    kind = "clip"
    score_range = (0.0, 100.0)
    validation_families = ("alignment",)
    card = JUDGES_DIR / "clip.md"
    formula = "100*max(cos,0)"

    @dataclass
    class Config:
        """Params of the `clip` judge.

        Attributes:
            backend: open_clip | transformers.
            arch: open_clip model name (ViT-B-32, ViT-L-14, ViT-B-16-SigLIP, hf-hub:org/repo,
                local-dir:/path) or, with backend=transformers, a hub id or local folder.
            pretrained: open_clip tag (openai, laion2b_s34b_b79k, datacomp_xl_s13b_b90k,
                webli...) or a local weights file.
            model_config: optional open_clip model config JSON for a custom architecture.
            dtype: float32 | float16 | bfloat16.
            device: auto (cuda > mps > cpu) | cpu | cuda | cuda:N | mps.
            cache_dir: download cache for hub/url weights ("" = library default).
            batch_size: images per forward pass (does not change scores).
        """

        backend: str = "open_clip"
        arch: str = "ViT-B-32"
        pretrained: str = "openai"
        model_config: str = ""
        dtype: str = "float32"
        device: str = "auto"
        cache_dir: str = ""
        batch_size: int = 32

    def backbone_spec(self) -> BackboneSpec:
        c = self.config
        return BackboneSpec(c.backend, c.arch, c.pretrained, c.model_config, c.dtype,
                            c.device, c.cache_dir)

    def value(self, cosine: float) -> float:
        return clip_score_value(cosine)
