"""`python -m autojudge` as a user types it: bad input is one clear line, never a traceback,
and a failed run leaves nothing a later run would trust."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import assert_one_line_error, run_cli

GOOD_ENTRY = {"id": "p1", "text": "a sign that reads \"OPEN\"", "category": "text_rendering",
              "expected_text": "OPEN"}


def _suite(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def _run(tmp_path: Path, store: Path, *overrides: str):
    return run_cli(["autojudge", f"store.root={store}", f"hydra.run.dir={tmp_path / 'run'}",
                    "logger=none", "progress=false", "ratings.bootstrap_rounds=50", *overrides])


def _entries(*entries: dict) -> str:
    return json.dumps({"name": "t", "prompts": list(entries)})


@pytest.mark.parametrize("text,needles", [
    (_entries({"id": "p1", "category": "x"}), ["suite.yaml", "text"]),
    (_entries(GOOD_ENTRY, dict(GOOD_ENTRY)), ["suite.yaml", "p1"]),
    ("name: t\nprompts:\n  - id: p1\n    text: [unclosed\n", ["suite.yaml", "line"]),
], ids=["missing-field", "duplicate-id", "malformed-yaml"])
def test_bad_suite_is_one_line(tmp_path, store_root, text, needles) -> None:
    proc = _run(tmp_path, store_root, f"suite.path={_suite(tmp_path, text)}", "suite.name=t")
    assert_one_line_error(proc, *needles)
    assert not (tmp_path / "run" / "leaderboard.json").exists()


def test_unknown_tag_filter(tmp_path, store_root) -> None:
    proc = _run(tmp_path, store_root, "suite.tags=[no_such_tag]")
    assert_one_line_error(proc, "no_such_tag")


def test_unknown_model_name_lists_what_exists(tmp_path, store_root) -> None:
    proc = _run(tmp_path, store_root, "model=[typeset,blnk]")
    assert_one_line_error(proc, "blnk", "blank", "typeset")


def test_misspelled_key_names_the_right_one(tmp_path, store_root) -> None:
    proc = _run(tmp_path, store_root, "ratings.bootstrp=10")
    assert_one_line_error(proc, "bootstrp", "bootstrap_rounds")


def test_empty_folder_for_folder_generator(tmp_path, store_root) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = _run(tmp_path, store_root, "model=[folder,blank]", f"model.folder.path={empty}")
    assert_one_line_error(proc, "folder", str(empty))
    assert not (tmp_path / "run" / "leaderboard.json").exists()
    assert not list(store_root.rglob("*.png")), "work started before the config was checked"


def test_folder_without_path(tmp_path, store_root) -> None:
    proc = _run(tmp_path, store_root, "model=[folder,blank]")
    assert_one_line_error(proc, "model.folder.path")


def test_help_answers_without_heavy_imports() -> None:
    proc = run_cli(["autojudge", "--help"])
    assert proc.returncode == 0 and "model:" in proc.stdout
    assert "powered by Hydra" not in proc.stdout  # autojudge's page, not Hydra's generic one
    for needle in ("typeset", "judge:", "ocr", "suite:", "partiprompts", "autojudge.rate",
                   "autojudge.gate", "autojudge.validate", "autojudge.store", "--cfg job"):
        assert needle in proc.stdout, needle
    code = ("import sys, autojudge.__main__, autojudge.experiment.pipeline, autojudge.experiment.build, "
            "autojudge.judges.ocr, autojudge.generators.baselines; "
            "heavy = {'torch', 'wandb', 'onnxruntime', 'rapidocr'} & set(sys.modules); "
            "assert not heavy, heavy")
    check = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


@pytest.mark.slow
def test_multirun_sweep_writes_one_run_per_point(tmp_path, store_root) -> None:
    sweep = tmp_path / "sweep"
    proc = run_cli(["autojudge", "-m", "model.typeset.max_font_size=24,72",
                    "suite.tags=[text_rendering]", "suite.limit=3", f"store.root={store_root}",
                    f"hydra.sweep.dir={sweep}", "progress=false", "ratings.bootstrap_rounds=50",
                    "logger=wandb"])
    assert proc.returncode == 0, proc.stderr
    for job in ("0", "1"):
        document = json.loads((sweep / job / "leaderboard.json").read_text())
        assert document["run"]["models"] == ["typeset", "blank", "noise"]
        assert list((sweep / job / "wandb").rglob("*.wandb")), "each sweep point logs its own W&B run"
    first = json.loads((sweep / "0" / "leaderboard.json").read_text())["run"]["cache"]
    second = json.loads((sweep / "1" / "leaderboard.json").read_text())["run"]["cache"]
    assert first["generation"]["computed"] == 9  # 3 prompts x 3 models, fresh store
    assert second["generation"]["computed"] == 3  # only typeset changed between points


# --- one CLI: `autojudge COMMAND`, its aliases, the presets and the local config group ---

SUBCOMMANDS = ("run", "rate", "gate", "validate", "store", "report", "compare", "arena")


def _script(name: str) -> Path:
    """A console script of this install (pip puts them next to the interpreter)."""
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        pytest.skip(f"{name} is not installed next to {sys.executable} (pip install -e .)")
    return path


def _battle_log(tmp_path: Path) -> Path:
    rows = [("typeset", "blank", "model_a")] * 6 + [("typeset", "noise", "model_a")] * 5 + \
        [("blank", "noise", "tie"), ("noise", "blank", "model_b"), ("blank", "typeset", "model_a")]
    path = tmp_path / "battles.jsonl"
    path.write_text("".join(json.dumps({"model_a": a, "model_b": b, "winner": w}) + "\n"
                            for a, b, w in rows))
    return path


def test_help_lists_every_subcommand_and_the_presets() -> None:
    proc = run_cli(["autojudge", "--help"])
    assert proc.returncode == 0, proc.stderr
    for name in SUBCOMMANDS:
        assert f"autojudge {name} " in proc.stdout, name
    assert "experiment:" in proc.stdout and "smoke" in proc.stdout
    assert "None" not in proc.stdout  # `experiment: null` is no default to show


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_each_subcommand_answers_help(name: str) -> None:
    proc = run_cli(["autojudge", name, "--help"])
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    first = proc.stdout.splitlines()[0]
    if name == "run":  # the experiment's own page: the config groups to choose from
        assert first.startswith("usage: ") and "model:" in proc.stdout
    else:
        assert first.startswith(f"usage: autojudge {name}"), first


def test_every_spelling_of_a_command_gives_the_same_answer(tmp_path) -> None:
    """`autojudge rate`, `autojudge-rate` and `python -m autojudge.rate` are one command."""
    log = str(_battle_log(tmp_path))
    args = [log, "--bootstrap", "0", "--json"]
    spellings = {
        "subcommand": subprocess.run([str(_script("autojudge")), "rate", *args],
                                     capture_output=True, text=True),
        "console script": subprocess.run([str(_script("autojudge-rate")), *args],
                                         capture_output=True, text=True),
        "module": run_cli(["autojudge.rate", *args]),
        "python -m autojudge rate": run_cli(["autojudge", "rate", *args]),
    }
    for how, proc in spellings.items():
        assert proc.returncode == 0, (how, proc.stderr)
    boards = {how: json.loads(proc.stdout) for how, proc in spellings.items()}
    assert [row["model"] for row in boards["module"]["models"]][0] == "typeset"
    assert all(board == boards["module"] for board in boards.values())


@pytest.mark.parametrize("argv,needles", [
    (["autojudge", "rate", "--bogus", "x.jsonl"], ["--bogus", "autojudge rate --help"]),
    (["autojudge", "gate", "runs/x", "--baseline", "a"], ["--candidate", "autojudge gate"]),
    (["autojudge", "report", "runs/x", "--max-prompts", "0"], ["0 must be >= 1"]),
    (["autojudge", "validate", "--bogus"], ["--bogus", "autojudge validate --help"]),
    (["autojudge.store", "mend"], ["mend", "python -m autojudge.store --help"]),
], ids=["rate", "gate", "report", "validate", "store-alias"])
def test_bad_subcommand_option_is_one_line(argv, needles) -> None:
    proc = run_cli(argv)
    assert proc.returncode == 2, proc.stderr
    assert_one_line_error(proc, *needles)


def test_unknown_command_names_the_commands() -> None:
    proc = run_cli(["autojudge", "rat", "battles.jsonl"])
    assert proc.returncode == 2
    assert_one_line_error(proc, "'rat'", "did you mean 'rate'", "compare")


def test_run_composes_exactly_as_without_it() -> None:
    """`autojudge run X` is `autojudge X`: same config, Hydra flags passed through."""
    overrides = ["--cfg", "job", "experiment=smoke", "suite.limit=3"]
    plain, spelled = run_cli(["autojudge", *overrides]), run_cli(["autojudge", "run", *overrides])
    assert plain.returncode == spelled.returncode == 0, plain.stderr + spelled.stderr
    assert plain.stdout == spelled.stdout
    assert "name: smoke" in plain.stdout and "limit: 3" in plain.stdout


def test_local_config_group_is_optional_and_read_when_present(tmp_path) -> None:
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "default.yaml").write_text(
        "# @package _global_\nstore:\n  root: /data/shared_store\n")
    with_local = run_cli(["autojudge", "run", f"hydra.searchpath=[file://{tmp_path}]",
                          "--cfg", "job"])
    assert with_local.returncode == 0, with_local.stderr
    assert "root: /data/shared_store" in with_local.stdout
    without = run_cli(["autojudge", "run", "--cfg", "job"])  # conf/local/ need not exist
    assert without.returncode == 0, without.stderr


def test_smoke_preset_runs_offline(tmp_path, store_root) -> None:
    run_dir = tmp_path / "run"
    proc = run_cli(["autojudge", "run", "experiment=smoke", "suite.limit=2", "logger=none",
                    f"store.root={store_root}", f"hydra.run.dir={run_dir}", "progress=false"],
                   env={"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    document = json.loads((run_dir / "leaderboard.json").read_text())
    assert document["run"]["models"] == ["typeset", "blank"]
    assert document["run"]["judges"] == ["ocr"]
    assert len({json.loads(line)["prompt_id"]
                for line in (run_dir / "battles.jsonl").read_text().splitlines()}) == 2


@pytest.mark.parametrize("preset", ["fal_shootout", "local_gpu", "release_gate"])
def test_every_preset_composes(preset: str) -> None:
    proc = run_cli(["autojudge", f"experiment={preset}", "--cfg", "job"])
    assert proc.returncode == 0, proc.stderr
    assert f"name: {preset}" in proc.stdout


def test_misspelled_preset_lists_the_presets() -> None:
    proc = run_cli(["autojudge", "run", "experiment=smok", "logger=none"])
    assert proc.returncode == 2
    assert_one_line_error(proc, "smok", "did you mean 'smoke'", "fal_shootout")


@pytest.mark.parametrize("argv,chosen", [
    (["rate", "x.jsonl"], "rate"),
    (["run", "-m", "suite.limit=2,3"], "run"),
    (["report.html=false"], None),  # an override of a section named like a command
    (["-m", "report.html=false,true"], None),
    (["--cfg", "job", "report"], None),  # only the first argument chooses
    (["model=[typeset,blank]", "rate"], None),
    ([], None),
])
def test_only_the_first_argument_chooses_a_subcommand(argv, chosen) -> None:
    from autojudge.cli import split_command

    command, rest = split_command(argv)
    assert (command.name if command else None) == chosen
    assert rest == (argv[1:] if chosen else argv)
