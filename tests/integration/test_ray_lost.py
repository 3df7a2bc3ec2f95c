"""executor=ray when Ray itself goes away mid-run (its raylet killed, a node lost, the
client connection dropped): one `error:` line that says so and that running the same
command again resumes, exit status 75 (not Ray's exit 1 with its own log lines only),
and the re-run takes the finished work from the store."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPO, rows_in

ray = pytest.importorskip("ray")

from autojudge.executors.ray import RayExecutor  # noqa: E402
from autojudge.executors.ray_lost import (EXIT_CLUSTER_LOST, ClusterLost,  # noqa: E402
                                          RayletWatch, lost_cluster)


def _executor(address: str | None = None) -> RayExecutor:
    return RayExecutor({"executor": {"kind": "ray", "address": address},
                        "model": {"m": {"kind": "typeset"}}, "judge": {}}, store=None)


def _failing(exc: BaseException):
    def imap(*args, **kwargs):
        yield 0, "first batch"
        raise exc
    return imap


@pytest.mark.parametrize("exc", [
    ray.exceptions.LocalRayletDiedError(),
    ray.exceptions.NodeDiedError("node 1a2b has been marked dead"),
    ray.exceptions.RaySystemError("Raylet is terminated"),
    ray.exceptions.ObjectLostError("00ff", "owner", "call site"),
], ids=lambda e: type(e).__name__)
def test_a_lost_cluster_is_one_line_saying_rerun_resumes(exc, monkeypatch) -> None:
    executor = _executor()
    monkeypatch.setattr(executor, "_imap", _failing(exc))
    results = executor.imap("model", "m", "generate", [])
    assert next(results) == (0, "first batch")  # what came back before stays delivered
    with pytest.raises(ClusterLost) as caught:
        next(results)
    text = str(caught.value)
    assert "\n" not in text and type(exc).__name__ in text
    assert "lost the Ray cluster" in text and "run the same command again to resume" in text
    assert caught.value.exit_code == EXIT_CLUSTER_LOST
    assert caught.value.__cause__ is None  # no Ray traceback chained to the line


def test_a_plugins_own_error_and_other_errors_are_not_called_a_lost_cluster() -> None:
    task_error = ray.exceptions.RayTaskError("generate", "Traceback ...", ValueError("bug"))
    assert lost_cluster(task_error) is None
    assert lost_cluster(ValueError("bad prompt")) is None
    # a ConnectionError is Ray's only through Ray Client; elsewhere it may be the store's
    assert lost_cluster(ConnectionError("s3 reset")) is None
    assert isinstance(lost_cluster(ConnectionError("Client is shutting down."),
                                   via_client=True), ClusterLost)


def test_ray_client_connection_lost_is_a_lost_cluster(monkeypatch) -> None:
    monkeypatch.setattr("autojudge.executors.ray.check_reachable", lambda address: None)
    executor = _executor("ray://head:10001")
    monkeypatch.setattr(executor, "_imap", _failing(ConnectionError("ray client "
                                                                    "connection timeout")))
    with pytest.raises(ClusterLost, match="ConnectionError: ray client connection timeout"):
        list(executor.imap("model", "m", "generate", []))


def test_cli_exits_75_with_the_one_line(tmp_path: Path) -> None:
    """The entry point prints a ClusterLost as one line and exits with its own status."""
    code = ("import sys, autojudge.experiment.pipeline as p\n"
            "from autojudge.executors.ray_lost import ClusterLost, message\n"
            "def run(cfg, run_dir):\n"
            "    raise ClusterLost(message('LocalRayletDiedError: the raylet died'))\n"
            "p.run = run\n"
            "from autojudge.__main__ import main\n"
            f"sys.argv = ['autojudge', 'logger=none', 'hydra.run.dir={tmp_path / 'run'}']\n"
            "main()\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == EXIT_CLUSTER_LOST, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == ["error: executor=ray: lost the Ray cluster mid-run (LocalRayletDiedError: "
                     "the raylet died); the work finished so far is in the store: run the "
                     "same command again to resume (only the missing work is redone)"]


def test_watch_reports_a_dead_raylet_and_not_a_stopped_one(monkeypatch) -> None:
    """The watch's decision, on a stand-in process: a raylet that dies while the
    executor is open is reported once; one stopped on purpose (close) is not."""
    import autojudge.executors.ray_lost as ray_lost

    for stop_first, expected in ((False, 1), (True, 0)):
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        monkeypatch.setattr(ray_lost, "raylet_probe",
                            lambda p=proc: (p.pid, lambda: p.poll() is None))
        told: list[str] = []
        watch = RayletWatch(poll_s=0.01, on_lost=told.append)
        assert watch.start()
        if stop_first:
            watch.stop()
        proc.kill()
        proc.wait()
        watch._thread.join(timeout=30)
        assert not watch._thread.is_alive()
        assert len(told) == expected
        if expected:
            assert f"raylet, pid {proc.pid}, died" in told[0]


def _raylet_of(pid: int) -> int | None:
    import psutil

    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return None
    return next((p.pid for p in kids if p.name() == "raylet"), None)


@pytest.mark.slow
def test_raylet_killed_mid_run_exits_75_and_the_rerun_resumes(tmp_path: Path) -> None:
    """A real local Ray, started by the run: SIGKILL its raylet while the OCR judge is
    running. Without the watch, Ray's core worker ends the driver with status 1 at its
    next object-store call, printing only Ray's lines."""
    pytest.importorskip("psutil")
    store = tmp_path / "store"
    args = [f"store.root={store}", "model=[typeset,blank]", "model.typeset.width=256",
            "model.typeset.height=256", "suite.tags=[text_rendering]", "suite.limit=8",
            "ratings.bootstrap_rounds=100", "progress=false", "logger=none"]
    proc = subprocess.Popen([sys.executable, "-m", "autojudge", *args, "executor=ray",
                             "executor.num_cpus=1", f"hydra.run.dir={tmp_path / 'run'}"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, killed = time.time() + 400, None
    while proc.poll() is None and time.time() < deadline and killed is None:
        raylet = _raylet_of(proc.pid) if rows_in(store, "scores") >= 1 else None
        if raylet is not None:
            os.kill(raylet, 9)
            killed = raylet
        time.sleep(0.01)
    _, err = proc.communicate(timeout=120)
    assert killed, f"the run finished before its raylet could be killed: {err[-2000:]}"
    assert proc.returncode == EXIT_CLUSTER_LOST, err[-3000:]
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert errors == [line for line in err.splitlines() if line.strip()][-1:]
    assert f"raylet, pid {killed}, died" in errors[0]
    assert "run the same command again to resume" in errors[0]
    scored = rows_in(store, "scores")
    assert scored >= 1

    # the re-run (here on the local executor: the store is the same) redoes only the rest
    from autojudge.experiment.pipeline import run
    from autojudge.experiment.schema import compose

    doc = run(compose([*args, "executor=local"]), tmp_path / "again")
    assert doc["run"]["cache"]["generation"]["computed"] == 0
    assert doc["run"]["cache"]["judges"]["ocr"]["cached"] == scored
    assert rows_in(store, "scores") == 16  # 8 prompts x 2 models, each once
