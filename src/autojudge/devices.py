"""Where models run: one rule for every plugin that loads weights."""
from __future__ import annotations


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
