"""What a person sees in a real terminal: the default experiment run in a pseudo-terminal
(130 columns), its byte stream rendered by a terminal emulator (pyte). Log lines never
land inside a progress bar, each stage's finished bar is drawn once, and a pre-flight
fact is said once."""
from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from helpers import REPO

pyte = pytest.importorskip("pyte", reason="pip install 'autojudge[test]' (pyte renders the "
                                          "terminal)")

COLUMNS = 130
STAGES = ("generate typeset", "generate blank", "generate noise", "judge ocr")
LOG_LINE = re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\]|\b(INFO|WARNING)\b")
TABLE = set("┏┳┓┡╇┩┃│└┴┘")


def run_in_terminal(args: list[str]) -> tuple[int, bytes]:
    """`python -m autojudge ARGS` with a pseudo-terminal as its stdin/stdout/stderr."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, COLUMNS, 0, 0))
    env = {k: v for k, v in os.environ.items()
           if k not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE",
                        "TTY_INTERACTIVE")}
    env.update(TERM="xterm-256color", PYTHONIOENCODING="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "autojudge", *args], cwd=REPO, env=env,
                            stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks, deadline = [], time.time() + 600  # a guard against a hang, not a threshold
    try:
        while time.time() < deadline:
            if not select.select([master], [], [], 1.0)[0]:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child's side is closed, it has exited
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        code = proc.wait(timeout=60)
    return code, b"".join(chunks)


def final_screen(stream: bytes) -> list[str]:
    """The lines a terminal shows once the run ended (scrollback included: the screen is
    as tall as the output, and rich moves its cursor relative to where it drew)."""
    screen = pyte.Screen(COLUMNS, max(100, stream.count(b"\n") + 50))
    pyte.ByteStream(screen).feed(stream)
    return [line.rstrip() for line in screen.display if line.strip()]


@pytest.fixture(scope="module")
def screen(tmp_path_factory) -> list[str]:
    root = tmp_path_factory.mktemp("terminal")
    code, stream = run_in_terminal(["suite.limit=2", "logger=none",
                                    "ratings.bootstrap_rounds=50", f"store.root={root / 's'}",
                                    f"hydra.run.dir={root / 'run'}"])
    lines = final_screen(stream)
    assert code == 0, "\n".join(lines)
    return lines


def test_each_finished_bar_is_drawn_once(screen: list[str]) -> None:
    for stage in STAGES:
        bars = [line for line in screen if line.startswith(stage + " ")]
        assert len(bars) == 1, (stage, "\n".join(screen))
        assert bars[0].endswith(" done"), bars[0]


def test_no_log_line_shares_a_line_with_a_bar(screen: list[str]) -> None:
    bar_lines = [line for line in screen if "━━━━" in line and not TABLE & set(line)]
    assert len(bar_lines) == len(STAGES), "\n".join(screen)
    for line in bar_lines:
        assert line.startswith(STAGES), line  # not the tail of a wrapped log line
        assert not LOG_LINE.search(line), line


def test_a_pre_flight_fact_is_said_once(screen: list[str]) -> None:
    text = "\n".join(screen)
    assert text.count("keeping 2 of 94 prompts") == 1, text
    assert text.count("wrote ") == 1, text
