"""Import images made elsewhere: one folder per model, files named by prompt id.

Layout of `path` (one folder per model). For a request (prompt id P, seed S) the first
existing file wins, in this order, trying each of `extensions` in config order (each as
written, then upper-case) at every step:

    1. <path>/<P>/<S>.<ext>      a sub-folder per prompt, one file per seed
    2. <path>/<P>_<S>.<ext>      flat, one file per seed
    3. <path>/<P>.<ext>          flat, one file per prompt, used for EVERY seed

so a folder with one image per prompt works with any seed list, and seed-specific files
take precedence where they exist. A request with no file gives a
`Failure("missing_file", ...)` naming the paths tried; a file Pillow cannot decode gives
`Failure("corrupt_image", ...)`. Neither raises: one missing image never stops a run.

The file's original bytes are returned (never re-encoded), so the image hash is the file's.
Relative paths resolve against the current working directory at the time of each call.
`cacheable` is False because the files can change between runs. `latency_s` is the time
to read and verify the file (the real generation time is unknown), and cost is 0.

Example:
    >>> gen = FolderGenerator("my_flux_run", FolderGenerator.Config(path="runs/imports/flux"))
    >>> gen.cacheable
    False
"""
from __future__ import annotations

import dataclasses
import io
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from PIL import Image

from autojudge.errors import AutojudgeError
from autojudge.types import Failure, GenOutput, GenRequest

__all__ = ["FolderGenerator"]


def _default_extensions() -> list[str]:
    return ["png", "jpg", "jpeg", "webp"]


class FolderGenerator:
    """A "model" whose images already exist on disk (see the module docstring for layout)."""

    kind = "folder"
    version = 1
    cacheable = False
    batch_size = 64

    @dataclass
    class Config:
        """Params of the `folder` generator.

        Attributes:
            path: the model's folder; relative paths resolve against the current
                working directory.
            extensions: file extensions to look for, without dots, tried in this order.
        """

        path: str = ""
        extensions: list[str] = field(default_factory=_default_extensions)

    def __init__(self, name: str, config: "FolderGenerator.Config | None" = None):
        self.name = name
        self.config = config or FolderGenerator.Config()
        exts = [str(e).strip().lstrip(".") for e in self.config.extensions]
        self._extensions = [e for e in dict.fromkeys(exts) if e]

    def __repr__(self) -> str:
        return f"FolderGenerator(name={self.name!r}, config={self.config!r})"

    @property
    def root(self) -> Path:
        """`path` made absolute against the current working directory."""
        return Path(os.path.expanduser(self.config.path)).absolute()

    def fingerprint(self) -> Mapping[str, Any]:
        params = dataclasses.asdict(self.config)
        params["path"] = str(self.root) if self.config.path else ""
        return {"kind": self.kind, "version": self.version, "params": params}

    # ------------------------------------------------------------------ check

    def _image_files(self, root: Path) -> list[Path]:
        """Image files directly in `root` or one level down (prompt sub-folders)."""
        suffixes = {f".{e.lower()}" for e in self._extensions}
        found = []
        for entry in sorted(root.iterdir()):
            if entry.is_file() and entry.suffix.lower() in suffixes:
                found.append(entry)
            elif entry.is_dir():
                found.extend(p for p in sorted(entry.iterdir())
                             if p.is_file() and p.suffix.lower() in suffixes)
        return found

    def check(self) -> None:
        label = f"model '{self.name}'"
        if not self.config.path.strip():
            raise AutojudgeError(
                f"{label}: folder generator has no path; set model.{self.name}.path to the "
                f"folder holding its images (files named <prompt_id>.png)"
            )
        if not self._extensions:
            raise AutojudgeError(
                f"{label}: extensions is empty; set model.{self.name}.extensions, "
                f"e.g. [png, jpg, jpeg, webp]"
            )
        root = self.root
        if not root.exists():
            raise AutojudgeError(
                f"{label}: folder {root} does not exist (path '{self.config.path}', relative "
                f"to {Path.cwd()}); create it or fix model.{self.name}.path"
            )
        if not root.is_dir():
            raise AutojudgeError(
                f"{label}: {root} is not a directory; set model.{self.name}.path to the "
                f"folder holding its images"
            )
        try:
            files = self._image_files(root)
        except OSError as exc:
            raise AutojudgeError(
                f"{label}: cannot list folder {root} ({exc}); check its permissions"
            ) from exc
        if not files:
            exts = ", ".join(self._extensions)
            raise AutojudgeError(
                f"{label}: folder {root} has no image files ({exts}); put images named "
                f"<prompt_id>.png, <prompt_id>_<seed>.png or <prompt_id>/<seed>.png there"
            )

    # --------------------------------------------------------------- generate

    def candidates(self, request: GenRequest) -> list[Path]:
        """Every path tried for `request`, in lookup order."""
        root = self.root
        pid, seed = request.prompt.id, request.seed
        stems = [Path(pid) / str(seed), Path(f"{pid}_{seed}"), Path(pid)]
        paths = []
        for stem in stems:
            for ext in self._extensions:
                for variant in dict.fromkeys((ext, ext.upper())):
                    paths.append(root / stem.parent / f"{stem.name}.{variant}")
        return paths

    def _find(self, request: GenRequest) -> tuple[Path | None, list[Path]]:
        root = self.root
        tried = self.candidates(request)
        for path in tried:
            # a prompt id with "../" must not escape the model's folder
            if not path.resolve().is_relative_to(root.resolve()):
                continue
            if path.is_file():
                return path, tried
        return None, tried

    @staticmethod
    def _verify(data: bytes) -> tuple[str, int, int]:
        """(format, width, height) of encoded image bytes; raises if Pillow can't decode."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                im.verify()  # structure and checksums
            with Image.open(io.BytesIO(data)) as im:
                im.load()  # full decode: catches truncated pixel data verify() misses
                return str(im.format), im.width, im.height

    def _one(self, request: GenRequest) -> GenOutput:
        start = time.perf_counter()
        path, tried = self._find(request)
        if path is None:
            pid, seed = request.prompt.id, request.seed
            exts = ",".join(self._extensions)
            shown = f"{pid}/{seed}.{{{exts}}}, {pid}_{seed}.{{{exts}}}, {pid}.{{{exts}}}"
            return GenOutput(
                image=None, latency_s=time.perf_counter() - start,
                failure=Failure("missing_file",
                                f"model '{self.name}': no image for prompt "
                                f"'{request.prompt.id}' seed {request.seed} in {self.root} "
                                f"(tried {shown}, extensions also upper-case)"),
            )
        try:
            data = path.read_bytes()
        except OSError as exc:
            return GenOutput(
                image=None, latency_s=time.perf_counter() - start,
                failure=Failure("unreadable_file", f"model '{self.name}': cannot read {path}: "
                                f"{exc}", retryable=True),
            )
        try:
            fmt, width, height = self._verify(data)
        except Exception as exc:  # PIL raises many types for bad data
            return GenOutput(
                image=None, latency_s=time.perf_counter() - start,
                failure=Failure("corrupt_image", f"model '{self.name}': {path} is not a "
                                f"readable image ({type(exc).__name__}: {exc})"),
            )
        return GenOutput(
            image=data, latency_s=time.perf_counter() - start, cost_usd=0.0,
            meta={"path": str(path), "format": fmt, "width": width, "height": height},
        )

    def generate(self, requests: Sequence[GenRequest]) -> list[GenOutput]:
        return [self._one(request) for request in requests]
