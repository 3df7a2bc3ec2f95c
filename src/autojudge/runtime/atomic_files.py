"""Files written so that a reader (or a run killed mid-write) sees the old file or the
whole new one, never half of it, with the mode any new file gets; and the file extension
of encoded image bytes.

Example:
    >>> atomic_write_text(Path("runs/x/leaderboard.json"), "{}")     # doctest: +SKIP
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


_IMAGE_MAGIC = ((b"\x89PNG", "png"), (b"\xff\xd8", "jpg"), (b"RIFF", "webp"), (b"GIF8", "gif"))


def image_extension(data: bytes) -> str:
    """File extension for encoded image bytes, from their magic number."""
    for magic, ext in _IMAGE_MAGIC:
        if data.startswith(magic):
            return ext
    return "bin"


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so readers see either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp makes the file 0600; outputs get the mode any new file gets (umask).
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
