"""The MPS checkpoint layouts (see `autojudge.judges.mps`): reading a file and splitting
its tensors into the CLIPModel's and the cross model's.

    MPS_overall_checkpoint.pth (the official file: the whole model, pickled with the
    classes of the MPS repository's `trainer` package) is read by a restricted unpickler
    whose find_class gives only the tensor rebuilders and plain containers, and an inert
    stand-in for every other class: it imports nothing and runs no code of the file, and
    the module tree's parameters and persistent buffers are read out of the stand-ins.
    A state dict of it (.pt/.pth/.bin, bare or under "state_dict", or .safetensors) has
    the keys model.*, cross_model.*; imscore's hub copy (RE-N-Y/mpsv1) mps.model.*,
    mps.cross_model.*.
"""
from __future__ import annotations

import pickle
import re
import types
from typing import Any

__all__ = ["convert_state_dict", "read_checkpoint"]

_CROSS_PARTS = {0: ("norm.weight", "norm.bias", "to_q.weight", "to_kv.weight", "to_out.weight",
                    "ff.0.weight", "ff.2.weight"),
                1: ("norm.weight", "norm.bias", "rotary_emb.inv_freq",
                    "fused_attn_ff_proj.weight", "attn_out.weight", "ff_out.1.weight")}


def convert_state_dict(state: dict[str, Any]) -> tuple[dict, dict]:
    """(CLIPModel state, cross-model state keyed `layers.N.M.fn.*`) of an MPS state dict
    in the official layout (model.*, cross_model.*) or imscore's (mps.model.*, ...). A key
    outside the model, or a cross-model part missing, is a ValueError naming it, so a
    checkpoint of another layout never loads half-way (the strict CLIP load checks the rest)."""
    clip: dict[str, Any] = {}
    cross: dict[str, Any] = {}
    for key, value in state.items():
        name = key[len("mps."):] if key.startswith("mps.") else key
        if name.startswith("model."):
            if not name.endswith(".position_ids"):  # a buffer transformers 4.27 saved
                clip[name[len("model."):]] = value
        elif name.startswith("cross_model."):
            cross[name[len("cross_model."):]] = value
        else:
            raise ValueError(f"unexpected key '{key}' (not an MPS checkpoint)")
    if not clip or not cross:
        raise ValueError("no model.* / cross_model.* weights (not an MPS checkpoint)")
    count = 1 + max((int(m.group(1)) for k in cross
                     if (m := re.match(r"layers\.(\d+)\.", k))), default=-1)
    expected = {f"layers.{i}.{part}.fn.{name}" for i in range(count)
                for part, names in _CROSS_PARTS.items() for name in names}
    missing, unexpected = sorted(expected - set(cross)), sorted(set(cross) - expected)
    if missing or unexpected or not count:
        what = f"lacks 'cross_model.{missing[0]}'" if missing else \
            f"has an unexpected key 'cross_model.{unexpected[0]}'" if unexpected else \
            "has no cross_model.layers"
        raise ValueError(f"the checkpoint {what} (not the MPS cross model)")
    return clip, cross


class _Inert:
    """Stands in for every class a pickled model names: it keeps the attributes pickle
    hands it and runs no code, so only the tensors are read out of the official file."""

    def __new__(cls, *args: Any, **kwargs: Any) -> "_Inert":
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (__dict__, __slots__ state)
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update(state)

    def __setitem__(self, key: Any, value: Any) -> None:  # a dict subclass being filled
        pass

    def append(self, item: Any) -> None:  # a list subclass being filled
        pass


def _restricted_pickle() -> Any:
    """A pickle module for torch.load whose find_class gives the tensor rebuilders and
    plain containers, and _Inert for anything else (the model's own classes)."""
    import collections
    import torch._utils as rebuild

    safe: dict[tuple[str, str], Any] = {("collections", "OrderedDict"): collections.OrderedDict}
    for builtins in ("builtins", "__builtin__"):  # protocol 2 writes Python 2's names
        safe.update({(builtins, "set"): set, (builtins, "frozenset"): frozenset})
    for copyreg in ("copyreg", "copy_reg"):
        safe[(copyreg, "_reconstructor")] = lambda cls, base, state: _Inert()
    for name in ("_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
                 "_rebuild_parameter_with_state"):
        if hasattr(rebuild, name):
            safe[("torch._utils", name)] = getattr(rebuild, name)

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            return safe.get((module, name), _Inert)

    return types.SimpleNamespace(Unpickler=Unpickler, load=pickle.load,
                                 __name__="mps_restricted_pickle")


def _module_tensors(node: Any, prefix: str, out: dict[str, Any]) -> None:
    """The state dict of an unpickled module tree: parameters, persistent buffers."""
    import torch

    attrs = vars(node) if isinstance(node, _Inert) else {}
    skip = attrs.get("_non_persistent_buffers_set") or set()
    for name, value in (attrs.get("_parameters") or {}).items():
        if torch.is_tensor(value):
            out[prefix + name] = value
    for name, value in (attrs.get("_buffers") or {}).items():
        if torch.is_tensor(value) and name not in skip:
            out[prefix + name] = value
    for name, child in (attrs.get("_modules") or {}).items():
        _module_tensors(child, f"{prefix}{name}.", out)


def read_checkpoint(path: str) -> dict[str, Any]:
    """The tensors of an MPS checkpoint file: a safetensors file, a torch state dict
    (bare or under "state_dict"), or the official whole pickled model."""
    import torch

    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # the official file pickles the model's classes
        obj = torch.load(path, map_location="cpu", weights_only=False,
                         pickle_module=_restricted_pickle())
        if isinstance(obj, dict):  # a state dict with something else pickled beside it
            return {k: v for k, v in obj.items() if torch.is_tensor(v)}
        state: dict[str, Any] = {}
        _module_tensors(obj, "", state)
        return state
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"expected a state dict or a pickled model, got {type(obj).__name__}")
    return obj
