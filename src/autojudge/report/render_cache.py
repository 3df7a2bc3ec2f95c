"""The report's charts and thumbnails, made once per input and kept in the store.

A warm re-run has nothing new to draw: its boards, matrices and images are those of the
run before. Each chart is keyed by its name, everything it is drawn from and the drawing
code (`figures.py`'s bytes and matplotlib's version), each thumbnail by the image's sha256
and its size, and the bytes go to the store's `derived` table (`Store.get_payloads`), so
a re-run, a rebuilt report (`python -m autojudge.report`) or another run over the same
images reuses them. Without a store (a run folder whose store is gone, or none was given)
everything is drawn as before. A damaged or unwritable store only costs the drawing: the
cache is an optimisation, never a reason for a report to fail.
"""
from __future__ import annotations

import hashlib
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

from autojudge.errors import AutojudgeError
from autojudge.types import stable_hash

log = logging.getLogger(__name__)
TABLE = "derived"


@lru_cache(maxsize=1)
def drawing_version() -> str:
    """What a chart's pixels depend on besides its inputs: the drawing code and the
    matplotlib release (read from its metadata: importing matplotlib costs seconds)."""
    from importlib.metadata import PackageNotFoundError, version

    from autojudge.report import figures

    try:
        mpl = version("matplotlib")
    except PackageNotFoundError:
        mpl = "none"
    return hashlib.sha256(Path(figures.__file__).read_bytes() + mpl.encode()).hexdigest()


class RenderCache:
    """Bytes by key in a store's `derived` table; a no-op without a store."""

    def __init__(self, store: Any = None):
        self.store = store
        self.hits = self.misses = 0

    @classmethod
    def open(cls, root: str | Path | None) -> "RenderCache":
        """The cache of the store at `root` when one is there (never created here)."""
        from autojudge.store.index import INDEX_NAME, Store

        if not root or not (Path(root).expanduser() / INDEX_NAME).is_file():
            return cls()
        try:
            return cls(Store(root))
        except AutojudgeError as exc:
            log.info("report renders are not cached: %s", exc)
            return cls()

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None

    def __enter__(self) -> "RenderCache":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        if self.store is None or not keys:
            return {}
        try:
            found = self.store.get_payloads(TABLE, keys)
        except AutojudgeError as exc:
            self._give_up(exc)
            return {}
        return {k: bytes(v) for k, v in found.items()}

    def put_many(self, payloads: dict[str, bytes]) -> None:
        if self.store is None or not payloads:
            return
        try:
            self.store.put_payloads(TABLE, payloads)
        except AutojudgeError as exc:
            self._give_up(exc)

    def _give_up(self, exc: Exception) -> None:
        log.info("report renders are not cached: %s", exc)
        self.close()

    def chart(self, name: str, inputs: Any, draw: Callable[[], bytes]) -> bytes:
        """The PNG of chart `name` drawn from `inputs` (JSON-able): stored, or drawn by
        `draw()` and stored."""
        key = stable_hash(["chart", name, drawing_version(), inputs])
        found = self.get_many([key]).get(key)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        png = draw()
        self.put_many({key: png})
        return png


def thumbnail_key(sha: str, px: int) -> str:
    return stable_hash(["thumbnail-jpeg", 1, sha, int(px)])
