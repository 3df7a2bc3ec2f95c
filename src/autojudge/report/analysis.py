"""Plain computations behind the report and the W&B tables (no drawing, no I/O).

Example:
    >>> pareto_front({"a": (1000.0, 0.5), "b": (1100.0, 1.0), "c": (990.0, 0.9)})
    ['a', 'b']
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Mapping, Sequence

from autojudge.report.files import win_rate
from autojudge.report.terminal import format_ci


def board_rows(board: Mapping[str, Any], stats: Mapping[str, Mapping[str, Any]]
               ) -> list[dict[str, Any]]:
    """A board's rows joined with the run's per-model stats: rating, CI (and its text as
    on screen, an open side as >= / <=), rank, battles, win rate, latency, cost, failures."""
    rows = []
    for row in board["models"]:
        s = stats.get(row["model"], {})
        rated = row.get("rating") is not None
        rows.append({**row, "win_rate": win_rate(row),
                     "ci_text": format_ci(row.get("ci_low"), row.get("ci_high"),
                                          rated and row.get("ci_method") is not None),
                     "latency_p50_s": s.get("latency_p50_s"),
                     "latency_p95_s": s.get("latency_p95_s"),
                     "cost_per_image_usd": s.get("cost_per_image_usd"),
                     "cost_usd": s.get("cost_usd"), "failure_rate": s.get("failure_rate"),
                     "images": s.get("images"), "failed": s.get("failed")})
    return rows


def win_matrix(battles: Iterable[Mapping[str, Any]], judge: str, models: Sequence[str]
               ) -> dict[tuple[str, str], tuple[float, int]]:
    """(row model, column model) -> (row's head-to-head win rate, battles), ties half,
    over one judge's battles ("all": every judge but human votes)."""
    score: dict[tuple[str, str], float] = defaultdict(float)
    count: dict[tuple[str, str], int] = defaultdict(int)
    for b in battles:
        if not (b.get("judge") == judge or (judge == "all" and b.get("judge") != "human")):
            continue
        a, c = b["model_a"], b["model_b"]
        s = {"model_a": 1.0, "model_b": 0.0}.get(b["winner"], 0.5)
        score[(a, c)] += s
        score[(c, a)] += 1.0 - s
        count[(a, c)] += 1
        count[(c, a)] += 1
    return {(a, c): (score[(a, c)] / count[(a, c)], count[(a, c)])
            for a in models for c in models if count.get((a, c))}


def pareto_front(points: Mapping[str, tuple[float, float]]) -> list[str]:
    """Models no other model beats on both axes: (quality, higher is better; cost or
    latency, lower is better). Sorted by the second axis."""
    front = []
    for name, (q, x) in points.items():
        dominated = any(q2 >= q and x2 <= x and (q2 > q or x2 < x)
                        for other, (q2, x2) in points.items() if other != name)
        if not dominated:
            front.append(name)
    return sorted(front, key=lambda n: (points[n][1], -points[n][0]))


def tag_matrix(boards: Sequence[Mapping[str, Any]], judge: str
               ) -> tuple[list[str], list[str], dict[tuple[str, str], dict[str, Any]]]:
    """(models, tags, (model, tag) -> board row) of one judge's per-tag boards."""
    tagged = [b for b in boards if b["judge"] == judge and b["tag"]]
    whole = next((b for b in boards if b["judge"] == judge and b["tag"] is None), None)
    models = [r["model"] for r in (whole or {"models": []})["models"]]
    cells = {(r["model"], b["tag"]): {**r, "n_prompts": b.get("n_prompts"),
                                      "connected": b["connected"]}
             for b in tagged for r in b["models"]}
    return models, [b["tag"] for b in tagged], cells


def judge_cells(run_judges: Sequence[str], scores: Iterable[Mapping[str, Any]],
                battles: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, int], list[str]]:
    """(model, prompt_id, seed) -> short texts per judge for the image grid: a
    pointwise judge's score (then, for a question-based judge, each question with its
    answer), or a pairwise judge's wins/losses/ties on that prompt."""
    by_image: dict[tuple[str, str, int], dict[str, str]] = defaultdict(dict)
    scored = set()
    for s in scores:
        key = (s["model"], s["prompt_id"], int(s["seed"]))
        value = s.get("score")
        text = (f"{value:.3g}" if isinstance(value, (int, float))
                else f"failed ({s.get('failure_kind')})")
        by_image[key][s["judge"]] = "\n".join([text, *question_lines(s.get("raw") or {})])
        scored.add(s["judge"])
    record: dict[tuple[str, str, int, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for b in battles:
        if b.get("judge") in scored:
            continue
        for side, model in (("model_a", b["model_a"]), ("model_b", b["model_b"])):
            cell = record[(model, b["prompt_id"], int(b["seed"]), b["judge"])]
            cell[0 if b["winner"] == side else 2 if b["winner"].startswith("tie") else 1] += 1
    for (model, pid, seed, judge), (w, l, t) in record.items():
        by_image[(model, pid, seed)][judge] = f"{w}W {l}L {t}T"
    return {key: [line for j in run_judges if j in texts
                  for line in f"{j}: {texts[j]}".split("\n")]
            for key, texts in by_image.items()}


def question_lines(raw: Mapping[str, Any]) -> list[str]:
    """A question-based judge's (dsg) questions as grid lines: answer, P(yes), question;
    a question whose parent was answered no reads "no (parent no)"."""
    out = []
    for q in raw.get("questions") or []:
        if not isinstance(q, Mapping) or not q.get("question"):
            continue
        p_yes = q.get("p_yes")
        answer = "no (parent no)" if q.get("gated") else (
            "yes" if (q.get("score") or 0) >= 0.5 else "no")
        prob = f" {p_yes:.2f}" if isinstance(p_yes, (int, float)) else ""
        out.append(f"  {answer}{prob}: {str(q['question']).strip()}")
    return out


def prompt_order(generations: Sequence[Mapping[str, Any]]) -> list[tuple[str, int]]:
    """(prompt_id, seed) in the order the run generated them (suite order)."""
    seen: dict[tuple[str, int], None] = {}
    for g in generations:
        seen.setdefault((g["prompt_id"], int(g["seed"])), None)
    return list(seen)


def fmt_number(value: Any, spec: str, none: str = "-") -> str:
    """format(value, spec), or `none` for a missing value."""
    return none if value is None else format(value, spec)


def rewards_side_by_side(style_boards: Sequence[Mapping[str, Any]]
                         ) -> tuple[list[str], list[dict[str, Any]]]:
    """What each judge (and people, judge "human") rewards, side by side: (judges with a
    coefficient, one row per feature: {"feature", judge: coefficient dict or None}), so
    a reader compares one feature across judges at a glance. Empty when fewer than two
    judges have coefficients (each board's own table already says it)."""
    boards = [b for b in style_boards if b["coefficients"]]
    if len(boards) < 2:
        return [], []
    judges = [b["judge"] for b in boards]
    features = list(dict.fromkeys(c["feature"] for b in boards for c in b["coefficients"]))
    by_judge = {b["judge"]: {c["feature"]: c for c in b["coefficients"]} for b in boards}
    return judges, [{"feature": f, **{j: by_judge[j].get(f) for j in judges}}
                    for f in features]
