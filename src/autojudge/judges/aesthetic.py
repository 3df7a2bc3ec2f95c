"""Aesthetic judge: LAION's improved aesthetic predictor (an MLP head on CLIP ViT-L/14).

The head (github.com/christophschuhmann/improved-aesthetic-predictor) maps the
L2-normalised CLIP ViT-L/14 (OpenAI) image embedding to a rating on the AVA scale, roughly
1-10 (most photos 4-6.5; LAION-Aesthetics used >= 6 / 6.5 as "pretty"). It ignores the
prompt. Architecture, exactly as trained:

    Linear(768, 1024) - Dropout(0.2) - Linear(1024, 128) - Dropout(0.2) - Linear(128, 64)
    - Dropout(0.1) - Linear(64, 16) - Linear(16, 1)

Weights come from a URL or a local path named in `judges/aesthetic.manifest.yaml` (or in
the config) and are checked by sha256 before use. The CLIP backbone is the shared one of
`autojudge.judges.clip_backbone`: a run with `clip` on ViT-L-14/openai and `aesthetic`
encodes every image once.

Scores are clamped to [0, 10] (score_range); raw keeps the unclamped `prediction`.
"""
from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from autojudge.errors import AutojudgeError
from autojudge.judges.clip_backbone import BackboneSpec, get_backbone, quick_file_digest
from autojudge.judges.clip_weights import check_weights
from autojudge.runtime.resources import JUDGES_DIR
from autojudge.sdk import PointwiseJudge
from autojudge.types import JudgeItem, Prompt, Score

__all__ = ["AestheticJudge", "build_head", "load_manifest", "file_sha256", "MANIFEST"]

MANIFEST = JUDGES_DIR / "aesthetic.manifest.yaml"
HIDDEN = (1024, 128, 64, 16)
DEFAULT_HEAD = "sac+logos+ava1-l14-linearMSE"


def build_head(in_dim: int = 768) -> Any:
    """The improved-aesthetic-predictor MLP (state-dict keys `layers.{0,2,4,6,7}.*`)."""
    from torch import nn

    class AestheticHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.Sequential(
                nn.Linear(in_dim, 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2),
                nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1))

        def forward(self, x: Any) -> Any:
            return self.layers(x)

    return AestheticHead()


def load_manifest(path: Path = MANIFEST) -> dict[str, Any]:
    """Head name -> {url, sha256, embed_dim, backbone...}; {} when there is no manifest."""
    if not path.is_file():
        return {}
    import yaml

    with path.open() as f:
        return dict((yaml.safe_load(f) or {}).get("heads") or {})


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "AUTOJUDGE_OFFLINE"))


class AestheticJudge(PointwiseJudge):
    """Pointwise judge: LAION improved aesthetic predictor score in [0, 10].

    raw = {"prediction"} (the unclamped head output).
    """

    kind = "aesthetic"
    score_range = (0.0, 10.0)
    validation_families = ("quality",)
    card = JUDGES_DIR / "aesthetic.md"

    @dataclass
    class Config:
        """Params of the `aesthetic` judge.

        Attributes:
            head: a head name from judges/aesthetic.manifest.yaml, an http(s) URL, or a
                local .pth file.
            sha256: expected sha256 of the head file ("" = the manifest's value).
            backend, arch, pretrained, model_config, dtype, device, cache_dir: the CLIP
                backbone, as for the `clip` judge (default ViT-L-14 / openai, what the head
                was trained on; another backbone needs a head trained on it).
            weights_dir: where a downloaded head is kept ("" = ~/.cache/autojudge/weights).
            batch_size: images per forward pass (does not change scores).
        """

        head: str = DEFAULT_HEAD
        sha256: str = ""
        backend: str = "open_clip"
        arch: str = "ViT-L-14"
        pretrained: str = "openai"
        model_config: str = ""
        dtype: str = "float32"
        device: str = "auto"
        cache_dir: str = ""
        weights_dir: str = ""
        batch_size: int = 32

    def __init__(self, name: str = "aesthetic", config: "AestheticJudge.Config | None" = None):
        super().__init__(name, config)
        c = self.config
        self.spec = BackboneSpec(c.backend, c.arch, c.pretrained, c.model_config, c.dtype,
                                 c.device, c.cache_dir)
        self.spec.validate(self.where)
        self._head: Any = None
        self._verified: Path | None = None

    # -- weights -------------------------------------------------------------------------

    def head_source(self) -> tuple[str, str]:
        """(url or local path, expected sha256 or "") for the configured head."""
        entry = load_manifest().get(self.config.head)
        if entry is not None:
            return str(entry["url"]), self.config.sha256 or str(entry.get("sha256") or "")
        return self.config.head, self.config.sha256

    def head_path(self) -> Path:
        source, _ = self.head_source()
        if source.startswith(("http://", "https://")):
            folder = Path(self.config.weights_dir or "~/.cache/autojudge/weights").expanduser()
            return folder / source.rstrip("/").rsplit("/", 1)[-1]
        return Path(source).expanduser()

    def _fetch(self, url: str, target: Path) -> None:
        who = f"judge '{self.name}'"
        if _offline():
            raise AutojudgeError(
                f"{who}: head weights {target.name} are not on disk and the hub is offline; "
                f"download {url} elsewhere and set judge.{self.name}.head=/path/to/{target.name}")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + ".part")
        try:
            with urllib.request.urlopen(url, timeout=30) as src, tmp.open("wb") as out:
                for block in iter(lambda: src.read(1 << 20), b""):
                    out.write(block)
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise AutojudgeError(
                f"{who}: could not download {url} ({type(exc).__name__}: {exc}); download it "
                f"elsewhere and set judge.{self.name}.head=/path/to/{target.name}") from None

    def verify_head(self) -> Path:
        """The head file on disk, downloaded if needed and checked against its sha256."""
        if self._verified is not None:
            return self._verified
        who = f"judge '{self.name}'"
        source, expected = self.head_source()
        path = self.head_path()
        if not path.is_file():
            if source.startswith(("http://", "https://")):
                self._fetch(source, path)
            else:
                known = ", ".join(load_manifest()) or "none"
                raise AutojudgeError(f"{who}: head weights not found: {path}; set "
                                     f"judge.{self.name}.head to a local .pth, a URL, or a "
                                     f"manifest name ({known})")
        actual = file_sha256(path)
        if not expected:
            raise AutojudgeError(
                f"{who}: no sha256 is pinned for {path.name} (judges/aesthetic.manifest.yaml "
                f"has none); if you trust this file, set judge.{self.name}.sha256={actual}")
        if actual != expected.lower():
            raise AutojudgeError(
                f"{who}: sha256 mismatch for {path}: expected {expected}, got {actual}; "
                f"re-download it or fix judge.{self.name}.sha256")
        self._verified = path
        return path

    def head(self) -> Any:
        if self._head is None:
            import torch

            path = self.verify_head()
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise AutojudgeError(f"judge '{self.name}': cannot read head weights {path} "
                                     f"({type(exc).__name__}); re-download it") from None
            state = state.get("state_dict", state) if isinstance(state, dict) else state
            in_dim = int(state["layers.0.weight"].shape[1])
            head = build_head(in_dim)
            head.load_state_dict(state)
            self._head = head.double().eval()  # float64: batch == one-by-one, exactly
            self._in_dim = in_dim
        return self._head

    # -- protocol ------------------------------------------------------------------------

    @property
    def backbone(self) -> Any:
        return get_backbone(self.spec)

    def fingerprint_params(self) -> dict[str, Any]:
        # the head by its sha256 (or file digest), never by where it was downloaded to
        source, expected = self.head_source()
        path = self.head_path()
        if expected:
            head_id: Any = {"sha256": expected.lower()}
        elif path.is_file():
            head_id = {"digest": quick_file_digest(path)}
        else:
            head_id = {"source": source}
        return {"backbone": self.spec.fingerprint(), "head": head_id,
                "clamp": list(self.score_range)}

    def check(self) -> None:
        check_weights(self.spec, f"judge '{self.name}'", f"judge.{self.name}")
        self.verify_head()

    def applies(self, prompt: Prompt) -> bool:
        return True

    def score(self, items: Sequence[JudgeItem]) -> list[Score]:
        if not items:
            return []
        import torch

        head = self.head()
        emb = self.backbone.encode_images(items, store=self.cache, batch_size=self.batch_size)
        if emb.shape[1] != self._in_dim:
            raise AutojudgeError(
                f"judge '{self.name}': the head expects {self._in_dim}-d embeddings but "
                f"{self.spec.arch} gives {emb.shape[1]}-d; use the backbone the head was "
                f"trained on (ViT-L-14 / openai for the LAION heads)")
        with torch.inference_mode():
            preds = head(torch.from_numpy(emb).double()).squeeze(-1).tolist()
        low, high = self.score_range
        return [Score(min(max(float(p), low), high), raw={"prediction": round(float(p), 8)})
                for p in preds]

    def run_stats(self) -> dict[str, Any]:
        """Run-level numbers for the report: the shared backbone's encode counts."""
        return {f"backbone_{k}": v for k, v in self.backbone.counts.as_dict().items()}
