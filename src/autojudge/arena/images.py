"""Image bytes for the vote page: checked against their hash, stripped of metadata, cached.

An image file may carry text that names its maker (PNG tEXt/iTXt chunks written by a
pipeline, JPEG EXIF/XMP/comments); the arena serves the pixels only, so such text cannot
tell a voter which model made the image before the vote.

Example:
    >>> cache = ImageCache(max_bytes=1 << 20)
    >>> cache.get(ref)                                         # doctest: +SKIP
    (b'\\x89PNG...', 'image/png')
"""
from __future__ import annotations

import hashlib
import struct
import threading
from collections import OrderedDict

from autojudge.arena.runs import ImageRef

# PNG chunks that carry only pixels and how to show them; everything else is dropped.
_PNG_KEEP = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB",
             b"iCCP", b"sBIT", b"pHYs", b"bKGD", b"acTL", b"fcTL", b"fdAT"}
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_TYPES = ((b"\x89PNG", "image/png"), (b"\xff\xd8", "image/jpeg"), (b"GIF8", "image/gif"),
          (b"RIFF", "image/webp"))


class ImageUnavailable(Exception):
    """The file is missing or no longer matches its hash."""


def media_type(data: bytes) -> str:
    for magic, kind in _TYPES:
        if data.startswith(magic):
            return kind
    return "application/octet-stream"


def strip_png(data: bytes) -> bytes:
    """The PNG with only the chunks in `_PNG_KEEP` (the bytes unchanged if malformed)."""
    if not data.startswith(_PNG_MAGIC):
        return data
    out, pos = [_PNG_MAGIC], len(_PNG_MAGIC)
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        end = pos + 12 + length
        if end > len(data):
            return data
        if kind in _PNG_KEEP:
            out.append(data[pos:end])
        pos = end
        if kind == b"IEND":
            break
    return b"".join(out)


def strip_jpeg(data: bytes) -> bytes:
    """The JPEG without APP1..APP15 (EXIF, XMP, ...) and comment segments; JFIF (APP0)
    and everything from the scan on are kept. Malformed input comes back unchanged."""
    if not data.startswith(b"\xff\xd8"):
        return data
    out, pos = [b"\xff\xd8"], 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return data
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan: the rest is image data
            out.append(data[pos:])
            return b"".join(out)
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        end = pos + 2 + length
        if end > len(data):
            return data
        if not (0xE1 <= marker <= 0xEF or marker == 0xFE):
            out.append(data[pos:end])
        pos = end
    return data


def clean(data: bytes) -> bytes:
    return strip_jpeg(strip_png(data))


class ImageCache:
    """Reads, checks and cleans images once; keeps up to `max_bytes` of them in memory."""

    def __init__(self, max_bytes: int = 256 << 20):
        self.max_bytes = max_bytes
        self._size = 0
        self._items: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, ref: ImageRef) -> tuple[bytes, str]:
        """(cleaned bytes, media type) of `ref`.

        Raises:
            ImageUnavailable: missing file or a hash mismatch (never served).
        """
        with self._lock:
            hit = self._items.get(ref.sha)
            if hit is not None:
                self._items.move_to_end(ref.sha)
                return hit
        try:
            data = ref.path.read_bytes()
        except OSError:
            raise ImageUnavailable(f"image {ref.path} is missing") from None
        if hashlib.sha256(data).hexdigest() != ref.sha:
            raise ImageUnavailable(f"image {ref.path} does not match its hash")
        item = (clean(data), media_type(data))
        with self._lock:
            if ref.sha not in self._items:
                self._items[ref.sha] = item
                self._size += len(item[0])
            while self._size > self.max_bytes and len(self._items) > 1:
                _, (old, _) = self._items.popitem(last=False)
                self._size -= len(old)
        return item
