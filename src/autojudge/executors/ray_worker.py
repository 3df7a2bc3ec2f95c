"""What runs inside a Ray actor: a plugin, built once, fed batch after batch.

A `PluginWorker` is a plain class; `executors.ray_pool` wraps it with `ray.remote`, so
this module imports nothing from Ray and its logic is testable in-process. The plugin is
built inside the actor from the same config node the driver used (so its weights load
once per worker, on the worker's GPU), and its outputs go back to the driver, which alone
writes the store. Images travel one of two ways (`transfer`):

- "bytes": encoded image bytes through Ray's object store (no shared storage needed);
- "shared": workers read and write blobs on shared storage (`store.blobs`), and only
  content hashes travel; every blob read is checked against its hash here.

Example:
    >>> spec = PluginSpec("model", "blank", cls, {"kind": "blank"})   # doctest: +SKIP
    >>> PluginWorker().generate(spec, [GenRequest(prompt, 0)])       # doctest: +SKIP
"""
from __future__ import annotations

import gc
import hashlib
import io
import os
import socket
import sys
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from autojudge.errors import AutojudgeError
from autojudge.stages.isolation import guarded_compare, guarded_rank, guarded_score
from autojudge.types import Failure, GenOutput, GenRequest, JudgeItem, PairItem, RankItem

#: what a worker sends back instead of raising: ("error", one line) -> AutojudgeError
ERROR = "error"


class _OneClass:
    """A registry of one class, so the worker builds its plugin with build.build_plugin
    (the same validation as the driver) from a class the driver resolved and shipped
    (plugins registered with the decorator in user code work too)."""

    def __init__(self, cls: Any):
        self.cls = cls

    def get(self, kind: str) -> Any:
        return self.cls


@dataclass(frozen=True)
class PluginSpec:
    """Which plugin a batch is for, and how its images travel.

    Attributes:
        group: "model" or "judge" (the config group, for messages).
        label: the plugin's label in the run.
        cls: the plugin class (resolved on the driver).
        node: the plugin's config node (runner keys removed for judges).
        transfer: "bytes" or "shared" (see the module docstring).
        blobs: the store's blobs location, for "shared".
        call_timeout_s: seconds one plugin call may take before its items fail as timed
            out (`stages.isolation`, as on the driver: `judge.<label>.call_timeout_s`);
            None: no limit.
    """

    group: str
    label: str
    cls: Any
    node: Mapping[str, Any]
    transfer: str = "bytes"
    blobs: str | None = None
    call_timeout_s: float | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.group, self.label


class PluginWorker:
    """Hosts one plugin at a time inside a Ray actor, built on its first batch.

    Every call names its plugin (a `PluginSpec`): a worker that served another plugin
    (or was restarted by Ray, which re-runs only `__init__`) builds the named one first,
    so a process and its heavy imports (torch, diffusers) serve one model after another
    while weights load once per plugin per worker."""

    def __init__(self) -> None:
        self.key: tuple[str, str] | None = None
        self.where = ""
        self.error: str | None = None
        self.plugin: Any = None
        self._blobs: Any = None

    def _use(self, spec: PluginSpec) -> None:
        if spec.key == self.key:
            return
        self.unload()
        self.key, self.error = spec.key, None
        self.where = (f"in the worker of {spec.group} '{spec.label}' on "
                      f"{socket.gethostname()}, pid {os.getpid()}")
        try:
            from autojudge.experiment import build

            self.plugin = build.build_plugin(_OneClass(spec.cls), spec.group, spec.label,
                                           dict(spec.node))
            self.plugin.check()  # weights or keys missing on this machine: say so once
            if spec.transfer == "shared":
                from autojudge.store.blobs import open_blobs

                self._blobs = open_blobs(spec.blobs, root=None)
        except AutojudgeError as exc:
            self.error = f"{exc} ({self.where})"

    def unload(self) -> None:
        """Drop the plugin (its weights, its GPU memory) before another one loads."""
        self.key, self.plugin, self._blobs = None, None, None
        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def pid(self) -> int:
        """This worker's process id (tests kill it to check that nothing is lost)."""
        return os.getpid()

    def ready(self, spec: PluginSpec) -> tuple[str, str] | None:
        """None when the plugin is built, else the error line (asked once per worker)."""
        self._use(spec)
        return (ERROR, self.error) if self.error else None

    # -- generation ----------------------------------------------------------------------

    def generate(self, spec: PluginSpec, requests: Sequence[GenRequest]) -> Any:
        """One output per request (per-member failure isolation as in the local stage);
        with "shared", images are written to shared storage and only hashes return."""
        self._use(spec)
        if self.error:
            return ERROR, self.error
        from autojudge.stages.isolation import guarded_generate

        outputs = guarded_generate(self.plugin, list(requests))
        if spec.transfer != "shared":
            return outputs
        return [self._write(out) for out in outputs]

    def _write(self, output: GenOutput) -> Any:
        from autojudge.runtime.atomic_files import image_extension
        from autojudge.stages.generate import StoredOutput

        if output.failure is not None or output.image is None:
            return output
        data = output.image
        sha, ext = hashlib.sha256(data).hexdigest(), image_extension(data)
        bare = GenOutput(None, output.latency_s, output.cost_usd, None, output.meta)
        try:
            self._blobs.write(sha, ext, data)
        except Exception as exc:  # noqa: BLE001  a storage hiccup fails this image only
            message = f"cannot write {self._blobs.where(sha, ext)}: {exc} ({self.where})"
            return GenOutput(None, output.latency_s, output.cost_usd,
                             Failure("worker_blob_write", " ".join(message.split())[:500],
                                     retryable=True), output.meta)
        return StoredOutput(bare, sha, ext, len(data))

    # -- judging -------------------------------------------------------------------------

    def score(self, spec: PluginSpec, items: Sequence[Mapping[str, Any]]) -> Any:
        """(scores, plugin run stats) for wire items (see `wire_item`); the plugin is
        called through `stages.isolation`, so a raise, a wrong count or a wrong type
        fails only the items it touched, as in the local compute."""
        self._use(spec)
        if self.error:
            return ERROR, self.error
        try:
            decoded = self._decode(items)
            scores = guarded_score(self.plugin, [decoded[i] for i in range(len(items))],
                                   spec.call_timeout_s)
            return scores, self._stats()
        except AutojudgeError as exc:
            return ERROR, f"{exc} ({self.where})"

    def compare(self, spec: PluginSpec, pairs: Sequence[tuple[Any, int, int]],
                items: Sequence[Mapping[str, Any]]) -> Any:
        """(verdicts, plugin run stats) for pairs given as (prompt, item a, item b)
        indices into `items` (each image travels and is decoded once per batch)."""
        self._use(spec)
        if self.error:
            return ERROR, self.error
        try:
            decoded = self._decode(items)
            ready = [PairItem(prompt, decoded[a], decoded[b]) for prompt, a, b in pairs]
            return guarded_compare(self.plugin, ready, spec.call_timeout_s), self._stats()
        except AutojudgeError as exc:
            return ERROR, f"{exc} ({self.where})"

    def rank(self, spec: PluginSpec, groups: Sequence[tuple[Any, Sequence[int]]],
             items: Sequence[Mapping[str, Any]]) -> Any:
        """(rank verdicts, plugin run stats) for groups given as (prompt, item indices in
        slot order) into `items` (a K-wise judge's two slot orders share the images)."""
        self._use(spec)
        if self.error:
            return ERROR, self.error
        try:
            decoded = self._decode(items)
            ready = [RankItem(prompt, tuple(decoded[i] for i in ends))
                     for prompt, ends in groups]
            return guarded_rank(self.plugin, ready, spec.call_timeout_s), self._stats()
        except AutojudgeError as exc:
            return ERROR, f"{exc} ({self.where})"

    def _decode(self, items: Sequence[Mapping[str, Any]]) -> dict[int, JudgeItem]:
        from autojudge.stages.judge import decode_image

        out = {}
        for i, item in enumerate(items):
            data = item.get("data")
            if data is None:  # "shared": read it here, and trust it only if it hashes
                got = self._blobs.read(item["sha"], item["ext"])
                data = got[0] if got else None
                if data is None or hashlib.sha256(data).hexdigest() != item["sha"]:
                    raise AutojudgeError(
                        f"stored image {self._blobs.where(item['sha'], item['ext'])} is "
                        f"missing or damaged; run `python -m autojudge.store repair`, "
                        f"then run again to generate it anew")
            out[i] = JudgeItem(item["prompt"], decode_image(data), item["sha"])
        return out

    def _stats(self) -> Any:
        """(pid, the plugin's run stats so far): the driver sums the latest per worker."""
        hook = getattr(self.plugin, "run_stats", None)
        return (os.getpid(), dict(hook() or {})) if callable(hook) else None


def wire_item(item: JudgeItem, transfer: str) -> dict[str, Any]:
    """A JudgeItem as it travels to a worker: the prompt, the image's hash, and either
    its stored bytes ("bytes") or only where to read them ("shared")."""
    from autojudge.stages.judge import BlobLoader

    loader = item.loader
    if isinstance(loader, BlobLoader) and item.image is None:
        if transfer == "shared":
            return {"prompt": item.prompt, "sha": loader.sha, "ext": loader.ext}
        return {"prompt": item.prompt, "sha": loader.sha, "ext": loader.ext,
                "data": loader.read_bytes()}  # verified against its hash on the driver
    # An image already decoded (or from a custom loader): PNG is lossless, so the worker
    # decodes exactly these pixels.
    image = item.materialized().image
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return {"prompt": item.prompt, "sha": item.image_sha, "ext": "png",
            "data": buffer.getvalue()}


def wire_sets(sets: Sequence[Sequence[JudgeItem]], transfer: str
              ) -> tuple[list[list[int]], list[dict[str, Any]]]:
    """(each set's items as indices, the distinct items as wire items): an image that
    appears in several pairs or groups of a batch (a swap, a second slot order) travels
    once."""
    index: dict[int, int] = {}
    items: list[dict[str, Any]] = []
    out = []
    for members in sets:
        ends = []
        for item in members:
            if id(item) not in index:
                index[id(item)] = len(items)
                items.append(wire_item(item, transfer))
            ends.append(index[id(item)])
        out.append(ends)
    return out, items
