"""The terminal leaderboard: one rich table per judge, a per-tag matrix, a cache summary."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from autojudge.report.files import win_rate


def _fmt(value: Any, spec: str = ".1f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


def format_ci(low: float | None, high: float | None, rated: bool = True) -> str:
    """A CI as shown on screen: "1482 .. 1530", ">= 1482" / "<= 705" for an open side,
    "unbounded" when the data bound neither side, "-" when there is none."""
    if not rated:
        return "-"
    if low is not None and high is not None:
        return f"{low:.0f} .. {high:.0f}"
    if low is not None:
        return f">= {low:.0f}"
    if high is not None:
        return f"<= {high:.0f}"
    return "unbounded"


def board_title(board: Mapping[str, Any]) -> str:
    """E.g. 'judge: ocr  (84 battles, 28 prompts)', noting a disconnected graph."""
    title = f"judge: {board['judge']}" + (f"  tag: {board['tag']}" if board["tag"] else "")
    title += f"  ({board['n_battles']} battles, {board.get('n_prompts', '?')} prompts)"
    if not board["connected"]:
        title += (f"  NOT CONNECTED: {board['n_components']} groups never linked by "
                  "battles; ratings and ranks compare only within a group")
    return title


def rating_cells(row: Mapping[str, Any], show_group: bool) -> list[str]:
    """Rank, model, rating and CI cells of one board row (shared with `autojudge.rate`)."""
    rated = row.get("rating") is not None
    # model labels are data: "sd15[guidance_scale=5]" is not rich markup
    model = escape(row["model"]) + (" ~" if row.get("provisional") else "")
    if show_group and rated:
        model += escape(f" [g{row['component'] + 1}]")  # literal text, not a markup tag
    rating = (_fmt(row["rating"]) + ("*" if row.get("separated") else " ")) if rated \
        else "unrated"
    return [_fmt(row.get("rank"), "d"), model, rating,
            format_ci(row.get("ci_low"), row.get("ci_high"), rated and row.get("ci_method")
                      is not None)]


def board_table(board: Mapping[str, Any], stats: Mapping[str, Mapping[str, Any]],
                confidence: float) -> Table:
    """The headline table of one board: rating with CI next to latency and cost."""
    table = Table(title=escape(board_title(board)), title_justify="left")
    for name, justify in (("rank", "right"), ("model", "left"), ("rating", "right"),
                          (f"{confidence:.0%} CI", "right"), ("elo", "right"),
                          ("battles", "right"), ("win rate", "right"), ("W/L/T", "right"),
                          ("failed", "right"), ("latency p50", "right"), ("cost/img", "right")):
        table.add_column(name, justify=justify, no_wrap=True)
    show_group = not board["connected"]
    for row in board["models"]:
        s = stats.get(row["model"], {})
        table.add_row(
            *rating_cells(row, show_group), _fmt(row["elo"], ".0f"), str(row["battles"]),
            _fmt(win_rate(row), ".1%"), f"{row['wins']}/{row['losses']}/{row['ties']}",
            _fmt(s.get("failure_rate"), ".0%"), _fmt(s.get("latency_p50_s"), ".3f") + "s",
            "$" + _fmt(s.get("cost_per_image_usd"), ".4f"))
    return table


def footnotes(boards: Sequence[Mapping[str, Any]]) -> list[str]:
    """The notes under the tables for whatever the shown boards contain."""
    rows = [row for board in boards for row in board["models"]]
    notes = []
    if any(row.get("separated") for row in rows):
        notes.append("* never lost (or never won) against part of its group: the data bound "
                     "this rating on one side only (the open side shows as >= / <=, null in "
                     "JSON/CSV); the rating itself is set by the rating prior")
    if any(row.get("provisional") for row in rows):
        notes.append("~ provisional: fewer battles than report.min_battles; its rank and "
                     "rating are not yet trustworthy")
    if any(not board["connected"] for board in boards):
        notes.append("[gN] group N: models never linked by battles to other groups; no "
                     "rank, gap or verdict crosses groups")
    reasons = {}
    for row in rows:
        if row.get("rating") is None:
            reasons.setdefault(row["model"], row.get("unrated_reason") or "no battles")
    notes.extend(f"unrated {model}: {why}" for model, why in reasons.items())
    return notes


def agreement_table(rows: Sequence[Mapping[str, Any]], confidence: float) -> Table:
    """Judge-vs-judge agreement on shared battles and rank correlation of their boards."""
    table = Table(title="judge agreement (shared prompt, seed, model pair)",
                  title_justify="left")
    for name in ("judge A", "judge B", "shared", "agree", f"{confidence:.0%} CI", "decisive",
                 "kappa", "kendall tau", "spearman"):
        table.add_column(name, justify="left" if name.startswith("judge") else "right",
                         no_wrap=True)
    for r in rows:
        ci = "-" if r.get("ci_low") is None else f"{r['ci_low']:.0%} .. {r['ci_high']:.0%}"
        table.add_row(escape(r["judge_a"]), escape(r["judge_b"]), str(r["n_shared"]),
                      _fmt(r.get("agreement"), ".0%"), ci,
                      _fmt(r.get("decisive_agreement"), ".0%"), _fmt(r.get("kappa"), ".2f"),
                      _fmt(r.get("kendall_tau"), ".2f"), _fmt(r.get("spearman"), ".2f"))
    return table


def tag_matrix(boards: Sequence[Mapping[str, Any]], judge: str) -> Table | None:
    """Ratings of each model per tag for one judge (None when there are no tag boards)."""
    tagged = [b for b in boards if b["judge"] == judge and b["tag"]]
    if not tagged:
        return None
    table = Table(title=escape(f"judge: {judge} by tag (BT rating)"), title_justify="left")
    table.add_column("model")
    for board in tagged:
        table.add_column(escape(f"{board['tag']} ({board['n_prompts']})"), justify="right")
    models = [row["model"] for row in next(b for b in boards if b["judge"] == judge)["models"]
              if row.get("rating") is not None]
    by_tag = [{row["model"]: row for row in b["models"]} for b in tagged]
    for model in models:
        table.add_row(escape(model), *(_fmt(rows.get(model, {}).get("rating"), ".0f")
                               + ("*" if rows.get(model, {}).get("separated") else "")
                               for rows in by_tag))
    return table


def judge_stats_lines(stats: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per judge with run-level stats (VLM position bias and cost, CLIP
    truncations and embedding-cache counts)."""
    lines = []
    for judge, s in stats.items():
        if "position_bias_rate" in s:
            rate = s.get("position_bias_rate")
            cost = s.get("cost_usd")
            lines.append(
                f"{judge}: position-bias rate {_fmt(rate, '.1%')} ({s.get('inconsistent', 0)} of "
                f"{s.get('consistent', 0) + s.get('inconsistent', 0)} pairs changed winner "
                f"under swap), {s.get('failed', 0)} failed"
                + (f", judge cost ${cost:.4f}" if cost is not None else ""))
        elif "backbone_images_encoded" in s:
            truncated = (f"{s['truncated_prompts']} prompts truncated to the text context; "
                         if "truncated_prompts" in s else "")
            lines.append(
                f"{judge}: {truncated}CLIP backbone (shared by judges on the same model): "
                f"{s.get('backbone_images_encoded', 0)} images encoded, "
                f"{s.get('backbone_images_from_memory', 0) + s.get('backbone_images_from_store', 0)}"
                f" served from the embedding cache")
        if s.get("kwise"):  # k images per call: slot bias and what the reordering flipped
            lines.append(kwise_line(judge, s["kwise"]))
        if s.get("question_sources"):  # question-based judges: where the questions came from
            sources = ", ".join(f"{n} from {src}" for src, n in s["question_sources"].items())
            lines.append(f"{judge}: questions of {sources} prompt(s)")
        if s.get("note"):
            lines.append(f"{judge}: {s['note']}")
    return lines


def kwise_line(judge: str, k: Mapping[str, Any]) -> str:
    """e.g. 'vlm: k=4 per call; picked best by slot 31% 24% 22% 23% (no bias: 25%); the
    second slot order flipped 12% of pairs (ties now)'."""
    parts = [f"{judge}: k={k['k']} images per call"]
    if k.get("best_share_by_slot"):
        shares = " ".join(f"{v:.0%}" for v in k["best_share_by_slot"])
        parts.append(f"picked best by slot {shares} (no bias: {k['best_share_expected']:.0%}"
                     f", over {k['ranking_calls_with_one_best']} calls)")
    if k.get("reorder_flip_rate") is not None:
        parts.append(f"the second slot order flipped {k['reorder_flip_rate']:.1%} of pairs "
                     "(ties in the log)")
    return "; ".join(parts)


def hosted_lines(models: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per model whose generator reported queue wait / inference time / NSFW
    flags (hosted APIs such as fal), e.g.
    'flux_dev: queue wait p50 0.120s p95 0.400s; inference p50 1.10s p95 1.60s; nsfw 1'."""
    lines = []
    for m in models:
        parts = []
        if m.get("queue_wait_p50_s") is not None:
            parts.append(f"queue wait p50 {m['queue_wait_p50_s']:.3f}s "
                         f"p95 {m['queue_wait_p95_s']:.3f}s")
        if m.get("inference_p50_s") is not None:
            parts.append(f"inference p50 {m['inference_p50_s']:.3f}s "
                         f"p95 {m['inference_p95_s']:.3f}s")
        if m.get("nsfw") is not None:
            parts.append(f"nsfw {m['nsfw']}")
        if parts:
            lines.append(f"{m['model']}: " + "; ".join(parts))
    return lines


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
        if board["judge"] == "all" and board.get("definition"):
            console.print(f"judge all: {board['definition']['text']}", markup=False)
    for note in footnotes(headline):
        console.print(note, markup=False)
    if document.get("agreement"):
        console.print(agreement_table(document["agreement"], confidence))
    for controlled in document.get("style_control") or []:
        print_controlled(controlled, f"{100 * confidence:g}% CI", console)
    side_by_side = rewards_table(document.get("style_control") or [])
    if side_by_side is not None:
        console.print(side_by_side)
    if show_tags:
        for judge in judges:
            matrix = tag_matrix(document["boards"], judge)
            if matrix is not None:
                console.print(matrix)
    run = document["run"]
    for line in judge_stats_lines(run.get("judge_stats") or {}):
        console.print(line, markup=False)
    for line in hosted_lines(document["models"]):
        console.print(line, markup=False)
    console.print(cache_line(run.get("cache", {})), markup=False)
    from pathlib import Path

    extra = ", report.html" if (Path(run_dir) / "report.html").is_file() else ""
    console.print(f"wrote {run_dir}/leaderboard.json, leaderboard.csv, battles.jsonl{extra}",
                  markup=False)


def controlled_tables(controlled: Mapping[str, Any], level: str) -> list[Table]:
    """The style-controlled board (with each model's rank change against the plain board)
    and the "what this judge rewards" table: Elo per standard deviation of each feature."""
    board = Table(title="style-controlled (features held fixed)")
    for name, justify in [("rank", "right"), ("model", "left"), ("rating", "right"),
                          (level, "right"), ("raw rank", "right"), ("change", "right")]:
        board.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in controlled["rows"]:
        rated = row["rating"] is not None
        change = row["rank_change"]
        board.add_row(_fmt(row["rank"], "d"), escape(row["model"]),
                      _fmt(row["rating"]) if rated else "unrated",
                      format_ci(row["ci_low"], row["ci_high"], rated),
                      _fmt(row["raw_rank"], "d"),
                      "-" if change is None else ("=" if change == 0 else f"{change:+d}"))
    rewards = Table(title="what the judge rewards (Elo per sd of the feature)")
    for name, justify in [("feature", "left"), ("Elo / sd", "right"), (level, "right"),
                          ("sd", "right")]:
        rewards.add_column(name, justify=justify)  # type: ignore[arg-type]
    for c in controlled["coefficients"]:
        rewards.add_row(escape(c["feature"]), f"{c['elo_per_sd']:+.1f}",
                        format_ci(c["ci_low"], c["ci_high"]), f"{c['sd']:.3g}")
    return [board, rewards] if controlled["coefficients"] else [board]  # all left out: notes


def rewards_table(style_boards: Sequence[Mapping[str, Any]]) -> Table | None:
    """Every judge's coefficients side by side (Elo per sd, CI below), or None with
    fewer than two judges measured."""
    from autojudge.report.analysis import rewards_side_by_side

    judges, rows = rewards_side_by_side(style_boards)
    if not judges:
        return None
    table = Table(title="what each judge rewards, side by side (Elo per sd of the feature, "
                        "CI)")
    table.add_column("feature", justify="left")
    for judge in judges:
        table.add_column("people" if judge == "human" else judge, justify="right")
    for row in rows:
        cells = [escape(row["feature"])]
        for judge in judges:
            c = row[judge]
            cells.append("-" if c is None else
                         f"{c['elo_per_sd']:+.1f} {format_ci(c['ci_low'], c['ci_high'])}")
        table.add_row(*cells)
    return table


def print_controlled(controlled: Mapping[str, Any], level: str,
                     console: Console | None = None) -> None:
    """Both style-control tables (titled by judge in a run), or the line that says why
    there are none, and the features left out with their reason."""
    console = console or Console()
    judge = controlled.get("judge")
    if controlled["note"]:
        who = f"judge {judge}: " if judge else ""
        console.print(f"{who}style control {controlled['note']}", markup=False)
        return
    tables = controlled_tables(controlled, level)
    if judge:
        for table in tables:
            table.title = f"judge: {judge}  {table.title}"
    for table in tables:
        console.print(table)
    if controlled.get("left_out"):  # rate --control: battles without the features
        console.print(f"note: {controlled['left_out']}", markup=False)
    for feature, why in controlled["dropped"].items():
        console.print(f"note: feature {feature} left out: it {why}", markup=False)
