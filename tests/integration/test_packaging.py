"""The wheel is a working autojudge: it carries every config group file, suite, judge card,
template and validation case, declares every console script, and an autojudge unpacked
from it finds its shipped resources from an unrelated folder.

The wheel is built offline (`pip wheel --no-build-isolation`, setuptools from this venv)
from a copy of the sources, so the checkout gets no build/ or egg-info droppings.
"""
from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import REPO
from packaging.requirements import Requirement

#: repository folder -> where the wheel carries it (autojudge/runtime/resources.py reads these)
SHIPPED = {"conf": "autojudge/_conf", "judges": "autojudge/_judges",
           "prompt_suites": "autojudge/_suites"}
SOURCES = ("pyproject.toml", "setup.py", "README.md", "src", *SHIPPED)
SCRIPTS = {"autojudge": "autojudge.__main__:main", "autojudge-rate": "autojudge.cli.rate:main",
           "autojudge-gate": "autojudge.cli.gate:main",
           "autojudge-validate": "autojudge.cli.validate:main",
           "autojudge-store": "autojudge.cli.store:main",
           "autojudge-report": "autojudge.report.__main__:main",
           "autojudge-compare": "autojudge.cli.compare:main",
           "autojudge-arena": "autojudge.arena.__main__:main"}
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")


def _repo_files(folder: str) -> list[str]:
    """Files of a shipped folder, relative to it (what the wheel must carry)."""
    root = REPO / folder
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    source.mkdir()
    for name in SOURCES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, source / name, ignore=IGNORED)
        else:
            shutil.copy2(src, source / name)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
                           "--no-build-isolation", "-q", "-w", str(tmp / "dist")],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PIP_NO_INDEX": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheels = list((tmp / "dist").glob("autojudge-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


@pytest.mark.parametrize("folder", sorted(SHIPPED))
def test_wheel_carries_every_shipped_file(names: set[str], folder: str) -> None:
    expected = _repo_files(folder)
    assert expected, f"{folder}/ is empty in the checkout"
    missing = [f for f in expected if f"{SHIPPED[folder]}/{f}" not in names]
    assert not missing, (f"{folder}/ files missing from the wheel (add their suffix to DATA "
                         f"in setup.py): {missing}")


def test_wheel_carries_every_config_group(names: set[str]) -> None:
    groups = [p.name for p in (REPO / "conf").iterdir() if p.is_dir()]
    assert {"model", "judge", "suite", "logger"} <= set(groups)
    for group in groups:
        for option in (REPO / "conf" / group).glob("*.yaml"):
            assert f"autojudge/_conf/{group}/{option.name}" in names


def test_wheel_carries_every_module(names: set[str]) -> None:
    package = REPO / "src" / "autojudge"
    modules = sorted(str(p.relative_to(package.parent)) for p in package.rglob("*.py")
                     if "__pycache__" not in p.parts)
    missing = [m for m in modules if m not in names]
    assert not missing, f"modules missing from the wheel: {missing}"


def test_console_scripts_are_declared(wheel: Path, names: set[str]) -> None:
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    parser = configparser.ConfigParser()
    with zipfile.ZipFile(wheel) as archive:
        parser.read_string(archive.read(entry_points).decode())
    declared = dict(parser["console_scripts"])
    assert declared == SCRIPTS
    for target in SCRIPTS.values():
        module = target.split(":")[0].replace(".", "/") + ".py"
        assert module in names, f"console script target {target} is not in the wheel"


def test_core_dependencies_leave_out_torch(wheel: Path, names: set[str]) -> None:
    """The default experiment needs no torch: it (and every other heavy capability) is an
    extra, so the quickstart install stays small."""
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    with zipfile.ZipFile(wheel) as archive:
        lines = archive.read(metadata).decode().splitlines()
    requires = [Requirement(line.split(":", 1)[1]) for line in lines
                if line.startswith("Requires-Dist:")]
    core = {r.name for r in requires if r.marker is None}
    heavy = {"torch", "torchvision", "torchmetrics", "transformers", "diffusers",
             "open_clip_torch", "fal-client", "openai"}
    assert not core & heavy, core & heavy
    extras = {line.split(":", 1)[1].strip() for line in lines
              if line.startswith("Provides-Extra:")}
    assert {"clip", "diffusers", "fal", "vlm", "all", "test"} <= extras


@pytest.mark.slow
def test_unpacked_wheel_runs_from_an_unrelated_folder(wheel: Path, tmp_path: Path) -> None:
    """Installed, not editable: resources come from inside the package, from any folder."""
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "AUTOJUDGE_STORE": str(tmp_path / "store")}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=600)

    probe = run("-c", "import autojudge.runtime.resources as r, "
                      "autojudge.experiment.validation as v, "
                      "autojudge.experiment.build as a; print(r.CONF_DIR); print(v.CASES); "
                      "print(a.resolve_path('prompt_suites/editing.yaml', 'suite'))")
    assert probe.returncode == 0, probe.stderr
    for line in probe.stdout.splitlines():
        assert Path(line).exists() and Path(line).is_relative_to(site), line
    helped = run("-m", "autojudge", "--help")
    assert helped.returncode == 0 and "typeset" in helped.stdout
    assert "powered by Hydra" not in helped.stdout
    proc = run("-m", "autojudge", "model=[typeset,blank]", "suite.tags=[text_rendering]",
               "suite.limit=2", "logger=none", "progress=false", "ratings.bootstrap_rounds=20",
               "hydra.run.dir=runs/packaged")
    assert proc.returncode == 0, proc.stderr
    assert (elsewhere / "runs" / "packaged" / "leaderboard.json").is_file()


def test_wheel_ships_the_arena_pages_and_extras(wheel: Path, names: set[str]) -> None:
    """An installed autojudge serves the arena's pages (HTML, JS, CSS: package data, not
    modules) and declares the extras the optional commands name in their errors."""
    static = REPO / "src" / "autojudge" / "arena" / "static"
    pages = sorted(p.name for p in static.iterdir() if p.is_file())
    assert {"vote.html", "leaderboard.html", "vote.js", "board.js", "arena.css"} <= set(pages)
    missing = [p for p in pages if f"autojudge/arena/static/{p}" not in names]
    assert not missing, f"arena pages missing from the wheel (setup.py package_data): {missing}"
    with zipfile.ZipFile(wheel) as archive:
        meta = archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
    for extra in ("arena", "ray", "sweep", "clip", "diffusers", "fal", "vlm", "all", "test"):
        assert f"Provides-Extra: {extra}" in meta
