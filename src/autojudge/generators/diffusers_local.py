"""Local diffusers generator: any text-to-image pipeline from a hub id or a local folder.

`model` is a hub id (e.g. "stabilityai/stable-diffusion-xl-base-1.0",
"black-forest-labs/FLUX.1-schnell") or a folder written by `save_pretrained`. The
pipeline is loaded once (AutoPipelineForText2Image), and editing prompts reuse its
components through AutoPipelineForImage2Image / AutoPipelineForInpainting `.from_pipe`
(task chosen per prompt: txt2img, img2img / style transfer, inpaint).

- seed per image: one `torch.Generator(generator_device).manual_seed(seed)` per image, so
  the same (prompt, seed) gives the same image whatever the batch;
- `scheduler` by class name (e.g. "EulerDiscreteScheduler"), built from the model's
  scheduler config; steps, guidance, size, negative prompt, strength;
- device "auto" = cuda > mps > cpu; dtype "auto" = bfloat16/float16 on GPU, float32 on
  CPU; optional `enable_model_cpu_offload`;
- LoRA adapters (peft): `lora: [path_or_hub_id, ...]` with `lora_scales`, loaded with
  `load_lora_weights(path, adapter_name=...)` and combined with `set_adapters`;
- fine-tuned checkpoints: `checkpoint` replaces the pipeline's denoiser (UNet or
  transformer) with the one in that folder (a `unet/` or `transformer/` sub-folder, or the
  folder itself), so a sweep ranks the checkpoints of one training run on one base;
- latency per image = the pipeline call's wall time / images in the batch; cost =
  `gpu_hour_usd` * latency / 3600.

Local folders are fingerprinted by their resolved path plus the size and mtime of every
file in them, so retraining into the same folder invalidates the cache.

Example:
    >>> gen = DiffusersGenerator("sd15", DiffusersGenerator.Config(model="/models/sd15"))
    >>> gen.fingerprint()["params"]["num_inference_steps"]
    30
"""
from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Sequence

from autojudge.errors import AutojudgeError
from autojudge.runtime.devices import pick_device
from autojudge.runtime.extras import require
from autojudge.runtime.weights import (hub_offline, hub_weights_problem, looks_local,
                                       model_ref_identity, pipeline_folder_problem)
from autojudge.sdk import Generator
from autojudge.types import Failure, GenOutput, GenRequest

__all__ = ["DiffusersGenerator", "pick_device"]



def _empty_list() -> list:
    return []




class DiffusersGenerator(Generator):
    """Images from a local diffusers pipeline (see the module docstring)."""

    kind = "diffusers"
    #: params that change where and how fast images are made, never the images
    non_semantic = ("batch_size", "gpu_hour_usd", "cpu_offload", "device", "local_files_only")

    @dataclass
    class Config:
        """Params of the `diffusers` generator.

        Attributes:
            model: hub id or local pipeline folder (save_pretrained layout).
            revision, variant: hub revision and weights variant (e.g. "fp16"); "" = default.
            checkpoint: folder with a fine-tuned denoiser (UNet/transformer) to swap in.
            scheduler: diffusers scheduler class name; "" keeps the model's.
            num_inference_steps, guidance_scale: sampling settings.
            width, height: image size; 0 = the model's default.
            negative_prompt: sent when not empty (pipelines that take one).
            strength: img2img/inpaint strength for prompts without their own.
            lora, lora_scales: LoRA adapters (paths or hub ids) and their scales
                (missing scales are 1.0).
            device: "auto" (cuda > mps > cpu), "cuda", "cuda:1", "mps", "cpu".
            dtype: "auto", "float32", "float16", "bfloat16".
            cpu_offload: enable_model_cpu_offload() (GPU memory saver; slower).
            generator_device: where the per-image torch.Generator lives: "cpu" (the
                same image on any machine) or "device".
            batch_size: images per pipeline call.
            gpu_hour_usd: price of the machine per hour (cost = latency * this / 3600).
            local_files_only: never reach the hub (also implied by HF_HUB_OFFLINE=1).
        """

        model: str = ""
        revision: str = ""
        variant: str = ""
        checkpoint: str = ""
        scheduler: str = ""
        num_inference_steps: int = 30
        guidance_scale: float = 7.5
        width: int = 0
        height: int = 0
        negative_prompt: str = ""
        strength: float = 0.8
        lora: List[str] = field(default_factory=_empty_list)
        lora_scales: List[float] = field(default_factory=_empty_list)
        device: str = "auto"
        dtype: str = "auto"
        cpu_offload: bool = False
        generator_device: str = "cpu"
        batch_size: int = 4
        gpu_hour_usd: float = 0.0
        local_files_only: bool = False

    def __init__(self, name: str, config: "DiffusersGenerator.Config | None" = None):
        super().__init__(name, config)
        c = self.config
        where = self.where
        if c.dtype not in ("auto", "float32", "float16", "bfloat16"):
            raise AutojudgeError(f"{where}: dtype={c.dtype!r} is not one of auto, float32, "
                                 f"float16, bfloat16")
        if c.num_inference_steps < 1:
            raise AutojudgeError(f"{where}: num_inference_steps must be >= 1")
        if (c.width > 0) != (c.height > 0) or c.width % 8 or c.height % 8:
            raise AutojudgeError(f"{where}: set both width and height as multiples of 8 "
                                 f"(or both 0 for the model's default)")
        if not 0 < c.strength <= 1:
            raise AutojudgeError(f"{where}: strength must be in (0, 1]")
        if len(c.lora_scales) > len(c.lora):
            raise AutojudgeError(f"{where}: {len(c.lora_scales)} lora_scales for "
                                 f"{len(c.lora)} lora adapters")
        if c.generator_device not in ("cpu", "device"):
            raise AutojudgeError(f"{where}: generator_device must be 'cpu' or 'device'")
        self._pipes: dict[str, Any] = {}
        self._device: str | None = None

    # ------------------------------------------------------------------ identity

    def fingerprint_params(self) -> dict[str, Any]:
        # weights enter by identity (a local folder by its files), not by the text typed
        params = super().fingerprint_params()
        params["model"] = model_ref_identity(self.config.model)
        params["checkpoint"] = (model_ref_identity(self.config.checkpoint)
                                if self.config.checkpoint else "")
        params["lora"] = [model_ref_identity(r) for r in self.config.lora]
        params["lora_scales"] = [float(s) for s in self.lora_scales()]
        return params

    def lora_scales(self) -> list[float]:
        scales = list(self.config.lora_scales)
        return scales + [1.0] * (len(self.config.lora) - len(scales))

    # ------------------------------------------------------------------ check

    def check(self) -> None:
        c = self.config
        where = f"model '{self.name}'"
        if not c.model.strip():
            raise AutojudgeError(f"{where}: no model; set model.{self.name}.model to a hub id "
                                 f"(e.g. stabilityai/sdxl-turbo) or a local pipeline folder")
        require("diffusers", where)
        if c.lora:
            require("diffusers", where, modules=("peft",))  # LoRA loading goes through peft
        import diffusers
        self._check_model()
        if c.checkpoint:
            self._check_checkpoint()
        for ref in c.lora:
            self._check_lora(ref)
        if c.scheduler:
            if not hasattr(diffusers, c.scheduler) or "Scheduler" not in c.scheduler:
                raise AutojudgeError(f"{where}: unknown scheduler {c.scheduler!r}; use a "
                                     f"diffusers class name such as EulerDiscreteScheduler")
        if c.device != "auto":
            device = c.device.split(":")[0]
            if device not in ("cpu", "cuda", "mps"):
                raise AutojudgeError(f"{where}: device={c.device!r}; use auto, cpu, cuda, "
                                     f"cuda:N or mps")

    def _offline(self) -> bool:
        """Load from the local cache only: asked for, or the hub cannot answer (so a
        load never waits through huggingface_hub's retries)."""
        return self.config.local_files_only or hub_offline()

    def _check_model(self) -> None:
        """A local pipeline folder must be whole; a hub id must be cached unless the hub
        answers. One line naming the setting to change otherwise."""
        ref, key = self.config.model, f"model.{self.name}.model"
        if looks_local(ref):
            path = Path(os.path.expanduser(ref))
            problem = (pipeline_folder_problem(path) if path.is_dir() else
                       f"{path} does not exist" if not path.exists() else
                       f"{path} is a file, not a folder")
            if problem:
                raise AutojudgeError(f"model '{self.name}': {problem}; set {key} to a folder "
                                     f"written by pipeline.save_pretrained()")
            return
        problem = hub_weights_problem(ref, revision=self.config.revision,
                                      local_files_only=self.config.local_files_only,
                                      pipeline=True)
        if problem:
            raise AutojudgeError(
                f"model '{self.name}' needs weights for {ref}: {problem}; download them once "
                f"with network (hf download {ref}), or set {key}=/local/folder")

    def _check_checkpoint(self) -> None:
        """The folder `_swap_denoiser` reads: unet/ or transformer/ in it, or itself."""
        path = Path(os.path.expanduser(self.config.checkpoint))
        key = f"model.{self.name}.checkpoint"
        if not path.is_dir():
            raise AutojudgeError(f"model '{self.name}': checkpoint folder {path} does not "
                                 f"exist; fix {key}")
        if not any((folder / "config.json").is_file()
                   for folder in (path / "unet", path / "transformer", path)):
            raise AutojudgeError(f"model '{self.name}': {path} holds no denoiser (no "
                                 f"config.json in it or in its unet/ or transformer/ folder); "
                                 f"set {key} to a folder written by unet.save_pretrained()")

    def _check_lora(self, ref: str) -> None:
        key = f"model.{self.name}.lora"
        if looks_local(ref):
            path = Path(os.path.expanduser(ref))
            if not path.exists():
                raise AutojudgeError(f"model '{self.name}': LoRA {path} does not exist; fix "
                                     f"{key}")
            return
        problem = hub_weights_problem(ref, local_files_only=self.config.local_files_only)
        if problem:
            raise AutojudgeError(
                f"model '{self.name}' needs LoRA weights {ref}: {problem}; download them once "
                f"with network (hf download {ref}), or set {key}=[/local/lora_folder]")

    # ------------------------------------------------------------------ loading

    def _dtype(self, device: str) -> Any:
        from autojudge.runtime.devices import pick_dtype

        return pick_dtype(self.config.dtype, device)

    def pipeline(self, task: str = "txt2img") -> Any:
        """The loaded pipeline for `task` (loaded on first use, then reused)."""
        if task in self._pipes:
            return self._pipes[task]
        import diffusers
        from diffusers import (AutoPipelineForImage2Image, AutoPipelineForInpainting,
                               AutoPipelineForText2Image)

        c = self.config
        if "txt2img" not in self._pipes:
            device = pick_device(c.device)
            dtype = self._dtype(device)
            kwargs: dict[str, Any] = {"torch_dtype": dtype,
                                      "local_files_only": self._offline()}
            if c.revision:
                kwargs["revision"] = c.revision
            if c.variant:
                kwargs["variant"] = c.variant
            model = os.path.expanduser(c.model)
            pipe = AutoPipelineForText2Image.from_pretrained(model, **kwargs)
            if c.checkpoint:
                self._swap_denoiser(pipe, os.path.expanduser(c.checkpoint), dtype)
            if c.scheduler:
                pipe.scheduler = getattr(diffusers, c.scheduler).from_config(pipe.scheduler.config)
            if c.lora:
                names = []
                for i, ref in enumerate(c.lora):
                    name = f"lora{i}"
                    pipe.load_lora_weights(os.path.expanduser(ref), adapter_name=name,
                                         local_files_only=kwargs["local_files_only"])
                    names.append(name)
                pipe.set_adapters(names, adapter_weights=self.lora_scales())
            if c.cpu_offload and device != "cpu":
                pipe.enable_model_cpu_offload(device=device)
            else:
                pipe.to(device)
            if hasattr(pipe, "set_progress_bar_config"):
                pipe.set_progress_bar_config(disable=True)
            self._device = device
            self._pipes["txt2img"] = pipe
        base = self._pipes["txt2img"]
        if task == "img2img":
            self._pipes[task] = AutoPipelineForImage2Image.from_pipe(base)
        elif task == "inpaint":
            self._pipes[task] = AutoPipelineForInpainting.from_pipe(base)
        for pipe in self._pipes.values():
            if hasattr(pipe, "set_progress_bar_config"):
                pipe.set_progress_bar_config(disable=True)
        return self._pipes[task]

    @staticmethod
    def _swap_denoiser(pipe: Any, path: str, dtype: Any) -> None:
        attr = "unet" if getattr(pipe, "unet", None) is not None else "transformer"
        current = getattr(pipe, attr)
        folder = Path(path)
        if (folder / attr).is_dir():
            folder = folder / attr
        denoiser = type(current).from_pretrained(str(folder), torch_dtype=dtype)
        setattr(pipe, attr, denoiser)
        pipe.register_modules(**{attr: denoiser})

    # ------------------------------------------------------------------ generate

    def generate(self, requests: Sequence[GenRequest]) -> list[GenOutput]:
        outputs: list[GenOutput | None] = [None] * len(requests)
        groups: dict[tuple[str, float | None], list[int]] = {}
        for i, request in enumerate(requests):
            prompt = request.prompt
            task = getattr(prompt, "task", "txt2img")
            strength = prompt.strength if task != "txt2img" else None
            groups.setdefault((task, strength), []).append(i)
        for (task, _), indices in groups.items():
            for start in range(0, len(indices), self.batch_size):
                batch = indices[start:start + self.batch_size]
                for i, out in zip(batch, self._batch([requests[i] for i in batch], task)):
                    outputs[i] = out
        return [o for o in outputs if o is not None]

    def _batch(self, requests: list[GenRequest], task: str) -> list[GenOutput]:
        start = time.perf_counter()
        try:
            pipe = self.pipeline(task)
            kwargs = self._call_kwargs(pipe, requests, task)
            import torch

            with torch.inference_mode():
                images = pipe(**kwargs).images
        except Exception as exc:  # one bad batch fails its requests, not the run
            elapsed = (time.perf_counter() - start) / max(1, len(requests))
            failure = Failure("generator_error", " ".join(
                f"model '{self.name}': {type(exc).__name__}: {exc}".split())[:500],
                retryable=not isinstance(exc, (ValueError, TypeError)))
            return [GenOutput(None, elapsed, failure=failure) for _ in requests]
        per_image = (time.perf_counter() - start) / len(requests)
        cost = self.config.gpu_hour_usd * per_image / 3600.0
        out = []
        for request, image in zip(requests, images):
            data = _png(image)
            out.append(GenOutput(data, per_image, round(cost, 8), meta={
                "task": task, "device": self._device, "width": image.width,
                "height": image.height, "batch": len(requests)}))
        return out

    def _call_kwargs(self, pipe: Any, requests: list[GenRequest], task: str) -> dict[str, Any]:
        import inspect

        import torch
        from PIL import Image

        c = self.config
        params = inspect.signature(pipe.__call__).parameters
        gen_device = "cpu" if c.generator_device == "cpu" else self._device or "cpu"
        kwargs: dict[str, Any] = {
            "prompt": [r.prompt.generation_text() for r in requests],
            "num_inference_steps": c.num_inference_steps,
            "generator": [torch.Generator(gen_device).manual_seed(int(r.seed))
                          for r in requests],
        }
        if "guidance_scale" in params:
            kwargs["guidance_scale"] = c.guidance_scale
        if c.negative_prompt and "negative_prompt" in params:
            kwargs["negative_prompt"] = [c.negative_prompt] * len(requests)
        if task == "txt2img" and c.width and c.height:
            kwargs["width"], kwargs["height"] = c.width, c.height
        if task in ("img2img", "inpaint"):
            first = requests[0].prompt
            strength = first.strength if first.strength is not None else c.strength
            kwargs["strength"] = float(strength)
            inits = [Image.open(r.prompt.init_image).convert("RGB") for r in requests]
            if c.width and c.height:
                inits = [im.resize((c.width, c.height)) for im in inits]
            kwargs["image"] = inits
            if task == "inpaint":
                masks = [Image.open(r.prompt.mask).convert("L") for r in requests]
                masks = [m.resize(im.size) for m, im in zip(masks, inits)]
                kwargs["mask_image"] = masks
                kwargs["width"], kwargs["height"] = inits[0].size
        return kwargs


def _png(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()
