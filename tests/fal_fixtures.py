"""A FakeFal server (TLS, self-signed) wired into fal-client through its own settings:
FAL_QUEUE_RUN_HOST, SSL_CERT_FILE and FAL_KEY."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

KEY = "key-id:SECRET-XYZ"


@contextmanager
def fake_fal(folder: Path, mp: pytest.MonkeyPatch, **kwargs) -> Iterator["object"]:
    from autojudge.testing.fake_fal import FakeFal

    with FakeFal(folder, expected_key=KEY, **kwargs) as server:
        mp.setenv("FAL_QUEUE_RUN_HOST", server.host)
        mp.setenv("FAL_RUN_HOST", server.host)
        mp.setenv("SSL_CERT_FILE", str(server.cert_path))
        mp.setenv("FAL_KEY", KEY)
        yield server
