"""Where a store's images live: a local folder, or shared storage behind an fsspec URL.

The SQLite index always stays with the driver (`store.root`); the blobs may live
elsewhere so that workers on other machines read and write them (`store.blobs=`):

- a path (`/mnt/shared/autojudge-blobs`, or `file:///...`): plain files, written to a
  temporary name and renamed into place (readers never see half an image);
- an fsspec URL (`s3://bucket/prefix`, `gs://bucket/prefix`, `memory://x` in tests): one
  object per blob; an object store's PUT is atomic, so the same holds.

A backend only moves bytes; trusting them (hashing, remembering signatures) is the
`Store`'s job. A backend is rebuilt from its `location` string, so a Ray worker gets one
from a plain string (no open connection is pickled).

Example:
    >>> blobs = open_blobs("memory://doc-example", root=None)
    >>> blobs.write("ab" * 32, "png", b"\\x89PNG...") is not None
    True
    >>> blobs.read("ab" * 32, "png")[0]
    b'\\x89PNG...'
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from autojudge.errors import AutojudgeError
from autojudge.runtime.atomic_files import atomic_write_bytes

#: (size, something that changes when the bytes are replaced): what a Store remembers
#: about a blob it hashed, so it is hashed again only when it changed.
Signature = tuple[int, Any]


def is_url(location: str) -> bool:
    """Whether `location` names an fsspec filesystem (`scheme://...`), not a path."""
    return "://" in location


class LocalBlobs:
    """Blobs as files under one folder: `<folder>/<sha[:2]>/<sha>.<ext>`."""

    local = True

    def __init__(self, folder: str | Path):
        self.folder = Path(folder).expanduser()
        self.location = str(self.folder)

    def path(self, sha: str, ext: str) -> Path:
        return self.folder / sha[:2] / f"{sha}.{ext}"

    def where(self, sha: str, ext: str) -> str:
        return str(self.path(sha, ext))

    def write(self, sha: str, ext: str, data: bytes) -> Signature:
        path = self.path(sha, ext)
        atomic_write_bytes(path, data)
        st = path.stat()
        return st.st_size, st.st_mtime_ns

    def read(self, sha: str, ext: str) -> tuple[bytes, Signature] | None:
        try:
            with open(self.path(sha, ext), "rb") as handle:
                st = os.fstat(handle.fileno())  # of the bytes read, not of a later rename
                return handle.read(), (st.st_size, st.st_mtime_ns)
        except OSError:
            return None

    def signature(self, sha: str, ext: str) -> Signature | None:
        try:
            st = self.path(sha, ext).stat()
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns


class FsspecBlobs:
    """Blobs as objects under an fsspec URL: `<url>/<sha[:2]>/<sha>.<ext>`."""

    local = False

    def __init__(self, url: str):
        try:
            import fsspec
        except ImportError:
            raise AutojudgeError(f"store.blobs={url} needs fsspec: pip install fsspec "
                                 f"(plus s3fs or gcsfs for s3:// or gs://)") from None
        try:
            self._fs, self._base = fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as exc:
            raise AutojudgeError(f"store.blobs={url}: {' '.join(str(exc).split())[:300]}; "
                                 f"install the filesystem's package (s3fs for s3://, "
                                 f"gcsfs for gs://) or give a path") from None
        except Exception as exc:  # backends that connect when opened (ftp, sftp, ...)
            raise AutojudgeError(f"store.blobs={url}: cannot open it ({type(exc).__name__}: "
                                 f"{' '.join(str(exc).split())[:200]}); check the URL, the "
                                 f"network and the credentials") from None
        self.location = url.rstrip("/")

    def _key(self, sha: str, ext: str) -> str:
        return f"{self._base.rstrip('/')}/{sha[:2]}/{sha}.{ext}"

    def where(self, sha: str, ext: str) -> str:
        return f"{self.location}/{sha[:2]}/{sha}.{ext}"

    def write(self, sha: str, ext: str, data: bytes) -> Signature:
        key = self._key(sha, ext)
        self._fs.pipe_file(key, data)
        return _signature(self._fs.info(key))

    def read(self, sha: str, ext: str) -> tuple[bytes, Signature] | None:
        key = self._key(sha, ext)
        try:
            info = self._fs.info(key)
            return self._fs.cat_file(key), _signature(info)
        except (OSError, FileNotFoundError):
            return None

    def signature(self, sha: str, ext: str) -> Signature | None:
        try:
            return _signature(self._fs.info(self._key(sha, ext)))
        except (OSError, FileNotFoundError):
            return None


def _signature(info: dict[str, Any]) -> Signature:
    """Size plus the first version marker the filesystem reports (S3's ETag, GCS's
    generation, a modification time...), so a replaced object is hashed again."""
    for key in ("ETag", "etag", "generation", "mtime", "LastModified", "updated", "created"):
        if info.get(key) is not None:
            return int(info.get("size") or 0), str(info[key])
    return int(info.get("size") or 0), None


def open_blobs(location: str | None, root: Path | None) -> LocalBlobs | FsspecBlobs:
    """The backend for `location` (None: `<root>/blobs`; `file://` URLs are paths)."""
    if not location:
        if root is None:
            raise ValueError("open_blobs: give a location or a store root")
        return LocalBlobs(Path(root) / "blobs")
    if location.startswith("file://"):
        return LocalBlobs(location[len("file://"):])
    if is_url(location):
        return FsspecBlobs(location)
    return LocalBlobs(location)


def normalized_location(location: str) -> str:
    """What the index records for `location`: an absolute path, or the URL as given."""
    if location.startswith("file://"):
        location = location[len("file://"):]
    if is_url(location):
        return location.rstrip("/")
    return str(Path(location).expanduser().absolute())
