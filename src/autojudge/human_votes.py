"""Human votes as judge "human": read Arena-convention logs and the imgsys export.

Accepted files (.jsonl/.csv/.parquet, read by `autojudge.battle_log.read_battle_log`):

- Arena convention: `model_a, model_b, winner` (winner one of model_a, model_b, tie,
  tie (bothbad)), optional `prompt_id, seed, tstamp, judge`.
- imgsys export (huggingface fal/imgsys-results): `model_a, model_b, preference, prompt`.
  `preference` is mapped by `preference_to_winner`: text forms "model_a"/"a"/"left"/
  "first"/"1st" -> model_a, "model_b"/"b"/"right"/"second"/"2nd" -> model_b,
  "tie"/"draw"/"equal"/"both" -> tie, "bothbad"/"both bad"/"neither"/"tie (bothbad)" ->
  tie (bothbad); numbers as model_a's score: 1 -> model_a, 0 -> model_b, 0.5 -> tie.
  The imgsys dataset stores preference as a float64 whose orientation is not documented
  publicly; if your export means 0 = model_a, map it first (see docs/statistics.md).

A vote joins the automated battles by prompt: `prompt_id` when the file has it, else the
`prompt` text matched exactly (whitespace-trimmed) against the run's suite; `seed` when
present (without it a vote matches every seed of its prompt and pair).

Example:
    >>> preference_to_winner(["left", "B", 0.5, "tie (bothbad)"])
    ['model_a', 'model_b', 'tie', 'tie (bothbad)']
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from autojudge.errors import AutojudgeError

HUMAN = "human"
_TEXT = {
    "model_a": "model_a", "a": "model_a", "left": "model_a", "first": "model_a",
    "1st": "model_a", "image_a": "model_a",
    "model_b": "model_b", "b": "model_b", "right": "model_b", "second": "model_b",
    "2nd": "model_b", "image_b": "model_b",
    "tie": "tie", "draw": "tie", "equal": "tie", "both": "tie", "same": "tie",
    "tie (bothbad)": "tie (bothbad)", "bothbad": "tie (bothbad)",
    "both bad": "tie (bothbad)", "both_bad": "tie (bothbad)", "neither": "tie (bothbad)",
}
_NUMBER = {1.0: "model_a", 0.0: "model_b", 0.5: "tie"}


def preference_to_winner(values: Sequence[Any]) -> list[str]:
    """Map imgsys/other preference values to Arena winner labels (see module docstring).

    Raises:
        AutojudgeError: naming the first value that is none of the known forms.
    """
    out = []
    for k, v in enumerate(list(values)):
        label = None
        if isinstance(v, str):
            text = v.strip().lower()
            label = _TEXT.get(text)
            if label is None:
                try:
                    label = _NUMBER.get(float(text))
                except ValueError:
                    label = None
        elif v is not None and not (isinstance(v, float) and math.isnan(v)):
            try:
                label = _NUMBER.get(float(v))
            except (TypeError, ValueError):
                label = None
        if label is None:
            raise AutojudgeError(
                f"preference value {v!r} (row {k + 1}) is not a known vote; use model_a/"
                "model_b/tie (or A/B, left/right, 1/0/0.5 as model_a's score)")
        out.append(label)
    return out


def normalise_vote_columns(df: Any) -> Any:
    """A `preference` column (imgsys export) becomes `winner` when there is none."""
    if "winner" not in df.columns and "preference" in df.columns:
        df = df.copy()
        df["winner"] = preference_to_winner(df["preference"].tolist())
    return df


def load_human_votes(path: str | Path, prompts: Sequence[Any], models: Sequence[str],
                     model_map: Mapping[str, str] | None = None) -> tuple[list[Any], dict]:
    """Read a votes file into `Battle`s of judge "human", joined to the suite's prompts.

    Args:
        path: votes file.
        prompts: the run's suite prompts (`types.Prompt`), for ids, text matching, tags.
        models: the run's model labels; votes between other models are dropped.
        model_map: vote model name -> run label (e.g. imgsys names -> your labels).

    Returns:
        (battles, summary {path, n_votes, n_used, n_unknown_model, n_unmatched_prompt}).
    """
    from autojudge.battle_log import read_battle_log
    from autojudge.types import Battle

    df = read_battle_log(path, columns=("prompt_id", "prompt", "seed", "tstamp"))
    model_map = dict(model_map or {})
    by_id = {p.id: p for p in prompts}
    by_text = {p.text.strip(): p for p in prompts}
    known = set(models)
    battles, unknown, unmatched = [], 0, 0
    cols = df.columns
    for k in range(len(df)):
        a = model_map.get(df["model_a"].iat[k], df["model_a"].iat[k])
        b = model_map.get(df["model_b"].iat[k], df["model_b"].iat[k])
        if a not in known or b not in known or a == b:
            unknown += 1
            continue
        prompt = None
        pid = df["prompt_id"].iat[k] if "prompt_id" in cols else None
        if _present(pid):
            pid = str(pid)
            prompt = by_id.get(pid)
        elif "prompt" in cols and _present(df["prompt"].iat[k]):
            prompt = by_text.get(str(df["prompt"].iat[k]).strip())
            pid = prompt.id if prompt is not None else str(df["prompt"].iat[k]).strip()
        if prompt is None:
            unmatched += 1
        seed = df["seed"].iat[k] if "seed" in cols else None
        seed = int(seed) if _present(seed) else None
        stamp = df["tstamp"].iat[k] if "tstamp" in cols else 0.0
        battles.append(Battle(a, b, df["winner"].iat[k], HUMAN, pid, seed,
                              prompt.tags if prompt is not None else (), None, None,
                              "human vote", float(stamp) if _present(stamp) else 0.0))
    summary = {"path": str(path), "n_votes": len(df), "n_used": len(battles),
               "n_unknown_model": unknown, "n_unmatched_prompt": unmatched}
    return battles, summary


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value)) \
        and str(value) != ""
