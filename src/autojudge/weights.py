"""Where weights come from: local folders, the Hugging Face cache, and whether the hub
answers. One rule for every plugin that loads weights (CLIP, diffusers, local VLMs)."""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Sequence

_HUB_HOST = ("huggingface.co", 443)
_REACHABLE: bool | None = None


def hub_offline() -> bool:
    """True when the user said so (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE) or the hub host
    does not answer a TCP connect within 2 s (checked once per process)."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    global _REACHABLE
    if _REACHABLE is None:
        try:
            socket.create_connection(_HUB_HOST, timeout=2.0).close()
            _REACHABLE = True
        except OSError:
            _REACHABLE = False
    return not _REACHABLE


def hf_cached(repo: str, filenames: Sequence[str], cache_dir: str = "") -> bool:
    """True when any of `filenames` of hub repo `repo` is in the local Hugging Face cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    for name in filenames:
        found = try_to_load_from_cache(repo, name, cache_dir=cache_dir or None)
        if isinstance(found, str) and os.path.isfile(found):
            return True
    return False


def dir_signature(path: Path) -> list[Any]:
    """(relative path, size, mtime_ns) of every file under a local folder: enters
    fingerprints, so retraining into the same folder invalidates cached results."""
    entries = []
    for p in sorted(path.rglob("*")):
        if p.is_file() and ".cache" not in p.parts:
            st = p.stat()
            entries.append([str(p.relative_to(path)), st.st_size, st.st_mtime_ns])
    return entries


def looks_local(ref: str) -> bool:
    """A model reference that names a local path rather than a hub id."""
    return ref.startswith((".", "/", "~")) or os.path.exists(os.path.expanduser(ref))


HF_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                   "pytorch_model.bin.index.json")


def transformers_model_problem(ref: str, *, cache_dir: str = "",
                               local_files_only: bool = False) -> str | None:
    """Why the transformers model `ref` (a save_pretrained folder or a hub id such as
    openai/clip-vit-base-patch32) cannot be loaded now, or None when it can: a folder must
    hold config.json; a hub id must be in the local cache unless the hub can be reached."""
    path = Path(ref).expanduser()
    if path.is_dir():
        return None if (path / "config.json").is_file() else f"{path} has no config.json"
    if ref.startswith((".", "/", "~")) or path.exists():
        return f"model folder not found: {path} (it does not exist)"
    if hf_cached(ref, ["config.json"], cache_dir) and hf_cached(ref, HF_WEIGHT_FILES, cache_dir):
        return None
    if local_files_only or hub_offline():
        return f"{ref} is not in the Hugging Face cache and the hub is offline"
    return None


def model_ref_identity(ref: str) -> Any:
    """A model reference as it enters a fingerprint: a hub id as given; a local folder or
    file by resolved path plus the size and mtime of its files (so retraining into the same
    folder invalidates cached results)."""
    if ref and looks_local(ref):
        path = Path(os.path.expanduser(ref)).resolve()
        return {"path": str(path), "files": dir_signature(path) if path.is_dir() else
                ([path.stat().st_size, path.stat().st_mtime_ns] if path.exists() else None)}
    return ref
