"""A CLIP backbone shared by every judge that names the same model: loading, batching and
an image-embedding cache keyed by (backbone fingerprint, image sha256).

Two backends:

- ``open_clip`` (default): any open_clip architecture plus a pretrained tag
  (``ViT-B-32`` + ``openai``, ``ViT-L-14`` + ``laion2b_s32b_b82k``, ``ViT-B-16-SigLIP`` +
  ``webli``...), a local weights file (``pretrained=/path/open_clip_pytorch_model.bin``),
  or an ``hf-hub:org/repo`` / ``local-dir:/path`` model name. A custom architecture is a
  JSON model config (``model_config=/path/tiny.json``, registered under its file stem).
- ``transformers``: a ``CLIPModel`` + its processor from a hub id
  (``openai/clip-vit-base-patch32``) or a local directory made by ``save_pretrained``.

Nothing heavy is imported until a judge needs pixels: importing this module costs
nothing, `check()` imports open_clip only for a pretrained *tag*, and a run whose scores
are all in the store never loads a model.

Offline behaviour: `check()` finds the weights on disk (a file, open_clip's url cache or
the Hugging Face cache) or fails at once with one line that says how to provide them;
with ``HF_HUB_OFFLINE=1`` or no route to the hub it never starts a download (so never
the ~47 s retry loop of a failed hub lookup).

Example:
    >>> spec = BackboneSpec(arch="ViT-B-32", pretrained="openai")
    >>> spec.fingerprint()["arch"]
    'ViT-B-32'
"""
from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from autojudge.errors import AutojudgeError
from autojudge.runtime.devices import pick_device
from autojudge.runtime.weights import hub_offline  # noqa: F401  (re-exported)

__all__ = ["BackboneSpec", "ClipBackbone", "get_backbone", "clear_backbones",
           "quick_file_digest", "hub_offline", "pick_device"]

BACKENDS = ("open_clip", "transformers")
DTYPES = ("float32", "float16", "bfloat16")
_OPEN_CLIP_PRECISION = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}
_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".safetensors", ".ckpt")


def quick_file_digest(path: str | Path) -> str:
    """sha256 of a file's size plus its first and last 4 MiB (whole file if smaller).

    Cheap enough for every run on multi-GB checkpoints, and any re-save, fine-tune or
    truncated download changes it; a weights file is never trusted by its name alone.
    """
    path = Path(path)
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    chunk = 4 << 20
    with path.open("rb") as f:
        if size <= 2 * chunk:
            h.update(f.read())
        else:
            h.update(f.read(chunk))
            f.seek(size - chunk)
            h.update(f.read(chunk))
    return h.hexdigest()


def looks_like_weights_path(value: str) -> bool:
    return (os.sep in value or value.startswith((".", "~"))
            or value.lower().endswith(_WEIGHT_SUFFIXES))


@dataclass(frozen=True)
class BackboneSpec:
    """Which CLIP model to load, and how. Two judges with equal specs share one backbone
    (one model in memory, one embedding per image).

    Attributes:
        backend: "open_clip" or "transformers".
        arch: open_clip model name (``ViT-B-32``, ``hf-hub:org/repo``, ``local-dir:/p``) or,
            for transformers, a hub id or a local directory.
        pretrained: open_clip pretrained tag (``openai``, ``laion2b_s34b_b79k``...) or a local
            weights file. Unused by the transformers backend.
        model_config: optional JSON model config file registered with open_clip first
            (custom architectures; the file stem is the arch name).
        dtype: float32 | float16 | bfloat16.
        device: auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps.
        cache_dir: where hub/url downloads go ("" = the library's default).
        processor: transformers only: where the image processor and tokenizer come from
            when not from `arch` (PickScore's are CLIP-H's); "" = `arch`.
        revision: the hub revision (commit, tag or branch) of the weights (`arch` for
            transformers, an hf-file: `pretrained`), so a score is reproducible; "" = the
            repo's default branch. The processor (preprocessing only) is not pinned.

    ``pretrained`` may also name one file of a hub repo, ``hf-file:org/repo/file.pt``
    (e.g. HPSv2.1's fine-tuned checkpoint), downloaded once into the hub cache.
    """

    backend: str = "open_clip"
    arch: str = "ViT-B-32"
    pretrained: str = "openai"
    model_config: str = ""
    dtype: str = "float32"
    device: str = "auto"
    cache_dir: str = ""
    processor: str = ""
    revision: str = ""

    def validate(self, who: str) -> None:
        if self.backend not in BACKENDS:
            raise AutojudgeError(f"{who}: backend '{self.backend}' is not one of "
                                 f"{', '.join(BACKENDS)}")
        if self.dtype not in DTYPES:
            raise AutojudgeError(f"{who}: dtype '{self.dtype}' is not one of {', '.join(DTYPES)}")
        if not self.arch:
            raise AutojudgeError(f"{who}: arch is empty; e.g. arch=ViT-B-32")

    def fingerprint(self) -> dict[str, Any]:
        """What changes an embedding: backend, arch, weights identity, dtype (not device,
        cache_dir or batch size). Local files enter by content digest, not by path."""
        fp: dict[str, Any] = {"backend": self.backend, "arch": self.arch, "dtype": self.dtype}
        if self.backend == "open_clip":
            fp["pretrained"] = _identity(self.pretrained)
            if self.arch.startswith("local-dir:"):
                fp["arch"] = {"local_dir": _dir_identity(Path(self.arch[10:]).expanduser())}
            if self.model_config:
                fp["model_config"] = _identity(self.model_config)
        elif Path(self.arch).expanduser().is_dir():
            fp["arch"] = {"local_dir": _dir_identity(Path(self.arch).expanduser())}
        if self.processor:
            folder = Path(self.processor).expanduser()
            fp["processor"] = {"local_dir": _dir_identity(folder)} if folder.is_dir() \
                else self.processor
        if self.revision:
            fp["revision"] = self.revision
        return fp


def split_hub_file(ref: str) -> tuple[str, str]:
    """("org/repo", "path/in/repo.pt") of an ``hf-file:org/repo/path/in/repo.pt`` ref."""
    parts = ref[len("hf-file:"):].split("/")
    if len(parts) < 3 or not all(parts):
        raise AutojudgeError(f"'{ref}' is not hf-file:ORG/REPO/FILE (e.g. "
                             f"hf-file:xswu/HPSv2/HPS_v2.1_compressed.pt)")
    return "/".join(parts[:2]), "/".join(parts[2:])


def _identity(value: str) -> Any:
    if value.startswith("hf-file:"):  # a hub file is named by its ref and the revision
        return value
    if value and looks_like_weights_path(value):
        path = Path(value).expanduser()
        if path.is_file():
            return {"file": path.name, "digest": quick_file_digest(path)}
        return {"file": value, "digest": None}
    return value


def _dir_identity(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        return {"missing": str(folder)}
    return {p.name: quick_file_digest(p) for p in sorted(folder.iterdir())
            if p.is_file() and (p.suffix in _WEIGHT_SUFFIXES or p.suffix == ".json")}


# ------------------------------------------------------------------------- check


@dataclass
class EncodeCounts:
    """Images through the image tower, and where the other embeddings came from."""

    images_encoded: int = 0
    images_from_memory: int = 0
    images_from_store: int = 0
    texts_encoded: int = 0
    texts_truncated: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class ClipBackbone:
    """One loaded CLIP model plus its embedding caches. Use `get_backbone(spec)`."""

    spec: BackboneSpec
    counts: EncodeCounts = field(default_factory=EncodeCounts)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._loaded = False
        self._image_memo: dict[str, Any] = {}
        self._text_memo: dict[str, tuple[Any, bool, int]] = {}
        self._fp_hash: str | None = None

    # -- identity ------------------------------------------------------------------------

    @property
    def fingerprint_hash(self) -> str:
        if self._fp_hash is None:
            from autojudge.types import stable_hash

            self._fp_hash = stable_hash(self.spec.fingerprint())
        return self._fp_hash

    # -- loading -------------------------------------------------------------------------

    def load(self) -> None:
        if self._loaded:  # no lock: the preprocessing thread calls this while the lock is held
            return
        with self._lock:
            if self._loaded:
                return
            import torch

            self.device = pick_device(self.spec.device)
            self.torch_dtype = getattr(torch, self.spec.dtype)
            if self.spec.backend == "open_clip":
                self._load_open_clip()
            else:
                self._load_transformers()
            self.model.eval()
            self._loaded = True

    def _load_open_clip(self) -> None:
        import open_clip

        spec = self.spec
        if spec.model_config:
            open_clip.add_model_config(str(Path(spec.model_config).expanduser()))
        pretrained = spec.pretrained
        if pretrained.startswith("hf-file:"):
            pretrained = self._hub_file(pretrained)
        elif pretrained and looks_like_weights_path(pretrained):
            pretrained = str(Path(pretrained).expanduser())
        kwargs: dict[str, Any] = {"precision": _OPEN_CLIP_PRECISION[spec.dtype],
                                  "device": self.device}
        if spec.cache_dir:
            kwargs["cache_dir"] = str(Path(spec.cache_dir).expanduser())
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                spec.arch, pretrained=None if spec.arch.startswith(("hf-hub:", "local-dir:"))
                else pretrained, **kwargs)
        except Exception as exc:  # a corrupt file, a failed download, a wrong arch
            raise AutojudgeError(
                f"open_clip could not load {spec.arch} with pretrained={spec.pretrained!r} "
                f"({type(exc).__name__}: {' '.join(str(exc).split())[:300]}); check the arch "
                f"and weights") from exc
        self.model, self.preprocess = model, preprocess
        self.tokenizer = open_clip.get_tokenizer(spec.arch)
        self.context_length = int(getattr(self.tokenizer, "context_length", 77))
        self.embed_dim = None

    def _hub_file(self, ref: str) -> str:
        """The local path of an hf-file: weights file, downloaded once (check() has made
        sure it is cached, or that the hub answers)."""
        from huggingface_hub import hf_hub_download

        repo, filename = split_hub_file(ref)
        try:
            return hf_hub_download(repo, filename, revision=self.spec.revision or None,
                                   cache_dir=self.spec.cache_dir or None)
        except Exception as exc:
            raise AutojudgeError(f"could not download {ref} ({type(exc).__name__}: "
                                 f"{' '.join(str(exc).split())[:200]}); download it and set "
                                 f"pretrained=/path/to/{filename.rsplit('/', 1)[-1]}") from exc

    def logit_scale(self) -> float:
        """exp(the model's learned logit scale): CLIP's temperature (100 for CLIP-H)."""
        import torch

        self.load()
        with torch.inference_mode():
            return float(self.model.logit_scale.float().exp().item())

    def _load_transformers(self) -> None:
        from transformers import AutoProcessor, CLIPModel

        spec = self.spec
        source = str(Path(spec.arch).expanduser()) if Path(spec.arch).expanduser().is_dir() \
            else spec.arch
        processor = spec.processor or spec.arch
        processor = str(Path(processor).expanduser()) \
            if Path(processor).expanduser().is_dir() else processor
        kwargs = {"cache_dir": spec.cache_dir} if spec.cache_dir else {}
        pinned = {**kwargs, "revision": spec.revision} if spec.revision else kwargs
        try:
            self.model = CLIPModel.from_pretrained(source, dtype=self.torch_dtype, **pinned)
            self.processor = AutoProcessor.from_pretrained(processor, **kwargs)
        except Exception as exc:
            raise AutojudgeError(
                f"transformers could not load CLIPModel from {source} ({type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:300]}); check the path or hub id") from exc
        self.model.to(self.device)
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        self.context_length = int(self.model.config.text_config.max_position_embeddings)

    # -- images --------------------------------------------------------------------------

    def pixel_batch(self, images: Sequence[Any]) -> Any:
        """Preprocess PIL images into one tensor on the model's device and dtype."""
        import torch

        from autojudge.judges.ocr import to_rgb

        self.load()
        rgb = [to_rgb(im) for im in images]
        if self.spec.backend == "open_clip":
            pixels = torch.stack([self.preprocess(im) for im in rgb])
        else:
            import numpy as np

            # uint8 CHW tensors, exactly what torchmetrics' CLIPScore hands the processor
            tensors = [torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1) for im in rgb]
            pixels = self.processor(images=tensors, return_tensors="pt")["pixel_values"]
        return pixels.to(self.device, dtype=self.torch_dtype)

    def image_forward(self, pixels: Any) -> Any:
        """The bare image tower: pixels -> unnormalised features (what the benchmark times)."""
        import torch

        with torch.inference_mode():
            if self.spec.backend == "open_clip":
                return self.model.encode_image(pixels)
            out = self.model.get_image_features(pixel_values=pixels)
            return out if isinstance(out, torch.Tensor) else out.pooler_output

    def encode_images(self, items: Sequence[Any], store: Any = None,
                      batch_size: int = 32) -> Any:
        """L2-normalised float32 image embeddings [N, D] for JudgeItems (with `.image` and
        `.image_sha`), each image encoded at most once per backbone (memory, then the
        store's `embeddings` table, then the model)."""
        import numpy as np

        with self._lock:
            shas = [it.image_sha for it in items]
            todo = [s for s in dict.fromkeys(shas) if s not in self._image_memo]
            self.counts.images_from_memory += len(shas) - len(todo)
            if todo and store is not None and hasattr(store, "get_embeddings"):
                found = store.get_embeddings(self.fingerprint_hash, todo)
                for sha, vec in found.items():
                    self._image_memo[sha] = vec
                self.counts.images_from_store += len(found)
                todo = [s for s in todo if s not in found]
            if todo:
                first = {it.image_sha: it for it in items}
                size = max(1, int(batch_size))
                chunks = [todo[s:s + size] for s in range(0, len(todo), size)]

                def prepare(chunk: list[str]) -> Any:
                    return self.pixel_batch([first[s].materialized().image for s in chunk])

                # decode + preprocess the next batch on a thread while the model runs this
                # one (PIL and torch both release the GIL)
                from concurrent.futures import ThreadPoolExecutor

                self.load()
                with ThreadPoolExecutor(max_workers=1) as pool:
                    pending = pool.submit(prepare, chunks[0])
                    for k, chunk in enumerate(chunks):
                        pixels = pending.result()
                        if k + 1 < len(chunks):
                            pending = pool.submit(prepare, chunks[k + 1])
                        self._encode_chunk(chunk, pixels, store)
            if not shas:
                return np.zeros((0, 0), dtype=np.float32)
            return np.stack([self._image_memo[s] for s in shas])

    def _encode_chunk(self, chunk: list[str], pixels: Any, store: Any) -> None:
        """Image tower on one preprocessed batch; remember (and store) the embeddings."""
        import numpy as np

        feats = self.image_forward(pixels).float()
        feats = feats / feats.norm(dim=-1, keepdim=True)
        arr = feats.cpu().numpy().astype(np.float32)
        for sha, vec in zip(chunk, arr):
            self._image_memo[sha] = vec
        self.counts.images_encoded += len(chunk)
        if store is not None and hasattr(store, "put_embeddings"):
            store.put_embeddings(self.fingerprint_hash, {s: v for s, v in zip(chunk, arr)})

    # -- texts ---------------------------------------------------------------------------

    def token_count(self, text: str) -> int:
        """Tokens `text` needs including start/end tokens (may exceed the context)."""
        self.load()
        tok = self.tokenizer
        if self.spec.backend == "transformers":
            return len(tok(text, truncation=False)["input_ids"])
        inner = getattr(tok, "tokenizer", None)  # open_clip's HFTokenizer wraps a HF one
        if inner is not None and callable(inner):
            return len(inner(text, truncation=False)["input_ids"])
        return len(tok.encode(text)) + 2  # open_clip SimpleTokenizer: <sot> ... <eot>

    def encode_texts(self, texts: Sequence[str], batch_size: int = 64) -> tuple[Any, list[bool], list[int]]:
        """(L2-normalised float32 embeddings [N, D], truncated flags, token counts).

        Texts longer than the context are cut to it explicitly (the end token kept) and
        flagged; `counts.texts_truncated` counts distinct truncated texts."""
        import numpy as np
        import torch

        self.load()
        with self._lock:
            todo = [t for t in dict.fromkeys(texts) if t not in self._text_memo]
            for start in range(0, len(todo), max(1, batch_size)):
                chunk = todo[start:start + batch_size]
                counts = [self.token_count(t) for t in chunk]
                with torch.inference_mode():
                    if self.spec.backend == "open_clip":
                        tokens = self.tokenizer(chunk).to(self.device)
                        feats = self.model.encode_text(tokens)
                    else:
                        enc = self.tokenizer(chunk, padding=True, truncation=True,
                                             max_length=self.context_length,
                                             return_tensors="pt").to(self.device)
                        out = self.model.get_text_features(input_ids=enc["input_ids"],
                                                           attention_mask=enc["attention_mask"])
                        feats = out if isinstance(out, torch.Tensor) else out.pooler_output
                feats = feats.float()
                feats = feats / feats.norm(dim=-1, keepdim=True)
                arr = feats.cpu().numpy().astype(np.float32)
                for t, vec, n in zip(chunk, arr, counts):
                    truncated = n > self.context_length
                    self._text_memo[t] = (vec, truncated, n)
                    self.counts.texts_encoded += 1
                    self.counts.texts_truncated += truncated
            if not texts:
                return np.zeros((0, 0), dtype=np.float32), [], []
            rows = [self._text_memo[t] for t in texts]
            return (np.stack([r[0] for r in rows]), [r[1] for r in rows], [r[2] for r in rows])


_BACKBONES: dict[BackboneSpec, ClipBackbone] = {}
_BACKBONES_LOCK = threading.Lock()


def get_backbone(spec: BackboneSpec) -> ClipBackbone:
    """The process-wide backbone for `spec` (created on first use, loaded lazily)."""
    with _BACKBONES_LOCK:
        if spec not in _BACKBONES:
            _BACKBONES[spec] = ClipBackbone(spec)
        return _BACKBONES[spec]


def clear_backbones() -> None:
    """Forget every loaded backbone (tests, benchmarks)."""
    with _BACKBONES_LOCK:
        _BACKBONES.clear()
