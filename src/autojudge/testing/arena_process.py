"""Start `python -m autojudge.arena RUN_DIR --port 0 ...` as a user would and wait until it
listens (shared by the arena's tests, its load benchmark and the README screenshots)."""
from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping, Sequence


def start_arena(run_dir: Path, args: Sequence[str] = (), env: Mapping[str, str] | None = None,
                timeout_s: float = 120.0) -> tuple[subprocess.Popen, str]:
    """The server process and its base URL (`http://127.0.0.1:PORT`), once it prints it.

    Raises:
        RuntimeError: the server exited or did not listen within `timeout_s` (its stderr
            is in the message).
    """
    proc = subprocess.Popen([sys.executable, "-m", "autojudge.arena", str(run_dir),
                             "--port", "0", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if selector.select(timeout=1.0):
            line = proc.stdout.readline()
            if line.startswith("arena: http://"):
                return proc, line.split()[1].rstrip("/")
            if not line:
                break
    proc.kill()
    raise RuntimeError(f"the arena did not start: {proc.stderr.read()}")
