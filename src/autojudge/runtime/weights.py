"""Where weights come from: local folders, the Hugging Face cache, and whether the hub
answers. One rule for every plugin that loads weights (CLIP, diffusers, local VLMs)."""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

_REACHABLE: bool | None = None


def _hub_host() -> tuple[str, int]:
    """The hub's host and port (HF_ENDPOINT, e.g. a mirror, when set)."""
    url = urlsplit(os.environ.get("HF_ENDPOINT", "").strip() or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def hub_offline() -> bool:
    """True when the user said so (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE) or the hub host
    does not answer a TCP connect within 2 s (checked once per process)."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    global _REACHABLE
    if _REACHABLE is None:
        try:
            socket.create_connection(_hub_host(), timeout=2.0).close()
            _REACHABLE = True
        except OSError:
            _REACHABLE = False
    return not _REACHABLE


def hub_snapshot(repo: str, revision: str = "", cache_dir: str = "") -> Path | None:
    """The folder of hub repo `repo` (at `revision`) in the local Hugging Face cache, or
    None when no snapshot of it is there. Never touches the network."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError
    except ImportError:
        return None
    try:
        return Path(snapshot_download(repo, revision=revision or None,
                                      cache_dir=cache_dir or None, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError, OSError, ValueError):
        return None


def pipeline_folder_problem(folder: Path) -> str | None:
    """Why `folder` is not a whole diffusers pipeline, or None: it needs model_index.json
    and a sub-folder for every component that file lists (a download that stopped half
    way has the index but not the weights)."""
    index = folder / "model_index.json"
    if not index.is_file():
        return f"{folder} has no model_index.json"
    try:
        spec = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"{index} is not readable JSON ({' '.join(str(exc).split())})"
    if not isinstance(spec, dict):
        return f"{index} is not a JSON object"
    missing = [name for name, value in spec.items() if not name.startswith("_")
               and isinstance(value, list) and len(value) == 2 and all(value)
               and not (folder / name).is_dir()]
    if missing:
        return f"{folder} lacks the component folder(s) {', '.join(missing)} named in " \
               "its model_index.json"
    return None


def hub_weights_problem(repo: str, *, revision: str = "", local_files_only: bool = False,
                        pipeline: bool = False) -> str | None:
    """Why hub repo `repo` cannot be loaded now, as a phrase to follow its name ("not in
    the Hugging Face cache and ..."), or None when it can: it is in the local cache
    (whole, for a diffusers `pipeline`), or the hub answers and will supply it."""
    snapshot = hub_snapshot(repo, revision)
    problem = pipeline_folder_problem(snapshot) if snapshot and pipeline else None
    if snapshot is not None and problem is None:
        return None
    if not (local_files_only or hub_offline()):
        return None
    at = f" at revision {revision}" if revision else ""
    offline = "local_files_only is set" if local_files_only else \
        "the hub is offline (HF_HUB_OFFLINE=1 or no network)"
    if snapshot is None:
        return f"not in the Hugging Face cache{at} and {offline}"
    return f"only partly in the Hugging Face cache{at} ({problem}) and {offline}"


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
