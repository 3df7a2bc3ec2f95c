"""What the judges that load one checkpoint file share (ImageReward, MPS, HPSv3): the
file named by a local path or `hf-file:ORG/REPO/FILE` (pinned by `revision`), its
identity in the fingerprint, the dtype rule, and the one-line offline check before any
image is made.

Example:
    >>> file_identity("hf-file:THUDM/ImageReward/ImageReward.pt")
    'hf-file:THUDM/ImageReward/ImageReward.pt'
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from autojudge.errors import AutojudgeError
from autojudge.runtime.devices import pick_device
from autojudge.sdk import PointwiseJudge

DTYPES = ("float32", "float16", "bfloat16")
# loaded models by (judge class, fingerprint, device): two judges on the same weights,
# or a second run in this process, load them once
_LOADED: dict[tuple, Any] = {}
_LOADING = threading.Lock()


def file_identity(ref: str) -> Any:
    """A hub file by its ref (the revision enters beside it); a local file by digest."""
    if not ref or ref.startswith("hf-file:"):
        return ref
    from autojudge.judges.clip_backbone import quick_file_digest

    path = Path(ref).expanduser()
    return {"file": path.name, "digest": quick_file_digest(path) if path.is_file() else None}


def offline_error(who: str, what: str, example: str) -> AutojudgeError:
    return AutojudgeError(f"{who}: {what}, and the hub is offline (HF_HUB_OFFLINE=1 or no "
                          f"network); download it elsewhere and point at it, e.g. {example}")


def check_weights_file(c: Any, who: str, key: str, file_name: str) -> None:
    """`c.pretrained` is a local file, or a hub file that is cached or can be fetched now
    (`c.revision`, `c.cache_dir`); else one line naming `file_name` as the fix."""
    from autojudge.judges.clip_backbone import split_hub_file
    from autojudge.runtime.weights import hub_offline

    if c.pretrained.startswith("hf-file:"):
        from huggingface_hub import try_to_load_from_cache

        repo, filename = split_hub_file(c.pretrained)
        cached = try_to_load_from_cache(repo, filename, cache_dir=c.cache_dir or None,
                                        revision=c.revision or None)
        if not isinstance(cached, str) and hub_offline():
            at = f" at revision {c.revision}" if c.revision else ""
            raise offline_error(who, f"{filename} of {repo} is not in the Hugging Face "
                                f"cache{at}", f"{key}.pretrained=/path/to/{file_name}")
    elif not Path(c.pretrained).expanduser().is_file():
        raise AutojudgeError(f"{who}: weights file not found: {c.pretrained}; set "
                             f"{key}.pretrained to {file_name} or hf-file:ORG/REPO/FILE")


class CheckpointJudge(PointwiseJudge):
    """A pointwise judge whose Config has `pretrained` (a file or hf-file: ref) and
    `dtype`: both checked at construction, so a typo is one line before any work."""

    def __init__(self, name: str, config: Any = None):
        super().__init__(name, config)
        if self.config.dtype not in DTYPES:
            raise AutojudgeError(f"{self.where}: dtype '{self.config.dtype}' is not one of "
                                 f"{', '.join(DTYPES)}")
        if self.config.pretrained.startswith("hf-file:"):
            self._hub_ref()  # a malformed ref is one line at construction

    def _hub_ref(self) -> tuple[str, str]:
        from autojudge.judges.clip_backbone import split_hub_file

        try:
            return split_hub_file(self.config.pretrained)
        except AutojudgeError as exc:
            raise AutojudgeError(f"{self.where}: {exc}") from None

    def weights_file(self) -> str:
        """The checkpoint as a local path: a hub file is downloaded once into the Hugging
        Face cache (pinned by `revision`)."""
        c = self.config
        if not c.pretrained.startswith("hf-file:"):
            return str(Path(c.pretrained).expanduser())
        from huggingface_hub import hf_hub_download

        repo, filename = self._hub_ref()
        return hf_hub_download(repo, filename, revision=c.revision or None,
                               cache_dir=c.cache_dir or None)

    def _model(self) -> Any:
        """The model on this judge's device (`_load(device)`), loaded once per weights."""
        device = pick_device(self.config.device)
        key = (type(self).__name__,
               json.dumps(self.fingerprint(), sort_keys=True, default=str), device)
        with _LOADING:
            if key not in _LOADED:
                _LOADED[key] = self._load(device)
            return _LOADED[key]

    def _load(self, device: str) -> Any:
        raise NotImplementedError(f"{type(self).__name__}._load")
