"""Import images made elsewhere: one folder per model, files named by prompt id.

Layout of `path` (one folder per model). For a request (prompt id P, seed S) the first
existing regular file wins, in this order, trying each of `extensions` in config order
(each as written, then upper-case) at every step:

    1. <path>/<P>/<S>.<ext>      a sub-folder per prompt, one file per seed
    2. <path>/<P>_<S>.<ext>      flat, one file per seed
    3. <path>/<P>_s<S>.<ext>     flat, one file per seed, as a run writes its images
    4. <path>/<P>.<ext>          flat, one file per prompt, used for EVERY seed

so a folder with one image per prompt works with any seed list, and seed-specific files
take precedence where they exist. Step 3 is a run's own layout
(`runs/<run>/images/<model>/<P>_s<S>.png`, with the id's characters a file name cannot
hold replaced as the run replaced them), so a finished run's images are re-judged with
`model.folder.path=runs/<run>/images/<model>`; the bytes are the same, so every score
cached by content is reused. Every problem with one request's file is a typed
`Failure` for that request alone, never an exception, so one bad file never spoils the
rest of a batch or the run:

    missing_file     no candidate path exists (the message names the paths tried)
    unreadable_file  a candidate exists but cannot be read: a directory or FIFO named like
                     an image, a looping or dangling symlink, permission denied
    corrupt_image    Pillow cannot decode the bytes (0-byte file, truncated or garbage data)
    image_too_large  over `max_pixels` (64 MP), or a decompression bomb by Pillow's own
                     `Image.MAX_IMAGE_PIXELS` (checked from the header, before decoding)

The file's original bytes are returned (never re-encoded), so the image hash is the file's.
Relative paths resolve against the current working directory at the time of each call.
`cacheable` is False because the files can change between runs. `latency_s` is the time
to read and verify the file (the real generation time is unknown), and cost is 0.

`matching_requests(requests)` is the cheap pre-flight: one directory listing, no file
opened, tells how many requests have a file and shows examples of ids without one and of
files that no request would read (a folder named by another scheme).

Example:
    >>> gen = FolderGenerator("my_flux_run", FolderGenerator.Config(path="runs/imports/flux"))
    >>> gen.cacheable
    False
"""
from __future__ import annotations

import errno
import io
import os
import re
import stat
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from PIL import Image, UnidentifiedImageError

from autojudge.errors import AutojudgeError
from autojudge.sdk import Generator
from autojudge.types import Failure, GenOutput, GenRequest

__all__ = ["FolderGenerator", "FolderMatch"]

# stat() errors that mean "no file at this candidate path": the next candidate is tried
_ABSENT = (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG)
_NAMING = ("<prompt_id>.png, <prompt_id>_<seed>.png, <prompt_id>_s<seed>.png or "
           "<prompt_id>/<seed>.png")
# A run names its image files after the prompt id with these characters replaced
# (autojudge.report.files.image_name); the lookup repeats that to read a run's images.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _default_extensions() -> list[str]:
    return ["png", "jpg", "jpeg", "webp"]


def _one_line(text: str, limit: int = 500) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is(entry: os.DirEntry, what: str) -> bool:
    """DirEntry.is_file()/is_dir() that says False instead of raising (loops, EACCES)."""
    try:
        return entry.is_file() if what == "file" else entry.is_dir()
    except OSError:
        return False


class _TooLarge(Exception):
    """An image whose header claims more pixels than allowed (raised before decoding)."""


@dataclass(frozen=True)
class FolderMatch:
    """How a folder's files line up with a list of requests (see `matching_requests`).

    Attributes:
        root: the folder that was listed.
        requests, matched: requests given, and how many have a regular file to read.
        prompts, prompts_matched: distinct prompt ids, and how many have a file for at
            least one of their seeds.
        files: image files (by extension) found in the folder and its prompt sub-folders.
        unmatched_ids: a few prompt ids (request order) with at least one seed unmatched.
        stray_files: a few image files (relative paths, sorted) that no request reads.
    """

    root: str
    requests: int
    matched: int
    prompts: int
    prompts_matched: int
    files: int
    unmatched_ids: tuple[str, ...]
    stray_files: tuple[str, ...]

    def summary(self, label: str) -> str:
        """One line for a pre-flight message, e.g. "model.flux: 0 of 94 prompts have an
        image in /imports/flux (files look like 'img_001.png'; name them <prompt_id>.png,
        ...)"."""
        line = (f"model.{label}: {self.prompts_matched} of {self.prompts} prompts have an "
                f"image in {self.root}")
        missing = self.requests - self.matched
        strays = ", ".join(repr(f) for f in self.stray_files)
        details = []
        if missing:
            ids = ", ".join(repr(i) for i in self.unmatched_ids)
            details.append(f"{missing} of {self.requests} prompt/seed requests have no file"
                           + (f", e.g. for {ids}" if ids else ""))
            if strays:
                details.append(f"files look like {strays}")
            details.append(f"name them {_NAMING}")
        elif strays:
            details.append(f"files no prompt uses: {strays}")
        return line + (f" ({'; '.join(details)})" if details else "")


class FolderGenerator(Generator):
    """A "model" whose images already exist on disk (see the module docstring for layout)."""

    kind = "folder"
    cacheable = False
    cheap_to_remake = True  # reading the file again gives the same bytes, for nothing
    placement = "driver"  # the folder lives on this machine's disk, not a worker's
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

    #: Largest image accepted (width x height): a bigger one is an `image_too_large`
    #: failure for its request, found from the header before any pixel is decoded.
    #: 64 megapixels is well past any generator's output and below Pillow's own bomb
    #: warning (~89 MP). Set it on an instance (or subclass) to change it.
    max_pixels: int = 64_000_000

    def __init__(self, name: str, config: "FolderGenerator.Config | None" = None):
        super().__init__(name, config)
        exts = [str(e).strip().lstrip(".") for e in self.config.extensions]
        self._extensions = [e for e in dict.fromkeys(exts) if e]

    @property
    def root(self) -> Path:
        """`path` made absolute against the current working directory (not normalised)."""
        return Path(os.path.expanduser(self.config.path)).absolute()

    def fingerprint_params(self) -> dict[str, Any]:
        params = super().fingerprint_params()
        params["path"] = str(self.root) if self.config.path else ""  # where, not as typed
        return params

    # ------------------------------------------------------------------ check

    def _suffixes(self) -> set[str]:
        return {f".{e.lower()}" for e in self._extensions}

    def _listing(self, root: Path) -> list[str]:
        """Relative paths of the regular image files in `root` and one level down.

        A prompt sub-folder that cannot be listed is skipped: its requests then fail
        alone at generation time, with the reason, instead of refusing the whole run.
        Raises OSError only when `root` itself cannot be listed.
        """
        suffixes = self._suffixes()
        found = []
        with os.scandir(root) as entries:
            top = sorted(entries, key=lambda e: e.name)
        for entry in top:
            if _is(entry, "file") and Path(entry.name).suffix.lower() in suffixes:
                found.append(entry.name)
            elif _is(entry, "dir"):
                try:
                    with os.scandir(entry.path) as inner:
                        names = sorted(e.name for e in inner if _is(e, "file")
                                       and Path(e.name).suffix.lower() in suffixes)
                except OSError:
                    continue
                found.extend(f"{entry.name}/{name}" for name in names)
        return found

    def _listed_root(self) -> tuple[Path, list[str]]:
        """The validated root and its image files; AutojudgeError (one line) if unusable."""
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
            return root, self._listing(root)
        except OSError as exc:
            raise AutojudgeError(
                f"{label}: cannot list folder {root} ({exc.strerror or exc}); check its "
                f"permissions"
            ) from exc

    def check(self) -> None:
        root, files = self._listed_root()
        if not files:
            exts = ", ".join(self._extensions)
            raise AutojudgeError(
                f"model '{self.name}': folder {root} has no image files ({exts}); put images "
                f"named {_NAMING} there"
            )

    def matching_requests(self, requests: Sequence[GenRequest], *,
                          examples: int = 3) -> FolderMatch:
        """Which requests have a file, from one listing of the folder (no file is opened).

        Cheap and side-effect free, for a pre-flight check before any work: it applies
        the same naming rules as `generate` (but does not decode images, so a corrupt
        file still counts as matched here).

        Args:
            requests: the requests the run will send.
            examples: how many unmatched ids and stray files to show at most.

        Returns:
            A FolderMatch; `summary(label)` words it as one line.

        Raises:
            AutojudgeError: the folder is missing, not a directory or cannot be listed.
        """
        root, files = self._listed_root()
        present = set(files)
        wanted: set[str] = set()
        matched = 0
        ids: dict[str, bool] = {}
        unmatched: dict[str, None] = {}  # ordered set
        for request in requests:
            names = [path.relative_to(root).as_posix() for path in self.candidates(request)]
            wanted.update(names)
            hit = any(name in present for name in names)
            matched += hit
            pid = request.prompt.id
            ids[pid] = ids.get(pid, False) or hit
            if not hit:
                unmatched.setdefault(pid)
        stray = [name for name in files if name not in wanted]
        return FolderMatch(root=str(root), requests=len(requests), matched=matched,
                           prompts=len(ids), prompts_matched=sum(ids.values()),
                           files=len(files), unmatched_ids=tuple(list(unmatched)[:examples]),
                           stray_files=tuple(stray[:examples]))

    # --------------------------------------------------------------- generate

    def candidates(self, request: GenRequest) -> list[Path]:
        """Every path tried for `request`, in lookup order."""
        root = self.root
        pid, seed = request.prompt.id, request.seed
        run_stem = _UNSAFE.sub("_", pid).strip("._") or "prompt"
        stems = [Path(pid) / str(seed), Path(f"{pid}_{seed}"), Path(f"{run_stem}_s{seed}"),
                 Path(pid)]
        paths = []
        for stem in stems:
            for ext in self._extensions:
                for variant in dict.fromkeys((ext, ext.upper())):
                    paths.append(root / stem.parent / f"{stem.name}.{variant}")
        return paths

    def _find(self, request: GenRequest) -> tuple[Path | None, list[Path], list[str]]:
        """(first regular file, every path tried, why candidates that exist were skipped).

        The containment check is lexical, not `resolve()`: a prompt id with "../" must
        not escape the folder, but symlinks the user placed inside it are followed (and
        a looping one is a reason to report, not an exception).
        """
        root = Path(os.path.normpath(self.root))
        tried = self.candidates(request)
        blocked: list[str] = []
        for path in tried:
            if not Path(os.path.normpath(path)).is_relative_to(root):
                continue
            try:
                info = os.stat(path)
            except OSError as exc:
                if exc.errno not in _ABSENT:
                    blocked.append(f"{path}: {exc.strerror or exc}")
                elif os.path.islink(path):
                    blocked.append(f"{path} is a symlink to a missing file")
                continue
            if stat.S_ISREG(info.st_mode):
                return path, tried, blocked
            what = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            blocked.append(f"{path} is {what}")
        return None, tried, blocked

    def _verify(self, data: bytes) -> tuple[str, int, int]:
        """(format, width, height) of encoded image bytes.

        Raises:
            _TooLarge: the header claims more than `max_pixels` pixels (nothing decoded).
            Image.DecompressionBombError: over Pillow's own bomb limit.
            Exception: anything else Pillow raises for bad data.
        """
        limit = int(self.max_pixels)
        with warnings.catch_warnings():
            # our own limit decides; Pillow's warning band would only add noise
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                if im.width * im.height > limit:
                    raise _TooLarge(f"{im.width}x{im.height}")
                im.verify()  # structure and checksums
            with Image.open(io.BytesIO(data)) as im:
                im.load()  # full decode: catches truncated pixel data verify() misses
                return str(im.format), im.width, im.height

    def _failed(self, start: float, kind: str, message: str,
                retryable: bool = False) -> GenOutput:
        return GenOutput(image=None, latency_s=time.perf_counter() - start,
                         failure=Failure(kind, _one_line(f"model '{self.name}': {message}"),
                                         retryable=retryable))

    def _missing(self, start: float, request: GenRequest, blocked: list[str]) -> GenOutput:
        pid, seed = request.prompt.id, request.seed
        if blocked:
            return self._failed(start, "unreadable_file",
                                f"no readable image for prompt '{pid}' seed {seed}: "
                                f"{'; '.join(blocked[:3])}; replace it with an image file",
                                retryable=True)
        exts = ",".join(self._extensions)
        shown = (f"{pid}/{seed}.{{{exts}}}, {pid}_{seed}.{{{exts}}}, "
                 f"{pid}_s{seed}.{{{exts}}}, {pid}.{{{exts}}}")
        return self._failed(start, "missing_file",
                            f"no image for prompt '{pid}' seed {seed} in {self.root} "
                            f"(tried {shown}, extensions also upper-case)")

    def _decode_failure(self, start: float, path: Path, data: bytes,
                        exc: Exception) -> GenOutput:
        if isinstance(exc, _TooLarge):
            return self._failed(start, "image_too_large",
                                f"{path} is {exc} pixels, over the limit of "
                                f"{self.max_pixels:,} (max_pixels); downscale it")
        if isinstance(exc, Image.DecompressionBombError):
            return self._failed(start, "image_too_large",
                                f"{path} is refused as a decompression bomb ({exc})")
        if not data:
            reason = "an empty file (0 bytes)"
        elif isinstance(exc, UnidentifiedImageError):
            reason = "not in an image format Pillow recognises"
        else:
            reason = f"not a readable image ({type(exc).__name__}: {exc})"
        return self._failed(start, "corrupt_image", f"{path} is {reason}")

    def _one(self, request: GenRequest) -> GenOutput:
        start = time.perf_counter()
        path, _, blocked = self._find(request)
        if path is None:
            return self._missing(start, request, blocked)
        try:
            data = path.read_bytes()
        except OSError as exc:
            return self._failed(start, "unreadable_file",
                                f"cannot read {path}: {exc.strerror or exc}", retryable=True)
        try:
            fmt, width, height = self._verify(data)
        except Exception as exc:  # PIL raises many types for bad data
            return self._decode_failure(start, path, data, exc)
        return GenOutput(
            image=data, latency_s=time.perf_counter() - start, cost_usd=0.0,
            meta={"path": str(path), "format": fmt, "width": width, "height": height},
        )

    def generate(self, requests: Sequence[GenRequest]) -> list[GenOutput]:
        outputs = []
        for request in requests:
            start = time.perf_counter()
            try:
                outputs.append(self._one(request))
            except Exception as exc:  # a case not foreseen above still fails one request
                outputs.append(self._failed(
                    start, "unreadable_file",
                    f"prompt '{request.prompt.id}' seed {request.seed}: "
                    f"{type(exc).__name__}: {exc}", retryable=True))
        return outputs
