"""Helpers shared by tests: run the CLI as a user would, and check a user-facing error."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_cli(args: list[str], cwd: Path | None = None, env: dict | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m <args>` as a user would; returns the finished process."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd or REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def rows_in(store: Path, table: str) -> int:
    """Rows of `table` in a store's index (0 while it does not exist yet): tests watch a
    run's progress from outside, as a user's second shell would."""
    try:
        with sqlite3.connect(store / "index.sqlite", timeout=1) as db:
            return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    except sqlite3.Error:
        return 0


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """A user error: non-zero exit, one `error:` line on stderr, never a traceback."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


#: Debian's chromium (Playwright's own browser download fails on these machines)
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def needs_chromium() -> list:
    """pytest marks for a browser test: skipped without chromium on a developer's machine,
    but failed where AUTOJUDGE_REQUIRE_CHROMIUM=1 (CI installs it, so a skip there would
    hide an unchecked acceptance test)."""
    import pytest

    if not CHROMIUM.exists() and os.environ.get("AUTOJUDGE_REQUIRE_CHROMIUM") == "1":
        raise RuntimeError(f"{CHROMIUM} is missing but AUTOJUDGE_REQUIRE_CHROMIUM=1: "
                           "apt-get install chromium")
    return [pytest.mark.slow,
            pytest.mark.skipif(not CHROMIUM.exists(),
                               reason=f"needs Debian's chromium at {CHROMIUM} (apt-get install "
                                      "chromium; .ci/run installs it)")]


def record_connections(monkeypatch) -> list:
    """Make every outgoing socket connection of this process fail and record its address:
    a check that must answer from settings and local files alone (no hub lookup, so no
    retry loop) asserts the list stays empty, instead of timing itself."""
    import socket

    attempts: list = []

    def refuse(self, address, *args, **kwargs):
        attempts.append(address)
        raise OSError("network use recorded by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


#: real public suites (PartiPrompts.tsv, geneval_evaluation_metadata.jsonl) kept next to
#: the checkout rather than copied into it: optional, so tests that read them skip without
SHARED_DATA = REPO.parent / "shared" / "data"
PARTI = SHARED_DATA / "PartiPrompts.tsv"
GENEVAL = SHARED_DATA / "geneval_evaluation_metadata.jsonl"


def needs_shared_data(*names: str):
    """The one skip mark for tests that read ../shared/data/<name>: skipped, not failed,
    where a checkout has no copy (a decorator, a `pytestmark`, or `pytest.param(...,
    marks=needs_shared_data(...))` for one case of a parametrized test)."""
    import pytest

    missing = [name for name in names if not (SHARED_DATA / name).is_file()]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)} in "
                                                    f"{SHARED_DATA} (optional data)")


class NeverGenerates:
    """A generator that must never be asked: a test that expects a refusal before any
    image registers it (`never_generates()`) as one of the run's models."""

    kind = "never_generates_test"
    cacheable = True
    batch_size = 4
    calls = 0

    def __init__(self, name: str = "never"):
        self.name = name

    def fingerprint(self):
        return {"kind": self.kind, "version": 1}

    def check(self) -> None:
        pass

    def generate(self, requests):
        type(self).calls += 1
        raise AssertionError("generated before pre-flight refused the run")


def never_generates() -> type[NeverGenerates]:
    """`NeverGenerates`, registered as a generator kind (once per process), its call
    count reset."""
    from autojudge.sdk.registry import GENERATORS

    if NeverGenerates.kind not in GENERATORS.names():
        GENERATORS.register(NeverGenerates.kind)(NeverGenerates)
    NeverGenerates.calls = 0
    return NeverGenerates
