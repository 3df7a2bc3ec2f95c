"""executor=ray's configuration and its one-line errors (no Ray is started here)."""
from __future__ import annotations

import pytest
from helpers import assert_one_line_error, run_cli

from autojudge.errors import AutojudgeError
from autojudge.executors import build_executor
from autojudge.executors.ray import RaySettings, sum_stats
from autojudge.store.index import Store


def test_local_is_the_default_and_ray_composes(compose) -> None:
    assert compose([]).executor.kind == "local"
    cfg = compose(["executor=ray", "executor.address=ray://head:10001",
                   "+executor.resources.typeset.num_gpus=1", "store.blobs=s3://b/p"])
    assert cfg.executor.kind == "ray" and cfg.executor.address == "ray://head:10001"
    assert dict(cfg.executor.resources) == {"typeset": {"num_gpus": 1}}
    assert cfg.store.blobs == "s3://b/p"


def test_settings_per_label() -> None:
    s = RaySettings.from_config({"resources": {"sd15": {"num_gpus": 1, "actors": 4}},
                                 "max_in_flight": 3})
    assert s.for_label("sd15") == {"num_cpus": 1.0, "num_gpus": 1.0, "actors": 4,
                                   "max_in_flight": 3}
    assert s.for_label("ocr")["num_gpus"] == 0.0
    with pytest.raises(AutojudgeError, match="unknown key 'gpus'"):
        RaySettings.from_config({"resources": {"sd15": {"gpus": 1}}})
    with pytest.raises(AutojudgeError, match="executor.transfer"):
        RaySettings.from_config({"transfer": "carrier-pigeon"})


@pytest.mark.parametrize("section, message", [
    ({"num_cpus": -1}, "executor.num_cpus=-1: must be >= 1"),
    ({"num_cpus": "many"}, "executor.num_cpus='many': expected a whole number >= 1 or null"),
    ({"max_in_flight": 0}, "executor.max_in_flight=0: must be >= 1"),
    ({"window": 2.5}, "executor.window=2.5: expected a whole number >= 1"),
    ({"start_timeout_s": 0}, "executor.start_timeout_s=0: must be >= 1"),
    ({"resources": {"sd15": {"num_gpus": -2}}}, "executor.resources.sd15.num_gpus=-2"),
    ({"kind_resources": {"fal": {"actors": 0}}}, "executor.kind_resources.fal.actors=0"),
    ({"resources": {"sd15": {"max_in_flight": "x"}}}, "resources.sd15.max_in_flight='x'"),
])
def test_bad_numbers_are_one_line_naming_the_key(section, message) -> None:
    with pytest.raises(AutojudgeError) as err:
        RaySettings.from_config(section)
    assert message in str(err.value)


def test_bad_number_on_the_command_line_stops_before_any_work(tmp_path) -> None:
    proc = run_cli(["autojudge", "executor=ray", "+executor.resources.typeset.num_gpus=-2",
                    f"store.root={tmp_path / 'store'}", f"hydra.run.dir={tmp_path / 'run'}",
                    "logger=none", "progress=false", "suite.limit=2"])
    assert_one_line_error(proc, "executor.resources.typeset.num_gpus=-2: must be >= 0")
    assert not list((tmp_path / "store").rglob("*.png"))


def test_missing_ray_is_one_line_naming_the_extra(monkeypatch, tmp_path) -> None:
    import autojudge.executors.ray as ray_executor

    monkeypatch.setattr(ray_executor, "missing_modules", lambda modules: ["ray"])
    with pytest.raises(AutojudgeError) as err:
        build_executor({"executor": {"kind": "ray"}}, Store(tmp_path))
    assert "pip install 'autojudge[ray]'" in str(err.value)


def test_unknown_kind_and_shared_transfer_without_shared_storage(tmp_path) -> None:
    with pytest.raises(AutojudgeError, match="did you mean 'ray'"):
        build_executor({"executor": {"kind": "rya"}}, None)
    config = {"executor": {"kind": "ray", "transfer": "shared"}, "model": {}, "judge": {}}
    with pytest.raises(AutojudgeError, match="set store.blobs"):
        build_executor(config, Store(tmp_path / "a"))
    with pytest.raises(AutojudgeError, match="set store.blobs"):  # memory:// is per process
        build_executor(config, Store(tmp_path / "b", blobs="memory://not-shared"))
    shared = Store(tmp_path / "c", blobs=str(tmp_path / "nfs"))
    auto = {**config, "executor": {"kind": "ray"}}
    assert build_executor(auto, shared).transfer == "shared"
    assert build_executor(auto, Store(tmp_path / "d")).transfer == "bytes"


def test_resources_for_a_label_not_in_the_run_is_one_line(tmp_path) -> None:
    proc = run_cli(["autojudge", "executor=ray", "+executor.resources.sdxl.num_gpus=1",
                    f"store.root={tmp_path / 'store'}", f"hydra.run.dir={tmp_path / 'run'}",
                    "logger=none", "progress=false", "suite.limit=2"])
    assert_one_line_error(proc, "executor.resources.sdxl", "no model or judge")


def test_an_address_where_nothing_listens_is_one_line_before_any_work(tmp_path) -> None:
    proc = run_cli(["autojudge", "executor=ray", "executor.address=ray://127.0.0.1:9",
                    f"store.root={tmp_path / 'store'}", f"hydra.run.dir={tmp_path / 'run'}",
                    "logger=none", "progress=false", "suite.limit=2"], timeout=60)
    assert_one_line_error(proc, "nothing answers at ray://127.0.0.1:9", "executor.address")
    assert not (tmp_path / "store" / "index.sqlite").exists() or not list(
        (tmp_path / "store" / "blobs").rglob("*.png"))


def test_worker_stats_are_summed() -> None:
    parts = [{"calls": 2, "tokens": {"in": 5}, "backend": "x"},
             {"calls": 3, "tokens": {"in": 1, "out": 2}, "backend": "y"}]
    assert sum_stats(parts) == {"calls": 5, "tokens": {"in": 6, "out": 2}, "backend": "y"}
