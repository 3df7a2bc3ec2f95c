"""Learned human-preference scorers on a CLIP backbone: PickScore and HPSv2.1.

Both are CLIP-H models fine-tuned on human choices between images of one prompt, and both
score one (prompt, image) by the cosine of its text and image embeddings:

- **PickScore** (Kirstain et al., 2023, "Pick-a-Pic"; `yuvalkirstain/PickScore_v1`, a
  transformers `CLIPModel` whose preprocessing is CLIP-ViT-H-14's):
  score = logit_scale.exp() x cos(text, image), as the model card computes it (about 18-23
  for real images; the learned scale is 100).
- **HPSv2.1** (Wu et al., 2023, "Human Preference Score v2"; `xswu/HPSv2`,
  `HPS_v2.1_compressed.pt`, an open_clip ViT-H-14 checkpoint): score = cos(text, image), as
  `hpsv2.score` returns it (about 0.25-0.35 for real images).

Why not a scorer library: `hpsv2` pins old torch/open_clip versions and `imscore` is
pre-1.0 with a noted score mismatch on one scorer, while both formulas are one line on the
backbone autojudge already has (`autojudge.judges.clip_backbone`: loading, batching, the
image-embedding cache shared with every judge on the same weights, the offline check).
Each is tested against its reference formula on tiny random weights of the same
architecture.

Example (config):
    pickscore: {kind: pickscore}                         # hub, downloaded once
    pickscore: {kind: pickscore, model: /weights/PickScore_v1,
                processor: /weights/CLIP-ViT-H-14-laion2B-s32B-b79K}
    hpsv21: {kind: hpsv21, pretrained: /weights/HPS_v2.1_compressed.pt}
"""
from __future__ import annotations

from dataclasses import dataclass

from autojudge.judges.clip_backbone import BackboneSpec
from autojudge.judges.clip_score import EmbeddingScorer
from autojudge.runtime.resources import JUDGES_DIR

__all__ = ["PickScoreJudge", "HPSv21Judge"]


class PickScoreJudge(EmbeddingScorer):
    """PickScore: logit_scale.exp() x cos(text, image) on the PickScore CLIP-H model.

    raw = {"cosine", "truncated", "prompt_tokens"}.
    """

    kind = "pickscore"
    score_range = (-100.0, 100.0)
    card = JUDGES_DIR / "pickscore.md"
    formula = "logit_scale.exp()*cos"
    validation_families = ("alignment", "quality")

    @dataclass
    class Config:
        """Params of the `pickscore` judge.

        Attributes:
            model: the PickScore CLIPModel: a hub id or a save_pretrained folder.
            processor: its image processor and tokenizer (CLIP-ViT-H-14's): a hub id or a
                save_pretrained folder.
            revision: hub revision of `model` (a commit pins the weights; "" = main).
            dtype: float32 | float16 | bfloat16.
            device: auto (cuda > mps > cpu) | cpu | cuda | cuda:N | mps.
            cache_dir: hub download cache ("" = the library's default).
            batch_size: images per forward pass (does not change scores).
        """

        model: str = "yuvalkirstain/PickScore_v1"
        processor: str = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
        revision: str = ""
        dtype: str = "float32"
        device: str = "auto"
        cache_dir: str = ""
        batch_size: int = 16

    def backbone_spec(self) -> BackboneSpec:
        c = self.config
        return BackboneSpec("transformers", c.model, "", "", c.dtype, c.device, c.cache_dir,
                            processor=c.processor, revision=c.revision)

    def value(self, cosine: float) -> float:
        if not hasattr(self, "_scale"):  # the learned temperature, read once per judge
            self._scale = self.backbone.logit_scale()
        return self._scale * cosine


class HPSv21Judge(EmbeddingScorer):
    """HPSv2.1: cos(text, image) on the HPSv2.1 fine-tuned open_clip ViT-H-14.

    raw = {"cosine", "truncated", "prompt_tokens"}.
    """

    kind = "hpsv21"
    score_range = (-1.0, 1.0)
    card = JUDGES_DIR / "hpsv21.md"
    formula = "cos"
    validation_families = ("alignment", "quality")

    @dataclass
    class Config:
        """Params of the `hpsv21` judge.

        Attributes:
            arch: the open_clip architecture (ViT-H-14; a custom one by `model_config`).
            pretrained: the HPSv2.1 checkpoint: a local file or
                hf-file:xswu/HPSv2/HPS_v2.1_compressed.pt (downloaded once).
            revision: hub revision of an hf-file: checkpoint ("" = main).
            model_config: optional open_clip model config JSON (custom architectures).
            dtype, device, cache_dir, batch_size: as for `pickscore`.
        """

        arch: str = "ViT-H-14"
        pretrained: str = "hf-file:xswu/HPSv2/HPS_v2.1_compressed.pt"
        revision: str = ""
        model_config: str = ""
        dtype: str = "float32"
        device: str = "auto"
        cache_dir: str = ""
        batch_size: int = 16

    def backbone_spec(self) -> BackboneSpec:
        c = self.config
        return BackboneSpec("open_clip", c.arch, c.pretrained, c.model_config, c.dtype,
                            c.device, c.cache_dir, revision=c.revision)

    def value(self, cosine: float) -> float:
        return cosine
