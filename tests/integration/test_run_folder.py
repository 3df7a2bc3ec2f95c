"""A run folder a person can browse: images reachable from it, normal file modes, a log
that says what happened, W&B once under <run>/wandb/, and a run dir that cannot be made
refused in one line."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from helpers import assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("folder")
    proc = run_cli(["autojudge", "suite.tags=[text_rendering]", "suite.limit=4",
                    "ratings.bootstrap_rounds=50", "logger=wandb", f"store.root={root / 's'}",
                    f"hydra.run.dir={root / 'run'}"], env={"WANDB_MODE": "offline"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return root / "run"


@pytest.mark.slow
def test_images_are_reachable_from_the_run_folder(cli_run: Path) -> None:
    images = sorted((cli_run / "images").glob("*/*.png"))
    assert len(images) == 3 * 4  # 3 models x 4 prompts, seed 0
    assert {p.parent.name for p in images} == {"typeset", "blank", "noise"}
    for path in images:
        assert path.name.endswith("_s0.png") and path.is_symlink()
        assert path.resolve().is_file() and path.read_bytes()[:4] == b"\x89PNG"
    import json

    rows = [json.loads(x) for x in (cli_run / "generations.jsonl").read_text().splitlines()]
    assert all((cli_run / r["image"]).is_file() for r in rows)


@pytest.mark.slow
def test_output_files_have_normal_modes(cli_run: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    for name in ("leaderboard.json", "leaderboard.csv", "models.csv", "battles.jsonl"):
        mode = stat.S_IMODE((cli_run / name).stat().st_mode)
        assert mode == 0o666 & ~umask, (name, oct(mode))


@pytest.mark.slow
def test_main_log_tells_the_stages(cli_run: Path) -> None:
    log = (cli_run / "__main__.log").read_text()
    for needle in ("generate typeset: 4 images", "judge ocr:", "wrote "):
        assert needle in log, log


@pytest.mark.slow
def test_wandb_lands_once_under_the_run_folder(cli_run: Path) -> None:
    offline = list((cli_run / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and not (cli_run / "wandb" / "wandb").exists()


def test_run_dir_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("not a folder")
    proc = run_cli(["autojudge", f"hydra.run.dir={target}", "logger=none"])
    assert proc.returncode == 2
    assert_one_line_error(proc, "is a file, not a folder")


def _new_folders(runs: Path) -> list[Path]:
    return sorted(runs.iterdir()) if runs.exists() else []


def test_refused_run_leaves_no_folder(tmp_path: Path) -> None:
    proc = run_cli(["autojudge", "model=[typeset]", "logger=none",
                    f"store.root={tmp_path / 's'}"], cwd=tmp_path)  # one model: refused
    assert proc.returncode == 2
    assert_one_line_error(proc, "model")
    assert _new_folders(tmp_path / "runs") == []


def test_refusal_keeps_a_folder_that_was_there_before(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    proc = run_cli(["autojudge", "model=[typeset]", "logger=none", f"hydra.run.dir={mine}",
                    f"store.root={tmp_path / 's'}"])
    assert proc.returncode == 2
    assert mine.is_dir(), "a refused run removed a folder it did not make"
    assert "error: " in (mine / "__main__.log").read_text()  # the log says why it stopped


def test_run_folder_name_too_long_is_one_line(tmp_path: Path) -> None:
    proc = run_cli(["autojudge", f"name={'x' * 300}", "logger=none",
                    f"store.root={tmp_path / 's'}"], cwd=tmp_path)
    assert proc.returncode == 2
    assert_one_line_error(proc, "name=xxx", "too long", "hydra.run.dir=")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "s").exists()


def test_run_folder_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    proc = run_cli(["autojudge", "hydra.run.dir=/proc/autojudge_run", "logger=none",
                    f"store.root={tmp_path / 's'}"], cwd=tmp_path)
    assert proc.returncode == 2
    assert_one_line_error(proc, "hydra.run.dir=/proc/autojudge_run")
    assert not Path("/proc/autojudge_run").exists() and not (tmp_path / "s").exists()


def test_refused_sweep_leaves_no_folder(tmp_path: Path) -> None:
    proc = run_cli(["autojudge", "-m", "model=[typeset]", "suite.limit=2,3", "logger=none",
                    f"store.root={tmp_path / 's'}"], cwd=tmp_path)  # one model: refused
    assert proc.returncode == 2
    assert_one_line_error(proc, "model")
    assert _new_folders(tmp_path / "runs") == []


def test_refused_sweep_keeps_its_folder_that_was_there_before(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    proc = run_cli(["autojudge", "-m", "model=[typeset]", "suite.limit=2,3", "logger=none",
                    f"hydra.sweep.dir={mine}", f"store.root={tmp_path / 's'}"])
    assert proc.returncode == 2
    assert mine.is_dir(), "a refused sweep removed a folder it did not make"
    assert not (mine / "0").exists()  # the refused job's own folder is gone
    note = (mine / "refused.txt").read_text()
    assert note.startswith("error: job 0 (suite.limit=2) was refused") and "model" in note


@pytest.mark.slow
def test_sweep_refused_at_a_later_job_keeps_the_finished_ones(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_cli(["autojudge", "-m", "model.typeset.max_font_size=24,4", "suite.limit=2",
                    "logger=none", "progress=false", "ratings.bootstrap_rounds=20",
                    f"hydra.sweep.dir={sweep}", f"store.root={tmp_path / 's'}"])
    assert proc.returncode == 2  # max_font_size=4 is below the minimum font size
    assert_one_line_error(proc, "max_font_size")
    assert (sweep / "0" / "leaderboard.json").is_file(), "the finished job is kept"
    assert not (sweep / "1").exists()
    note = (sweep / "refused.txt").read_text()
    assert "job 1 (model.typeset.max_font_size=4) was refused" in note
    assert "finished (kept here): 0." in note
