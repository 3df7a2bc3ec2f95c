"""Human votes as judge "human": read Arena-convention logs and the imgsys export.

Accepted files (.jsonl/.csv/.parquet, read by `autojudge.battles.log.read_battle_log`):

- Arena convention: `model_a, model_b, winner` (winner one of model_a, model_b, tie,
  tie (bothbad)), optional `prompt_id, seed, tstamp, judge`.
- imgsys export (huggingface fal/imgsys-results): `model_a, model_b, preference, prompt`.
  Numbers follow imgsys' own rating code (`src/calculate_elo.py` in fal-ai/imgsys-public,
  `EloRating.process`): preference 0 -> model_a won, 1 -> model_b won, any other value
  -> tie. (imgsys truncates with `int()` first; autojudge compares the exact value, so
  0.5 is a tie rather than a model_a win: no integer-valued export can tell the
  difference.) An export whose numbers mean model_a's score instead (1 = model_a won)
  is read with `preference="a_score"` (`--preference a_score` in `autojudge.rate`,
  `human_votes.preference=a_score` in a run). Text values are unambiguous whatever the
  convention: "model_a"/"a"/"left"/"first"/"1st" -> model_a, "model_b"/"b"/"right"/
  "second"/"2nd" -> model_b, "tie"/"draw"/"equal"/"both" -> tie, "bothbad"/"both bad"/
  "neither"/"tie (bothbad)" -> tie (bothbad).

A vote joins the automated battles by prompt: `prompt_id` when the file has it, else the
`prompt` text matched exactly (whitespace-trimmed) against the run's suite; `seed` when
present (without it a vote matches every seed of its prompt and pair).

Example:
    >>> preference_to_winner(["left", "B", 0, 1, 2, "tie (bothbad)"])
    ['model_a', 'model_b', 'model_a', 'model_b', 'tie', 'tie (bothbad)']
    >>> preference_to_winner([1, 0, 0.5], convention="a_score")
    ['model_a', 'model_b', 'tie']
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from autojudge.battles.log import (PREFERENCE_CONVENTIONS, normalise_vote_columns,  # noqa: F401
                                  preference_to_winner, read_battle_log)

HUMAN = "human"
def load_human_votes(path: str | Path, prompts: Sequence[Any], models: Sequence[str],
                     model_map: Mapping[str, str] | None = None,
                     preference: str = "imgsys") -> tuple[list[Any], dict]:
    """Read a votes file into `Battle`s of judge "human", joined to the suite's prompts.

    Args:
        path: votes file.
        prompts: the run's suite prompts (`types.Prompt`), for ids, text matching, tags.
        models: the run's model labels; votes between other models are dropped.
        model_map: vote model name -> run label (e.g. imgsys names -> your labels).
        preference: how numbers in a `preference` column read (`preference_to_winner`).

    Returns:
        (battles, summary {path, n_votes, n_used, n_unknown_model, n_unmatched_prompt}).
    """
    from autojudge.types import Battle

    df = read_battle_log(path, columns=("prompt_id", "prompt", "seed", "tstamp"),
                         preference=preference)
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
