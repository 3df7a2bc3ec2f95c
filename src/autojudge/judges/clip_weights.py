"""Are a CLIP backbone's weights on disk, or can they be fetched now? One line (what,
where, what to do) before any work otherwise: never a 47-second hub retry loop."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from autojudge.errors import AutojudgeError
from autojudge.judges.clip_backbone import BackboneSpec, looks_like_weights_path, split_hub_file
from autojudge.runtime.extras import require
from autojudge.runtime.weights import hf_cached, hub_offline, transformers_model_problem


def check_weights(spec: BackboneSpec, who: str, key: str) -> None:
    """Raise AutojudgeError (one line: what, where, what to do) unless the weights are on
    disk or can be downloaded now. `key` is the config path of the judge (judge.clip)."""
    spec.validate(who)
    backend_module = "transformers" if spec.backend == "transformers" else "open_clip"
    require("clip", who, ("torch", backend_module))
    if spec.backend == "transformers":
        _check_transformers(spec, who, key)
    else:
        _check_open_clip(spec, who, key)


def _no_weights(who: str, what: str, key: str, example: str) -> AutojudgeError:
    return AutojudgeError(
        f"{who}: {what}, and the hub is offline (HF_HUB_OFFLINE=1 or no network); download "
        f"the weights elsewhere and point at them, e.g. {key}.{example}")


def _check_open_clip(spec: BackboneSpec, who: str, key: str) -> None:
    pretrained = spec.pretrained
    example = "pretrained=/path/to/open_clip_pytorch_model.bin"
    if spec.model_config:
        config = Path(spec.model_config).expanduser()
        if not config.is_file():
            raise AutojudgeError(f"{who}: model_config file not found: {config}; give the path "
                                 f"of an open_clip model config JSON")
    if spec.arch.startswith("local-dir:"):
        folder = Path(spec.arch[10:]).expanduser()
        if not (folder / "open_clip_config.json").is_file():
            raise AutojudgeError(f"{who}: {folder} has no open_clip_config.json; "
                                 f"set {key}.arch=local-dir:/path/to/a/saved/open_clip/model")
        return
    if spec.arch.startswith("hf-hub:"):
        repo = spec.arch[7:]
        if hf_cached(repo, ["open_clip_config.json"], spec.cache_dir) or not hub_offline():
            return
        raise _no_weights(who, f"{repo} is not in the Hugging Face cache", key,
                          "arch=local-dir:/path/to/downloaded/repo")
    if pretrained.startswith("hf-file:"):
        _check_hub_file(spec, who, key)
        return
    if not pretrained:
        raise AutojudgeError(f"{who}: no weights: set {key}.pretrained to an open_clip tag "
                             f"(e.g. openai) or a local file ({example})")
    if looks_like_weights_path(pretrained):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise AutojudgeError(f"{who}: weights file not found: {path}; set {key}.pretrained "
                                 f"to an existing file or an open_clip tag such as openai")
        return
    import open_clip  # a tag: only open_clip knows where its weights live

    arch = spec.arch.replace("/", "-")
    if spec.model_config:
        open_clip.add_model_config(str(Path(spec.model_config).expanduser()))
    if arch not in open_clip.list_models():
        import difflib

        close = difflib.get_close_matches(arch, open_clip.list_models(), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise AutojudgeError(f"{who}: unknown open_clip arch '{spec.arch}'{hint}; see "
                             f"open_clip.list_models(), or give model_config=/path/cfg.json")
    cfg = open_clip.get_pretrained_cfg(arch, pretrained)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise AutojudgeError(f"{who}: '{pretrained}' is not a pretrained tag of {arch} (tags: "
                             f"{', '.join(tags) or 'none'}) nor an existing file; set "
                             f"{key}.pretrained=TAG or {example}")
    if _open_clip_tag_cached(cfg, spec.cache_dir) or not hub_offline():
        return
    source = cfg.get("hf_hub") or cfg.get("url") or "the hub"
    raise _no_weights(who, f"weights for {arch}/{pretrained} ({source}) are not cached", key,
                      example)


def _open_clip_tag_cached(cfg: dict[str, Any], cache_dir: str) -> bool:
    if cfg.get("file") and os.path.isfile(cfg["file"]):
        return True
    hub = cfg.get("hf_hub", "")
    if hub:
        repo, filename = os.path.split(hub)
        names = [filename] if filename else ["open_clip_pytorch_model.bin"]
        names += [n.rsplit(".", 1)[0] + ".safetensors" for n in list(names)
                  if n.endswith((".bin", ".pth"))]
        names += ["open_clip_model.safetensors"]
        if hf_cached(repo, names, cache_dir):
            return True
    url = cfg.get("url", "")
    if url:
        folder = Path(cache_dir).expanduser() if cache_dir else Path("~/.cache/clip").expanduser()
        if (folder / os.path.basename(url)).is_file():
            return True
    return False


def _check_hub_file(spec: BackboneSpec, who: str, key: str) -> None:
    """An hf-file: checkpoint is in the hub cache (at the pinned revision), or the hub
    answers now."""
    repo, filename = split_hub_file(spec.pretrained)
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(repo, filename, cache_dir=spec.cache_dir or None,
                                        revision=spec.revision or None)
    except ImportError:
        cached = None
    if isinstance(cached, str) or not hub_offline():
        return
    raise _no_weights(who, f"{filename} of {repo} is not in the Hugging Face cache", key,
                      f"pretrained=/path/to/{filename.rsplit('/', 1)[-1]}")


def _check_processor(spec: BackboneSpec, who: str, key: str) -> None:
    """A processor taken from another repo or folder than the model (PickScore's)."""
    folder = Path(spec.processor).expanduser()
    # transformers < 5 writes preprocessor_config.json, transformers 5 processor_config.json
    names = ["preprocessor_config.json", "processor_config.json"]
    if folder.is_dir():
        if not any((folder / name).is_file() for name in names):
            raise AutojudgeError(f"{who}: {folder} has no preprocessor_config.json; set "
                                 f"{key}.processor to a folder written by "
                                 f"CLIPProcessor.save_pretrained")
        return
    if spec.processor.startswith(("/", ".", "~")):  # a path; "org/repo" is a hub id
        raise AutojudgeError(f"{who}: processor folder not found: {folder}; set "
                             f"{key}.processor to an existing folder or a hub id")
    if hf_cached(spec.processor, names, spec.cache_dir) \
            or not hub_offline():
        return
    raise _no_weights(who, f"the processor {spec.processor} is not in the Hugging Face cache",
                      key, "processor=/path/to/a/saved/CLIPProcessor")


def _check_transformers(spec: BackboneSpec, who: str, key: str) -> None:
    if spec.processor:
        _check_processor(spec, who, key)
    problem = transformers_model_problem(spec.arch, cache_dir=spec.cache_dir)
    if problem is None:
        return
    raise AutojudgeError(f"{who}: {problem}; set {key}.arch to a folder written by "
                         f"CLIPModel.save_pretrained, or to a hub id like "
                         f"openai/clip-vit-base-patch32 once it is downloaded "
                         f"(hf download openai/clip-vit-base-patch32)")


# ------------------------------------------------------------------------- backbone
