"""The terminal leaderboard: one rich table per judge, a per-tag matrix, a cache summary."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from rich.console import Console
from rich.table import Table

from autojudge.report.files import win_rate


def _fmt(value: Any, spec: str = ".1f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


def board_table(board: Mapping[str, Any], stats: Mapping[str, Mapping[str, Any]],
                confidence: float) -> Table:
    """The headline table of one board: rating with CI next to latency and cost."""
    title = f"judge: {board['judge']}" + (f"  tag: {board['tag']}" if board["tag"] else "")
    title += f"  ({board['n_battles']} battles, {board.get('n_prompts', '?')} prompts)"
    table = Table(title=title, title_justify="left")
    for name, justify in (("rank", "right"), ("model", "left"), ("rating", "right"),
                          (f"{confidence:.0%} CI", "right"), ("elo", "right"),
                          ("battles", "right"), ("win rate", "right"), ("W/L/T", "right"),
                          ("failed", "right"), ("latency p50", "right"), ("cost/img", "right")):
        table.add_column(name, justify=justify, no_wrap=True)
    for row in board["models"]:
        s = stats.get(row["model"], {})
        table.add_row(
            str(row["rank"]), row["model"], _fmt(row["rating"]) + ("*" if row.get("separated") else " "),
            f"{_fmt(row['ci_low'], '.0f')} .. {_fmt(row['ci_high'], '.0f')}",
            _fmt(row["elo"], ".0f"), str(row["battles"]), _fmt(win_rate(row), ".1%"),
            f"{row['wins']}/{row['losses']}/{row['ties']}",
            _fmt(s.get("failure_rate"), ".0%"), _fmt(s.get("latency_p50_s"), ".3f") + "s",
            "$" + _fmt(s.get("cost_per_image_usd"), ".4f"))
    return table


def tag_matrix(boards: Sequence[Mapping[str, Any]], judge: str) -> Table | None:
    """Ratings of each model per tag for one judge (None when there are no tag boards)."""
    tagged = [b for b in boards if b["judge"] == judge and b["tag"]]
    if not tagged:
        return None
    table = Table(title=f"judge: {judge} by tag (BT rating)", title_justify="left")
    table.add_column("model")
    for board in tagged:
        table.add_column(f"{board['tag']} ({board['n_prompts']})", justify="right")
    models = [row["model"] for row in next(b for b in boards if b["judge"] == judge)["models"]]
    by_tag = [{row["model"]: row for row in b["models"]} for b in tagged]
    for model in models:
        table.add_row(model, *(_fmt(rows.get(model, {}).get("rating"), ".0f") for rows in by_tag))
    return table


def cache_line(counts: Mapping[str, Mapping[str, int]]) -> str:
    """E.g. 'generated 0 new, 198 cached; judged 0 new, 60 cached (ocr)'."""
    gen = counts.get("generation", {})
    parts = [f"images: {gen.get('computed', 0)} generated, {gen.get('cached', 0)} from cache, "
             f"{gen.get('failed', 0)} failed"]
    for judge, c in counts.get("judges", {}).items():
        parts.append(f"{judge}: {c.get('computed', 0)} judged, {c.get('cached', 0)} from cache, "
                     f"{c.get('failed', 0)} failed")
    return "; ".join(parts)


def print_report(document: Mapping[str, Any], run_dir: str, confidence: float,
                 show_tags: bool = True, console: Console | None = None) -> None:
    if console is None:
        console = Console()
        if not console.is_terminal:  # piped or captured: don't squeeze tables into 80 columns
            console = Console(width=160)
    stats = {m["model"]: m for m in document["models"]}
    judges = [b["judge"] for b in document["boards"] if b["tag"] is None]
    if len(judges) == 2:  # one judge plus "all", which then repeats it
        judges = judges[:1]
    headline = [b for b in document["boards"] if b["tag"] is None and b["judge"] in judges]
    for board in headline:
        console.print(board_table(board, stats, confidence))
    if any(row.get("separated") for board in headline for row in board["models"]):
        console.print("* never lost (or never won) a decisive battle: the data bound this rating "
                      "on one side only, so its value and CI are set by the rating prior")
    if show_tags:
        for judge in judges:
            matrix = tag_matrix(document["boards"], judge)
            if matrix is not None:
                console.print(matrix)
    run = document["run"]
    console.print(cache_line(run.get("cache", {})))
    console.print(f"wrote {run_dir}/leaderboard.json, leaderboard.csv, battles.jsonl")
