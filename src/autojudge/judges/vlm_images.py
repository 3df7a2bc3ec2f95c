"""Encoded images for VLM requests, each image encoded once.

A run of m models shows every image in m - 1 pairs, twice each with swap-debiasing, and
PNG encoding is the judge's main CPU cost (~60 ms for a 512 px image, more than all the
HTTP work of a request): `EncodedImages` keeps the data URLs of recent images, keyed by
image content hash, so each is encoded once. Threads asking for an image that another
thread is encoding wait for that encoding instead of repeating it. The cache is bounded
by the bytes it holds (least recently used first out). `ahead` starts encoding a call's
images in the background, so encoding overlaps the wait for the endpoint's answers instead
of delaying each request by it.

Example:
    >>> from PIL import Image
    >>> cache = EncodedImages(lambda im: f"data:{im.size}", max_bytes=1000)
    >>> cache.get(Image.new("RGB", (4, 4)), "sha-1")
    'data:(4, 4)'
    >>> cache.encoded
    1
    >>> cache.get(Image.new("RGB", (4, 4)), "sha-1"), cache.encoded
    ('data:(4, 4)', 1)
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Hashable, Sequence

__all__ = ["EncodedImages"]

#: default bound of the cached data URLs: ~100 images of 768 px as PNG
MAX_BYTES = 128 * 1024 * 1024


class EncodedImages:
    """A thread-safe, byte-bounded LRU of `encode(image)` results keyed by image hash.

    Args:
        encode: image -> data URL (a str).
        max_bytes: the most characters of data URL kept; an entry larger than it is
            returned but not kept.
    """

    def __init__(self, encode: Callable[[Any], str], max_bytes: int = MAX_BYTES):
        self._encode = encode
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, Future] = OrderedDict()
        self._bytes = 0
        #: images encoded (a hit costs nothing)
        self.encoded = 0

    def get(self, image: Any, sha: str | None) -> str:
        """`image` as a data URL: from the cache when `sha` was seen, else encoded here
        (or by the thread already encoding it). No `sha`: encoded, not kept."""
        if not sha:
            return self._encode(image)
        key = (sha, getattr(image, "size", None))  # a hash of the pixel bytes alone
        with self._lock:
            future = self._entries.get(key)
            owner = future is None
            if owner:
                future = self._entries[key] = Future()
                self.encoded += 1
            else:
                self._entries.move_to_end(key)
        if not owner:
            return str(future.result())
        try:
            url = self._encode(image)
        except BaseException as exc:
            with self._lock:  # a failed encoding is not kept: the next asker tries again
                self._entries.pop(key, None)
            future.set_exception(exc)
            raise
        future.set_result(url)
        self._keep(len(url))
        return url

    def ahead(self, images: Sequence[tuple[Any, str]],
              workers: int = min(4, os.cpu_count() or 1)) -> ThreadPoolExecutor:
        """Start encoding `images` ((image, sha), in the order they will be asked for)
        on `workers` background threads, each image once. A request that needs an
        image not started yet encodes it itself. The caller shuts the pool down."""
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vlm-encode")
        seen: set[tuple[str, Any]] = set()
        for image, sha in images:
            key = (sha, getattr(image, "size", None))
            if sha and key not in seen:
                seen.add(key)
                pool.submit(self.get, image, sha)
        return pool

    def _keep(self, size: int) -> None:
        with self._lock:
            self._bytes += size
            # evict the oldest finished entries (never one still being encoded)
            for key in list(self._entries):
                if self._bytes <= self._max_bytes:
                    break
                old = self._entries[key]
                if old.done() and old.exception() is None:
                    del self._entries[key]
                    self._bytes -= len(old.result())
