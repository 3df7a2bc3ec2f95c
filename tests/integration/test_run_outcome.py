"""How a run ends, as its exit code says: 0 with an answer (failures reported), 3 when it
ran but nothing could be rated (outputs still written), 130 on Ctrl-C with the exact
command that resumes it in the run's log."""
from __future__ import annotations

import io
import json
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from helpers import REPO, rows_in, run_cli

SUITE = {"name": "signs", "prompts": [
    {"id": f"sign{i}", "text": f"a sign that reads \"{word}\"", "category": "text_rendering",
     "expected_text": word} for i, word in enumerate(["OPEN", "SALE", "EXIT"])]}


def _folder(tmp_path: Path, damaged: set[str]) -> Path:
    """A folder model's images: a real PNG per prompt, garbage bytes for those in `damaged`."""
    folder = tmp_path / "images"
    folder.mkdir()
    for prompt in SUITE["prompts"]:
        buffer = io.BytesIO()
        Image.new("RGB", (64, 32), "white").save(buffer, format="PNG")
        data = b"not an image" if prompt["id"] in damaged else buffer.getvalue()
        (folder / f"{prompt['id']}.png").write_bytes(data)
    return folder


def _run_folder_model(tmp_path: Path, damaged: set[str], sweep: bool = False
                      ) -> subprocess.CompletedProcess:
    """blank against a folder model; `sweep`: a multirun over two blank widths."""
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps(SUITE))
    where = ["-m", "model.blank.width=64,65", f"hydra.sweep.dir={tmp_path / 'sweep'}"] \
        if sweep else [f"hydra.run.dir={tmp_path / 'run'}"]
    return run_cli(["autojudge", *where, "model=[folder,blank]",
                    f"model.folder.path={_folder(tmp_path, damaged)}",
                    f"suite.path={suite}", "suite.name=signs", "logger=none", "progress=false",
                    "ratings.bootstrap_rounds=50", f"store.root={tmp_path / 'store'}"])


def test_every_image_failed_is_no_answer_exit_3(tmp_path: Path) -> None:
    proc = _run_folder_model(tmp_path, damaged={"sign0", "sign1", "sign2"})
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ran, but no answer:"), proc.stderr
    assert "folder: all 3 images failed (corrupt_image" in lines[0]
    board = json.loads((tmp_path / "run" / "leaderboard.json").read_text())["boards"][0]
    assert board["n_rated"] == 0, "the outputs are written all the same"
    assert "no answer" in (tmp_path / "run" / "__main__.log").read_text()


def test_some_images_failed_is_an_answer_exit_0(tmp_path: Path) -> None:
    proc = _run_folder_model(tmp_path, damaged={"sign1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "no answer" not in proc.stderr
    assert "images: 6 generated, 0 from cache, 1 failed" in proc.stdout  # reported
    document = json.loads((tmp_path / "run" / "leaderboard.json").read_text())
    assert any(board["n_rated"] for board in document["boards"])


def test_a_sweep_where_no_job_answered_exits_3(tmp_path: Path) -> None:
    proc = _run_folder_model(tmp_path, {"sign0", "sign1", "sign2"}, sweep=True)
    assert proc.returncode == 3, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert [line.split(":")[0] for line in lines] == ["warning", "warning", "error"], lines
    assert "none of the 2 jobs" in lines[-1]
    for job in ("0", "1"):  # every job ran to the end and wrote its outputs
        assert (tmp_path / "sweep" / job / "leaderboard.json").is_file()


def _start_as_in_a_terminal(command: list[str]) -> subprocess.Popen:
    """Start `command` with SIGINT at its default, as a terminal's foreground job gets it.
    A child inherits an *ignored* SIGINT (a shell without job control ignores it for
    background jobs, so `pytest ... &` passes it on); Python then installs no
    KeyboardInterrupt handler and the Ctrl-C a test sends does nothing. A handled signal,
    unlike an ignored one, is reset to its default by exec."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)


def _judging_started(store: Path, log: Path) -> bool:
    """A score is stored. The index is read only once the run's log says the images are
    made: by then the run has opened it (a reader racing its first open, which switches
    it to WAL, could make the run fail with "database is locked")."""
    made = log.is_file() and "generate noise:" in log.read_text(errors="replace")
    return made and rows_in(store, "scores") >= 1


def test_ctrl_c_says_in_the_log_how_to_resume(tmp_path: Path) -> None:
    store, run_dir = tmp_path / "store", tmp_path / "run"
    args = ["suite.tags=[text_rendering]", "suite.limit=28", "logger=none", "progress=false",
            f"store.root={store}", f"hydra.run.dir={run_dir}"]
    proc = _start_as_in_a_terminal([sys.executable, "-m", "autojudge", *args])
    deadline = time.time() + 300  # a guard against a hang, not a timing assertion
    while not _judging_started(store, run_dir / "__main__.log") and proc.poll() is None \
            and time.time() < deadline:
        time.sleep(0.01)
    interrupted = proc.poll() is None
    if interrupted:
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert interrupted, f"the run finished before it could be interrupted: {err[-2000:]}"
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    hint = [line for line in (run_dir / "__main__.log").read_text().splitlines()
            if "interrupted" in line]
    assert len(hint) == 1, (run_dir / "__main__.log").read_text()
    command = hint[0].split("resume with: ", 1)[1]
    assert shlex.split(command) == ["python", "-m", "autojudge", *args]
    assert not (run_dir / "leaderboard.json").exists()
