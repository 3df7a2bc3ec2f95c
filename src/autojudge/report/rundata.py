"""A finished run folder, read back: what the report, W&B and `compare` work from.

Only `leaderboard.json` is required; the battle log, generations, scores, prompts and
config are read when present (an older or hand-made run may lack some). Every problem is
one AutojudgeError line naming the file and what to do.

Example:
    >>> run = load_run("runs/2026-01-01_starter")            # doctest: +SKIP
    >>> run.document["run"]["models"], len(run.battles)      # doctest: +SKIP
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from autojudge.errors import AutojudgeError
from autojudge.results import Leaderboard, read_leaderboard
from autojudge.runtime.atomic_files import atomic_write_text

CONFIG_FILE = "config.json"
PROMPTS_FILE = "prompts.jsonl"


@dataclass
class RunData:
    """Everything a finished run wrote, as plain rows.

    Attributes:
        run_dir: the run folder.
        document: leaderboard.json, as written (`leaderboard` is the same, typed).
        battles, generations, scores, skipped: rows of the .jsonl files ([] if absent).
        prompts: prompt id -> {id, text, tags, expected_text, task, ...}.
        config: the resolved (redacted) config the run used, or None.
    """

    run_dir: Path
    document: dict[str, Any]
    battles: list[dict[str, Any]] = field(default_factory=list)
    generations: list[dict[str, Any]] = field(default_factory=list)
    scores: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    prompts: dict[str, dict[str, Any]] = field(default_factory=dict)
    config: dict[str, Any] | None = None
    leaderboard: Leaderboard | None = None  # `document`, typed

    @property
    def models(self) -> list[str]:
        return list(self.document["run"].get("models") or [])

    @property
    def judges(self) -> list[str]:
        """Judges with battles (human votes included), in the run's order."""
        judges = list(self.document["run"].get("judges") or [])
        for row in self.battles:
            if row.get("judge") not in judges:
                judges.append(row.get("judge"))
        return judges


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file ([] when it does not exist); a bad line is one error line."""
    if not path.exists():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AutojudgeError(f"cannot read {path} ({exc}); the run folder is damaged: run "
                             "the experiment again") from None
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AutojudgeError(f"{path}, line {number}: not valid JSON ({exc.msg}); the run "
                                 "folder is damaged: run the experiment again") from None
        if not isinstance(row, dict):
            raise AutojudgeError(f"{path}, line {number}: not a JSON object; the run folder "
                                 "is damaged: run the experiment again")
        rows.append(row)
    return rows


def load_run(run_dir: str | Path) -> RunData:
    """Read a finished run folder (see the module docstring)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        what = "is a file, not a folder" if run_dir.exists() else "not found"
        raise AutojudgeError(f"run dir {run_dir} {what}; give the folder of a finished "
                             "run (it holds leaderboard.json)")
    board = run_dir / "leaderboard.json"
    if not board.is_file():
        raise AutojudgeError(f"{run_dir} has no leaderboard.json: not a finished run; finish "
                             "the run (run the same command again to resume) or pick "
                             "another folder")
    leaderboard = read_leaderboard(board)
    document = leaderboard.to_dict()
    from autojudge.battles.rankings import expand_rows

    data = RunData(run_dir, document, expand_rows(read_jsonl(run_dir / "battles.jsonl")),
                   read_jsonl(run_dir / "generations.jsonl"),
                   read_jsonl(run_dir / "scores.jsonl"), read_jsonl(run_dir / "skipped.jsonl"))
    data.leaderboard = leaderboard
    data.config = _read_config(run_dir)
    data.prompts = {row["id"]: row for row in read_jsonl(run_dir / PROMPTS_FILE)}
    if not data.prompts:
        data.prompts = _prompts_from_suite(document)
    return data


def _read_config(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise AutojudgeError(f"{path}: unreadable ({exc}); delete it to rebuild without "
                             "the config") from None


def _prompts_from_suite(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Prompt texts for a run that did not write prompts.jsonl: from its suite file, if
    it is still where the run read it; otherwise none (the report shows ids)."""
    path = (document.get("run") or {}).get("suite_path")
    if not path or not Path(path).is_file():
        return {}
    try:
        from autojudge.suites.load import load_suite

        return {p.id: prompt_row(p) for p in load_suite(path).prompts}
    except Exception:  # a courtesy only: the report stands on prompt ids without it
        return {}


def prompt_row(prompt: Any) -> dict[str, Any]:
    """What the report shows of a `types.Prompt` (prompts.jsonl row)."""
    return {"id": prompt.id, "text": prompt.text, "tags": list(prompt.tags),
            "category": prompt.category, "expected_text": prompt.expected_text,
            "task": prompt.task, "style_prompt": prompt.style_prompt}


def write_prompts(run_dir: Path, prompts: Sequence[Any]) -> Path:
    """prompts.jsonl: the run's prompts (so a report rebuilds without the suite file)."""
    path = run_dir / PROMPTS_FILE
    text = "".join(json.dumps(prompt_row(p), default=str) + "\n" for p in prompts)
    atomic_write_text(path, text)
    return path


def iter_headline_boards(document: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Whole-suite boards to show: one per judge, plus the overall board when more than
    one judge fed it (with one judge it repeats that judge's board)."""
    boards = [b for b in document["boards"] if b["tag"] is None]
    judges = [b["judge"] for b in boards if b["judge"] != "all"]
    for board in boards:
        if board["judge"] != "all" or len(judges) != 1:
            yield board
