"""executor=ray on a small local Ray (2 CPUs, shared by every test here): the same
leaderboard as executor=local, shared blob storage, a worker killed mid-batch loses and
duplicates nothing, and a driver killed and restarted redoes only the missing work.

Models: the three baselines plus a tiny random diffusers pipeline (tests/tiny_diffusers);
judge: real offline OCR. One local reference run is compared with every Ray run.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import REPO, rows_in

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

N_REQUESTS = 8  # 4 prompts x 2 seeds, per model
MODELS = ("typeset", "blank", "tiny")  # tiny: generated last (its label is appended)


@pytest.fixture(scope="module")
def cluster():
    """One local Ray for the module (start-up costs seconds); its GCS address lets a
    driver in a subprocess join it."""
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR",
                 object_store_memory=200 * 1024 * 1024)
    yield ray.get_runtime_context().gcs_address
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory) -> Path:
    from tiny_diffusers import build_tiny_sd

    return build_tiny_sd(tmp_path_factory.mktemp("tiny_sd") / "sd")


def overrides(tiny_sd: Path, store: Path, *extra: str) -> list[str]:
    return [f"store.root={store}", "model=[typeset,blank]", "suite.tags=[text_rendering]",
            "suite.limit=4", "suite.seeds=[0,1]", "ratings.bootstrap_rounds=100",
            "logger=none", "progress=false", "model.typeset={width: 128, height: 128, "
            "max_font_size: 40}", "model.blank={width: 128, height: 128}",
            f"+model.tiny={{kind: diffusers, model: '{tiny_sd}', num_inference_steps: 10, "
            f"width: 64, height: 64, batch_size: 2, device: cpu}}", *extra]


def run_here(args: list[str], run_dir: Path) -> dict:
    from autojudge.experiment.pipeline import run
    from autojudge.experiment.schema import compose

    return run(compose(args), run_dir)


def comparable(run_dir: Path) -> tuple[list[dict], list[dict]]:
    """Battle rows without timestamps (they say when work happened) and the boards."""
    battles = [json.loads(line) for line in (run_dir / "battles.jsonl").read_text().splitlines()]
    for row in battles:
        row.pop("tstamp")
    return battles, json.loads((run_dir / "leaderboard.json").read_text())["boards"]


def images(run_dir: Path) -> dict[tuple, str]:
    rows = [json.loads(line) for line in
            (run_dir / "generations.jsonl").read_text().splitlines()]
    return {(r["model"], r["prompt_id"], r["seed"]): r["image_sha256"] for r in rows}


def all_stored(store: Path, reference: Path) -> None:
    """Every image and score of the local run, once each (keys are unique: a duplicate
    would be a lost row, or a second one)."""
    ref_store = reference.parent / "store"
    assert rows_in(store, "generations") == len(MODELS) * N_REQUESTS
    assert rows_in(store, "scores") == rows_in(ref_store, "scores") > 0


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_sd) -> Path:
    """The local run. On one torch thread, as Ray runs a 1-CPU worker (OMP_NUM_THREADS=1):
    float sums in another order change the last bits of some diffusion images, so only
    then are the images bit-identical, not only the leaderboards."""
    import torch

    root = tmp_path_factory.mktemp("local")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_here(overrides(tiny_sd, root / "store", "executor=local"), root / "run")
    finally:
        torch.set_num_threads(threads)
    return root / "run"


def test_ray_leaderboard_matches_local(cluster, reference, tiny_sd, tmp_path) -> None:
    store = tmp_path / "store"
    doc = run_here(overrides(tiny_sd, store, "executor=ray"), tmp_path / "run")
    assert comparable(tmp_path / "run") == comparable(reference)
    assert images(tmp_path / "run") == images(reference)
    assert doc["run"]["cache"]["generation"] == {"cached": 0, "computed": 24, "failed": 0}
    all_stored(store, reference)
    # a second run sends nothing out: every image and score comes from the store
    again = run_here(overrides(tiny_sd, store, "executor=ray"), tmp_path / "again")
    assert again["run"]["cache"]["generation"]["computed"] == 0
    assert again["run"]["cache"]["judges"]["ocr"]["computed"] == 0
    assert comparable(tmp_path / "again") == comparable(reference)


def kill_one_worker(store: Path, table: str, threshold: int, done: threading.Event,
                    killed: dict) -> None:
    """Once `threshold` rows of `table` are committed (so the stage to hit is running),
    SIGKILL one worker of the run (its pid from the actor itself)."""
    deadline = time.time() + 300
    while not done.is_set() and time.time() < deadline:
        names = [n for n in ray.util.list_named_actors() if n.startswith("autojudge:")]
        if names and rows_in(store, table) >= threshold:
            pid = ray.get(ray.get_actor(sorted(names)[0]).pid.remote(), timeout=30)
            os.kill(pid, signal.SIGKILL)
            killed.update(pid=pid, while_running=not done.is_set())
            return
        time.sleep(0.01)


@pytest.mark.parametrize("table,threshold,shared", [
    ("generations", 2 * N_REQUESTS + 1, False), ("scores", 1, True)],
    ids=["generation-worker", "judge-worker-shared-blobs"])
def test_worker_killed_mid_run_loses_nothing(cluster, reference, tiny_sd, tmp_path, table,
                                             threshold, shared) -> None:
    """SIGKILL one worker mid-run: Ray restarts it and sends its batches again; the run
    ends exactly as the local one, each image and score stored once. The judge case
    also keeps the images on shared storage (store.blobs): workers write and read them
    there, only hashes travel, and the index records where they are."""
    store, blobs = tmp_path / "store", tmp_path / "shared"
    extra = [f"store.blobs={blobs}"] if shared else []
    done, killed = threading.Event(), {}
    killer = threading.Thread(target=kill_one_worker,
                              args=(store, table, threshold, done, killed))
    killer.start()
    try:
        doc = run_here(overrides(tiny_sd, store, "executor=ray", *extra), tmp_path / "run")
    finally:
        done.set()
        killer.join()
    assert killed.get("while_running"), "the run finished before a worker could be killed"
    assert comparable(tmp_path / "run") == comparable(reference)
    assert images(tmp_path / "run") == images(reference)
    assert doc["run"]["cache"]["generation"] == {"cached": 0, "computed": 24, "failed": 0}
    all_stored(store, reference)
    if shared:
        from autojudge.store.index import Store

        assert len(list(blobs.rglob("*.png"))) == len(set(images(reference).values()))
        assert not list((store / "blobs").rglob("*.png"))
        with Store(store) as opened:  # later runs find the images without store.blobs
            assert opened.blobs_location == str(blobs)


def test_driver_killed_then_restarted_redoes_only_missing_work(cluster, reference, tiny_sd,
                                                               tmp_path) -> None:
    store = tmp_path / "store"
    args = overrides(tiny_sd, store, "executor=ray", f"executor.address={cluster}")
    proc = subprocess.Popen([sys.executable, "-m", "autojudge", *args,
                             f"hydra.run.dir={tmp_path / 'run'}"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while (rows_in(store, "generations") < 2 * N_REQUESTS + 1 and proc.poll() is None
           and time.time() < deadline):
        time.sleep(0.01)
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert killed, f"the run finished before it could be killed: {err[-2000:]}"
    images_before, scores_before = rows_in(store, "generations"), rows_in(store, "scores")
    assert images_before < len(MODELS) * N_REQUESTS
    doc = run_here(args, tmp_path / "run")
    cache = doc["run"]["cache"]
    assert cache["generation"]["cached"] == images_before, "finished images were redone"
    assert cache["generation"]["computed"] == len(MODELS) * N_REQUESTS - images_before
    assert cache["judges"]["ocr"]["cached"] == scores_before
    assert comparable(tmp_path / "run") == comparable(reference)
    all_stored(store, reference)


class Sleepy:
    """A generator that takes a while per batch (so a worker can die mid-batch) and
    returns a fixed PNG."""

    kind, version, cacheable, batch_size = "sleepy", 1, True, 1

    def __init__(self, name: str, config=None):
        self.name = name

    def fingerprint(self):
        return {"kind": self.kind, "version": self.version, "params": {}}

    def check(self) -> None:
        pass

    def generate(self, requests):
        from autojudge.types import GenOutput

        time.sleep(0.3)
        return [GenOutput(b"\x89PNG sleepy " + r.prompt.id.encode(), 0.3) for r in requests]


def sleepy_pool(**shape):
    """An actor pool for `Sleepy` (pickled by value: tests/ is not importable in the
    workers), its plugin spec and 8 one-request batches."""
    import ray.cloudpickle

    from autojudge.executors.ray_pool import ActorPool, PoolShape
    from autojudge.executors.ray_worker import PluginSpec
    from autojudge.types import GenRequest, Prompt

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    spec = PluginSpec("model", "sleepy", Sleepy, {"kind": "sleepy"})
    batches = [[GenRequest(Prompt(f"p{i}", "x"), 0)] for i in range(8)]
    return ActorPool(PoolShape(**shape), name_prefix="test"), spec, batches


def test_pool_bounds_batches_in_flight_and_moves_a_dead_workers_batches(cluster) -> None:
    """No restarts: the killed worker is gone for good, so its queued batches go to the
    other worker; at no time are more than size x max_in_flight batches out."""
    pool, spec, batches = sleepy_pool(max_restarts=0, max_task_retries=0)
    made, results, peak = [], {}, [0]

    def maker(n):
        def make():
            made.append(n)
            peak[0] = max(peak[0], len(made) - len(results))
            return (batches[n],)
        return make

    try:
        for number, outputs in pool.imap(spec, 2, "generate", [maker(n) for n in range(8)],
                                         max_in_flight=2):
            if not results:  # the first batch is back: kill a worker mid-batch
                os.kill(pool.pids()[0], signal.SIGKILL)
            results[number] = outputs
        assert pool.alive.count(True) == 1
    finally:
        pool.shutdown()
    assert sorted(results) == list(range(8))
    assert all(results[n][0].image.endswith(f"p{n}".encode()) for n in results)
    assert peak[0] <= 2 * 2


def test_every_worker_dead_is_one_line(cluster) -> None:
    from autojudge.errors import AutojudgeError

    pool, spec, batches = sleepy_pool(max_restarts=0, max_task_retries=0)
    try:
        with pytest.raises(AutojudgeError, match="every worker of model 'sleepy' died"):
            for _ in pool.imap(spec, 1, "generate", [lambda b=b: (b,) for b in batches]):
                os.kill(pool.pids()[0], signal.SIGKILL)
    finally:
        pool.shutdown()


def test_kwise_rankings_on_ray_match_local(cluster, tmp_path) -> None:
    """judge.vlm.k=3 with executor=ray: the rankings (both slot orders) go to the judge's
    worker pool and the run logs the same rankings and boards as executor=local, with
    the same number of requests to the endpoint."""
    from vlm_server import ScriptedVLM

    def args(store: Path, executor: str) -> list[str]:
        return [f"store.root={store}", "model=[blank]", "suite.limit=4",
                "+model.light={kind: blank, color: '#b0b0b0', width: 64, height: 64}",
                "+model.dark={kind: blank, color: '#303030', width: 64, height: 64}",
                "+model.mid={kind: blank, color: '#707070', width: 64, height: 64}",
                "model.blank={width: 64, height: 64}", "judge=[vlm]",
                f"judge.vlm.base_url={server.base_url}", "judge.vlm.model=prefer-brighter",
                "judge.vlm.api_key_env=", "judge.vlm.backoff_s=0", "judge.vlm.k=3",
                "ratings.bootstrap_rounds=50", "logger=none", "progress=false",
                f"executor={executor}"]

    with ScriptedVLM() as server:
        run_here(args(tmp_path / "local_store", "local"), tmp_path / "local")
        asked = len(server.requests)
        doc = run_here(args(tmp_path / "ray_store", "ray"), tmp_path / "ray")
        assert len(server.requests) == 2 * asked
    assert comparable(tmp_path / "ray") == comparable(tmp_path / "local")
    rows = [json.loads(line) for line in (tmp_path / "ray" / "battles.jsonl").read_text()
            .splitlines()]
    assert len(rows) == 4 * 2 and all(len(r["models"]) == 3 for r in rows)  # 4 models, k 3
    assert doc["run"]["judge_stats"]["vlm"]["kwise"]["k"] == 3
