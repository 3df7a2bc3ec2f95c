"""What the arena serves, read from finished runs: prompts, image pairs, judge boards.

A run folder is what `python -m autojudge` writes (leaderboard.json, generations.jsonl,
battles.jsonl); a Hydra multirun sweep folder (multirun.yaml beside the runs) counts as
the runs in its subfolders.
Several runs are pooled:

- a model name found in one run keeps its name; a name found in several runs keeps it
  too when its images are the same in all of them (a baseline repeated at every sweep
  point), else each run's model becomes `name@<run>` (`<run>` is the run folder's name);
- pairs are every two models with a successful image of the same (prompt_id, seed);
- the automated judges' boards are the run's own whole-suite boards for one run, and are
  rated again on the pooled, de-duplicated battles (same judge, prompt, seed and pair)
  for several runs.

Every problem is one AutojudgeError line: which folder, what is wrong, what to do.

Example:
    >>> arena = load_runs(["runs/2024-05-01_starter"])        # doctest: +SKIP
    >>> arena.models, len(arena.pairs)                         # doctest: +SKIP
    (['typeset', 'blank', 'noise'], 282)
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, Iterable, Sequence

from autojudge.errors import AutojudgeError
from autojudge.report.rundata import read_jsonl
from autojudge.sweeps.jobs import find_jobs
from autojudge.types import Battle

HUMAN = "human"


@dataclass(frozen=True)
class ImageRef:
    """One stored image: its file and content hash (checked when it is read)."""

    path: Path
    sha: str


@dataclass(frozen=True)
class Pair:
    """Two models' images of one prompt and seed (models in name order)."""

    prompt_id: str
    seed: int | None
    model_x: str
    model_y: str
    image_x: ImageRef
    image_y: ImageRef


@dataclass(frozen=True)
class PromptInfo:
    text: str
    tags: tuple[str, ...]


@dataclass
class ArenaRuns:
    """Everything the arena needs from its runs (see the module docstring)."""

    runs: list[dict[str, Any]]
    models: list[str]
    prompts: dict[str, PromptInfo]
    pairs: list[Pair]
    model_stats: list[dict[str, Any]]
    judge_boards: list[dict[str, Any]]
    judge_battles: list[Battle]
    rating: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def tags(self) -> list[str]:
        """Tags of the prompts that have pairs, most common first."""
        counts: dict[str, int] = {}
        for pid in dict.fromkeys(p.prompt_id for p in self.pairs):
            for tag in self.prompts[pid].tags:
                counts[tag] = counts.get(tag, 0) + 1
        return sorted(counts, key=lambda t: (-counts[t], t))


def read_run(path: Path) -> dict[str, Any]:
    """One finished run: its leaderboard document, generations and battles."""
    gens_path, board_path = path / "generations.jsonl", path / "leaderboard.json"
    if not gens_path.is_file():
        raise AutojudgeError(f"run {path} has no generations.jsonl, so there are no images "
                             "to vote on; pass a finished run folder")
    if not board_path.is_file():
        raise AutojudgeError(f"run {path} is not finished (no leaderboard.json); run the "
                             "same experiment again to finish it, then start the arena")
    from autojudge.results import read_leaderboard

    try:
        document = read_leaderboard(board_path).to_dict()
    except AutojudgeError as exc:
        raise AutojudgeError(f"run {path}: {exc}; pass a run made by python -m autojudge "
                             "(run the experiment again if its file is damaged)") from None
    from autojudge.battles.rankings import expand_rows

    battles = path / "battles.jsonl"  # a K-wise judge's rows become the pairs they order
    return {"path": path, "document": document, "generations": read_jsonl(gens_path),
            "battles": expand_rows(read_jsonl(battles)) if battles.is_file() else []}


def load_runs(paths: Sequence[str | Path], tags: Sequence[str] = ()) -> ArenaRuns:
    """Read the runs named by `paths` and build the arena's pairs (see module docstring).

    Args:
        paths: run folders and/or sweep folders.
        tags: keep only pairs whose prompt carries any of these tags (`--tag`).

    Raises:
        AutojudgeError: a missing or unfinished run, damaged files, no pairs, unknown tag.
    """
    folders = find_jobs(paths)
    runs = [read_run(p) for p in folders]
    names = _run_labels(folders)
    warnings: list[str] = []
    images = [_images(run, warnings) for run in runs]
    labels = _model_labels(runs, images, names)
    prompts = _prompts(runs, warnings)
    pairs = _pairs(runs, images, labels, prompts)
    models = list(dict.fromkeys(labels[k][m] for k, run in enumerate(runs)
                                for m in _run_models(run)))
    if not pairs:
        raise AutojudgeError(
            f"no pair to vote on in {', '.join(map(str, folders))}: the arena needs two "
            "models with a stored image of the same prompt and seed")
    if tags:
        known = {t for p in pairs for t in prompts[p.prompt_id].tags}
        unknown = [t for t in tags if t not in known]
        if unknown:
            raise AutojudgeError(f"--tag {', '.join(unknown)}: no prompt with pairs has that "
                                 f"tag; tags present: {', '.join(sorted(known)[:40])}")
        pairs = [p for p in pairs if set(prompts[p.prompt_id].tags) & set(tags)]
    battles = _judge_battles(runs, labels)
    boards = _judge_boards(runs, battles, models)
    runs_info = [{"label": names[k], "path": str(run["path"]),
                  "name": run["document"]["run"].get("name"),
                  "suite": run["document"]["run"].get("suite"),
                  "models": {m: labels[k][m] for m in _run_models(run)}}
                 for k, run in enumerate(runs)]
    return ArenaRuns(runs_info, models, prompts, pairs, _model_stats(runs, labels),
                     boards, battles, dict(runs[0]["document"]["run"]["ratings"]),
                     warnings)


def _run_models(run: dict[str, Any]) -> list[str]:
    listed = run["document"]["run"].get("models") or []
    seen = [g["model"] for g in run["generations"] if "model" in g]
    return list(dict.fromkeys([*map(str, listed), *map(str, seen)]))


def _run_labels(folders: Sequence[Path]) -> list[str]:
    """A short unique label per run: its folder name, else its path below the common
    parent (two sweeps both have a run "0")."""
    names = [f.name for f in folders]
    if len(set(names)) == len(names):
        return names
    parent = Path(*_common_parts(folders))
    return [str(f.relative_to(parent)) for f in folders]


def _common_parts(folders: Sequence[Path]) -> tuple[str, ...]:
    parts = [f.parts for f in folders]
    common = []
    for group in zip(*parts):
        if len(set(group)) != 1:
            break
        common.append(group[0])
    return tuple(common) or ("/",)


def _images(run: dict[str, Any], warnings: list[str]) -> dict[str, dict[tuple, ImageRef]]:
    """model -> {(prompt_id, seed): image} of a run's successful generations whose file
    exists (in the run's store when the recorded path moved)."""
    store = run["document"]["run"].get("store")
    out: dict[str, dict[tuple, ImageRef]] = {}
    missing = 0
    for g in run["generations"]:
        sha = g.get("image_sha256")
        if g.get("status", "ok") != "ok" or not sha or "model" not in g:
            continue
        path = _image_file(g.get("image_path"), store, str(sha))
        if path is None:
            missing += 1
            continue
        key = (str(g.get("prompt_id")), _seed(g.get("seed")))
        out.setdefault(str(g["model"]), {})[key] = ImageRef(path, str(sha))
    if missing:
        warnings.append(f"run {run['path']}: {missing} image(s) not found in the store; "
                        "their pairs are left out")
    return out


def _image_file(recorded: Any, store: Any, sha: str) -> Path | None:
    if recorded and Path(recorded).is_file():
        return Path(recorded)
    if not store:
        return None
    ext = Path(recorded).suffix.lstrip(".") if recorded else ""
    folder = Path(store).expanduser() / "blobs" / sha[:2]
    for suffix in [ext] if ext else ["png", "jpg", "webp", "gif"]:
        candidate = folder / f"{sha}.{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _seed(value: Any) -> int | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(value)


def _model_labels(runs: Sequence[dict], images: Sequence[dict], names: Sequence[str]
                  ) -> list[dict[str, str]]:
    """Per run, model name -> arena label (module docstring: same images, same label)."""
    by_name: dict[str, list[int]] = {}
    for k, run in enumerate(runs):
        for model in _run_models(run):
            by_name.setdefault(model, []).append(k)
    labels: list[dict[str, str]] = [{} for _ in runs]
    for model, where in by_name.items():
        same = len(where) == 1 or all(_same_images(images[where[0]].get(model, {}),
                                                   images[k].get(model, {}))
                                      for k in where[1:])
        for k in where:
            labels[k][model] = model if same else f"{model}@{names[k]}"
    return labels


def _same_images(a: dict[tuple, ImageRef], b: dict[tuple, ImageRef]) -> bool:
    shared = set(a) & set(b)
    return bool(shared) and all(a[key].sha == b[key].sha for key in shared)


def _prompts(runs: Sequence[dict], warnings: list[str]) -> dict[str, PromptInfo]:
    """prompt_id -> text and tags, from each run's suite file (first run wins); tags from
    the battle log and the id as text when the suite file is gone."""
    prompts: dict[str, PromptInfo] = {}
    for run in runs:
        for prompt in _suite_prompts(run, warnings):
            prompts.setdefault(prompt.id, PromptInfo(prompt.text, tuple(prompt.tags)))
    for run in runs:
        for b in run["battles"]:
            pid = str(b.get("prompt_id"))
            if pid not in prompts:
                prompts[pid] = PromptInfo(pid, tuple(map(str, b.get("tags") or ())))
        for g in run["generations"]:
            pid = str(g.get("prompt_id"))
            prompts.setdefault(pid, PromptInfo(pid, ()))
    return prompts


def _suite_prompts(run: dict[str, Any], warnings: list[str]) -> list[Any]:
    from autojudge.suites.load import load_suite

    info = run["document"]["run"]
    path = info.get("suite_path")
    if not path:
        return []
    fmt = "auto"
    hydra_cfg = Path(run["path"]) / ".hydra" / "config.yaml"
    if hydra_cfg.is_file():  # the run's own suite format, when Hydra recorded it
        import yaml

        try:
            suite = (yaml.safe_load(hydra_cfg.read_text()) or {}).get("suite") or {}
            fmt = str(suite.get("format") or "auto")
        except (OSError, yaml.YAMLError):
            pass
    try:
        return list(load_suite(path, fmt=fmt).prompts)
    except AutojudgeError as exc:
        warnings.append(f"run {run['path']}: cannot read its suite ({exc}); prompts are "
                        "shown by id")
        return []


def _pairs(runs: Sequence[dict], images: Sequence[dict], labels: Sequence[dict],
           prompts: dict[str, PromptInfo]) -> list[Pair]:
    by_request: dict[tuple, dict[str, ImageRef]] = {}
    for k in range(len(runs)):
        for model, found in images[k].items():
            label = labels[k].get(model, model)
            for key, ref in found.items():
                by_request.setdefault(key, {}).setdefault(label, ref)
    pairs = []
    for (pid, seed), found in by_request.items():
        if pid not in prompts:
            continue
        for x, y in combinations(sorted(found), 2):
            pairs.append(Pair(pid, seed, x, y, found[x], found[y]))
    return pairs


def _judge_battles(runs: Sequence[dict], labels: Sequence[dict]) -> list[Battle]:
    """The automated judges' battles, relabelled; a battle judged in several runs (same
    judge, prompt, seed and pair) counts once."""
    out, seen = [], set()
    for k, run in enumerate(runs):
        for b in run["battles"]:
            judge = str(b.get("judge") or "")
            if not judge or judge == HUMAN:
                continue
            a = labels[k].get(str(b.get("model_a")), str(b.get("model_a")))
            c = labels[k].get(str(b.get("model_b")), str(b.get("model_b")))
            key = (judge, str(b.get("prompt_id")), _seed(b.get("seed")), frozenset((a, c)))
            if key in seen or b.get("winner") is None:
                continue
            seen.add(key)
            out.append(Battle(a, c, b["winner"], judge, str(b.get("prompt_id")),
                              _seed(b.get("seed")), tuple(b.get("tags") or ()),
                              b.get("score_a"), b.get("score_b"), "", float(b.get("tstamp")
                                                                           or 0.0)))
    return out


def _judge_boards(runs: Sequence[dict], battles: Sequence[Battle], models: Sequence[str]
                  ) -> list[dict[str, Any]]:
    """Whole-suite boards of the automated judges (module docstring)."""
    if len(runs) == 1:
        return [b for b in runs[0]["document"].get("boards", [])
                if b.get("tag") is None and b.get("judge") not in (HUMAN, "all")]
    from autojudge.ratings import RatingConfig, board_structure, rate_battles

    settings = runs[0]["document"]["run"]["ratings"]  # defaults filled by the reader
    config = RatingConfig(bootstrap_rounds=int(settings["bootstrap_rounds"]),
                          seed=int(settings["seed"]), confidence=float(settings["confidence"]))
    boards = []
    for judge in dict.fromkeys(b.judge for b in battles):
        mine = [b for b in battles if b.judge == judge]
        rows = rate_battles([b.model_a for b in mine], [b.model_b for b in mine],
                            [b.winner for b in mine], [b.prompt_id for b in mine],
                            config=config, models=list(models))
        boards.append({"judge": judge, "tag": None, "method": "bt", "n_battles": len(mine),
                       "n_prompts": len({b.prompt_id for b in mine}),
                       **board_structure(rows), "models": rows,
                       "pooled_runs": len(runs)})
    return boards


def _model_stats(runs: Sequence[dict], labels: Sequence[dict]) -> list[dict[str, Any]]:
    """leaderboard.json "models" rows (latency, cost) under arena labels, first run wins."""
    out: dict[str, dict[str, Any]] = {}
    for k, run in enumerate(runs):
        for row in run["document"].get("models", []):
            label = labels[k].get(str(row.get("model")), str(row.get("model")))
            out.setdefault(label, {**row, "model": label})
    return list(out.values())


def print_warnings(lines: Iterable[str]) -> None:
    for line in lines:
        sys.stderr.write(f"warning: {line}\n")


def image_features_by_sha(paths: Sequence[str | Path], shas: Iterable[str]
                          ) -> dict[str, dict[str, float]]:
    """sha -> the style features of each voted image (autojudge.style.features), plus
    text_area where a run's OCR judge recorded it (scores.jsonl), so an export rates with
    `rate --control` like a run's battle log. An image no run can find gets none."""
    from PIL import Image

    from autojudge.style.features import image_features

    wanted = set(shas)
    files: dict[str, Path] = {}
    areas: dict[str, float] = {}
    for folder in find_jobs(paths):
        run = read_run(folder)
        for by_key in _images(run, []).values():
            files.update({ref.sha: ref.path for ref in by_key.values() if ref.sha in wanted})
        scores = folder / "scores.jsonl"
        for row in read_jsonl(scores) if scores.is_file() else []:
            area = (row.get("raw") or {}).get("text_area")
            if isinstance(area, (int, float)) and row.get("image_sha256") in wanted:
                areas[row["image_sha256"]] = float(area)
    out = {}
    for sha, path in files.items():
        try:
            with Image.open(path) as image:
                out[sha] = image_features(image)
        except OSError:  # unreadable now: this vote's sides carry no features
            continue
        if sha in areas:
            out[sha]["text_area"] = areas[sha]
    return out
