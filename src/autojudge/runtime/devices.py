"""Where models run: one rule for every plugin that loads weights."""
from __future__ import annotations

from typing import Any


def pick_device(requested: str = "auto") -> str:
    """"auto" -> cuda if available, else mps, else cpu; anything else as given."""
    if requested != "auto":
        return requested
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(requested: str, device: str) -> "Any":
    """torch dtype for `requested` on `device`: "auto" -> bfloat16 on CUDA that supports it
    (else float16), float16 on mps, float32 on cpu; anything else by name (float16...)."""
    import torch

    if requested != "auto":
        return getattr(torch, requested)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32
