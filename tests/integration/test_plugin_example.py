"""The README's plugin example is real: its code, entry point and config file, copied out of
the README into a package of their own, make a judge that `python -m autojudge` runs."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from helpers import REPO


def readme_block(language: str, first_line: str) -> str:
    """The README's fenced `language` block whose first line is `first_line`."""
    text = (REPO / "README.md").read_text()
    for body in re.findall(rf"```{language}\n(.*?)```", text, flags=re.S):
        if body.splitlines()[0].strip() == first_line:
            return body
    raise AssertionError(f"README has no ```{language} block starting with {first_line!r}")


def install_plugin_package(root: Path) -> Path:
    """my_judges + its dist-info (the entry point) on a path, and its config folder."""
    package = root / "site" / "my_judges"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "brightness.py").write_text(readme_block("python", "# my_judges/brightness.py"))
    toml = readme_block("toml", '[project.entry-points."autojudge.judges"]')
    group, name, target = re.match(
        r'\[project\.entry-points\."(.+)"\]\n(\S+)\s*=\s*"(.+)"\n', toml).groups()
    dist = root / "site" / "my_judges-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-judges\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{group}]\n{name} = {target}\n")
    conf = root / "my_conf" / "judge"
    conf.mkdir(parents=True)
    (conf / "brightness.yaml").write_text(readme_block("yaml", "# my_conf/judge/brightness.yaml"))
    return root / "my_conf"


def test_readme_plugin_runs_beside_the_builtin_judges(tmp_path: Path) -> None:
    conf = install_plugin_package(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")])}
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "autojudge", f"hydra.searchpath=[file://{conf}]",
         "judge=[brightness,ocr]", "judge.brightness.gamma=2.2", "model=[typeset,noise]",
         "suite.tags=[text_rendering]", "suite.limit=6", "ratings.bootstrap_rounds=50",
         "logger=none", "progress=false", f"store.root={tmp_path / 'store'}",
         f"hydra.run.dir={run_dir}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]

    scores = [json.loads(line) for line in (run_dir / "scores.jsonl").read_text().splitlines()]
    brightness = [s for s in scores if s["judge"] == "brightness"]
    assert len(brightness) == 12  # 2 models x 6 prompts, each scored once
    assert all(0.0 <= s["score"] <= 1.0 for s in brightness)
    # gamma=2.2 from the command line reached the judge: score = mean ** 2.2
    for s in brightness:
        assert abs(s["score"] - s["raw"]["mean"] ** 2.2) < 1e-4

    boards = json.loads((run_dir / "leaderboard.json").read_text())["boards"]
    board = next(b for b in boards if b["judge"] == "brightness" and b["tag"] is None)
    assert {m["model"] for m in board["models"]} == {"typeset", "noise"}
    assert sum(m["battles"] for m in board["models"]) == 2 * 6


def test_readme_plugin_misspelled_key_fails_in_one_line(tmp_path: Path) -> None:
    conf = install_plugin_package(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    proc = subprocess.run(
        [sys.executable, "-m", "autojudge", f"hydra.searchpath=[file://{conf}]",
         "judge=[brightness]", "judge.brightness.gama=2.2", "logger=none",
         f"store.root={tmp_path / 'store'}", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "did you mean 'judge.brightness.gamma'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
