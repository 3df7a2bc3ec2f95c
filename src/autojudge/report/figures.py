"""The report's charts, drawn with matplotlib (Agg, no display) as PNG bytes: the
same files go to `plots/*.png` for papers and, base64-encoded, into report.html.

Honest drawing: a CI side the data did not bound is an arrow running to the edge of the
plot (never a whisker at the prior's value), a model without a CI is a bare point, an
unrated model is listed under the chart with its reason, and a board whose models were
never all linked by battles colours its groups and says so in the title.
"""
from __future__ import annotations

import io
import math
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

# Model names and suite text are data, never LaTeX: "$" must print as "$".
_RC = {"text.parse_math": False, "font.size": 9, "axes.titlesize": 10,
       "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": 100}
_GROUP_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
DPI = 110


class _Figures:
    """The little of pyplot the charts use, on bare `Figure`s: no global backend switch
    and no figure registry, so a notebook that calls the pipeline keeps its own backend."""

    @staticmethod
    def subplots(figsize: tuple[float, float]) -> tuple[Any, Any]:
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize)
        return fig, fig.subplots()

    @staticmethod
    def close(fig: Any) -> None:
        """Nothing to release: a bare Figure is freed with its last reference."""


@contextmanager
def pyplot(cache_dir: str | Path | None = None) -> Iterator[Any]:
    """A figure factory with the report's style (rendered by Agg when saved as PNG). Its
    font cache goes to MPLCONFIGDIR if set, else `cache_dir` (the autojudge store), so a
    run writes nothing under the home folder when the store is elsewhere."""
    if cache_dir is not None and "MPLCONFIGDIR" not in os.environ:
        folder = Path(cache_dir) / "matplotlib"
        folder.mkdir(parents=True, exist_ok=True)
        os.environ["MPLCONFIGDIR"] = str(folder)
    import matplotlib

    with matplotlib.rc_context(_RC):
        yield _Figures()


def png_bytes(fig: Any) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight",
                metadata={"Software": None})
    return buffer.getvalue()


def _label(row: Mapping[str, Any]) -> str:
    return (row["model"] + ("*" if row.get("separated") else "")
            + (" ~" if row.get("provisional") else ""))


def _limits(values: Sequence[float], pad: float = 0.12) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    span = hi - lo or max(abs(hi), 1.0) * 0.1
    return lo - pad * span, hi + pad * span


def _interval(ax: Any, horizontal: bool, pos: float, value: float, low: Any, high: Any,
              edges: tuple[float, float], color: str) -> None:
    """One CI: a whisker where bounded, an arrow to the plot's edge where open."""
    def seg(a: float, b: float, arrow: bool) -> None:
        xy, xytext = ((b, pos), (a, pos)) if horizontal else ((pos, b), (pos, a))
        ax.annotate("", xy=xy, xytext=xytext, annotation_clip=False,
                    arrowprops={"arrowstyle": "-|>" if arrow else "|-|,widthA=0,widthB=0.3",
                                "color": color, "lw": 1.4, "shrinkA": 0, "shrinkB": 0})

    seg(value, edges[0] if low is None else low, low is None)
    seg(value, edges[1] if high is None else high, high is None)


def leaderboard_figure(plt: Any, board: Mapping[str, Any], title: str,
                       confidence: float) -> Any:
    """Ratings with CI error bars, best at the top; open sides as arrows to the edge."""
    rated = [r for r in board["models"] if r.get("rating") is not None]
    unrated = [r for r in board["models"] if r.get("rating") is None]
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.38 * max(1, len(rated))
                                    + 0.18 * len(unrated)))
    if rated:
        finite = [v for r in rated for v in (r["rating"], r.get("ci_low"), r.get("ci_high"))
                  if v is not None]
        edges = _limits(finite)
        ax.set_xlim(*edges)
        multi = not board["connected"]
        for i, row in enumerate(rated):
            y = len(rated) - 1 - i
            color = _GROUP_COLORS[int(row.get("component") or 0) % len(_GROUP_COLORS)] \
                if multi else _GROUP_COLORS[0]
            if row.get("ci_method") is not None:
                _interval(ax, True, y, row["rating"], row.get("ci_low"), row.get("ci_high"),
                          edges, color)
            ax.plot([row["rating"]], [y], "o", color=color, zorder=3)
        ax.set_yticks(range(len(rated)))
        ax.set_yticklabels([_label(r) + (f" [g{int(r.get('component') or 0) + 1}]"
                                         if multi else "") for r in reversed(rated)])
        ax.set_ylim(-0.7, len(rated) - 0.3)
        ax.set_xlabel(f"rating (Bradley-Terry, Elo scale) with {confidence:.0%} CI")
        ax.grid(axis="x", alpha=0.3)
    else:
        ax.set_axis_off()
    notes = [f"unrated: {r['model']} ({r.get('unrated_reason') or 'no battles'})"
             for r in unrated]
    if any(r.get("separated") for r in rated):
        notes.append("* open on one side: arrow = the data give no bound that way")
    if notes:  # under the axis label, whatever the figure's height
        ax.annotate("\n".join(notes), xy=(0, 0), xycoords="axes fraction",
                    xytext=(0, -40 if rated else 0), textcoords="offset points",
                    fontsize=8, va="top", ha="left", annotation_clip=False)
    ax.set_title(title, loc="left")
    return fig


def text_color(rgba: Sequence[float]) -> str:
    """Black or white, whichever reads better on a cell of colour `rgba` (WCAG relative
    luminance; 0.179 is where black and white have equal contrast)."""
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(float(c)) for c in rgba[:3])
    return "black" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.179 else "white"


def _cell_text_color(image: Any, value: float) -> str:
    """The text colour for a cell of `image` (an imshow) holding `value`."""
    return text_color(image.cmap(image.norm(value)))


def tag_heatmap_figure(plt: Any, models: Sequence[str], tags: Sequence[str],
                       cells: Mapping[tuple[str, str], Mapping[str, Any]], judge: str) -> Any:
    """Model x tag matrix of per-tag ratings (blank where unrated; * one side open)."""
    import numpy as np

    values = np.full((len(models), len(tags)), np.nan)
    for i, m in enumerate(models):
        for j, t in enumerate(tags):
            rating = (cells.get((m, t)) or {}).get("rating")
            values[i, j] = np.nan if rating is None else rating
    fig, ax = plt.subplots(figsize=(1.6 + 0.75 * len(tags), 1.0 + 0.42 * len(models)))
    finite = values[np.isfinite(values)]
    spread = max(float(np.max(np.abs(finite - 1000.0))) if finite.size else 1.0, 1.0)
    image = ax.imshow(np.ma.masked_invalid(values), cmap="RdBu", vmin=1000 - spread,
                      vmax=1000 + spread, aspect="auto")
    for i, m in enumerate(models):
        for j, t in enumerate(tags):
            cell = cells.get((m, t)) or {}
            text = "-" if cell.get("rating") is None else \
                f"{cell['rating']:.0f}" + ("*" if cell.get("separated") else "")
            if cell.get("rating") is not None and cell.get("connected") is False:
                text += f"\ng{int(cell.get('component') or 0) + 1}"  # not comparable across
            color = "black" if cell.get("rating") is None else \
                _cell_text_color(image, cell["rating"])
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color=color)
    ax.set_xticks(range(len(tags)))
    ax.set_xticklabels(list(tags), rotation=40, ha="right")
    ax.set_yticks(range(len(models)))
    ax.set_yticklabels(list(models))
    fig.colorbar(image, ax=ax, fraction=0.04, label="rating")
    ax.set_title(f"judge {judge}: rating per tag (* open on one side, - unrated, "
                 "gN: a group never linked to the others)", loc="left")
    return fig


def win_matrix_figure(plt: Any, models: Sequence[str],
                      matrix: Mapping[tuple[str, str], tuple[float, int]], judge: str) -> Any:
    """Row model's head-to-head win rate against the column model (ties half), with n;
    rows and columns in the order of `models` (the report passes them best-rated first)."""
    import numpy as np

    values = np.full((len(models), len(models)), np.nan)
    for (a, b), (rate, _) in matrix.items():
        values[models.index(a), models.index(b)] = rate
    fig, ax = plt.subplots(figsize=(1.8 + 0.8 * len(models), 1.2 + 0.6 * len(models)))
    image = ax.imshow(np.ma.masked_invalid(values), cmap="RdYlGn", vmin=0, vmax=1)
    for (a, b), (rate, n) in matrix.items():
        ax.text(models.index(b), models.index(a), f"{rate:.0%}\nn={n}", ha="center",
                va="center", fontsize=7, color=_cell_text_color(image, rate))
    ax.set_xticks(range(len(models)))
    ax.set_xticklabels(list(models), rotation=40, ha="right")
    ax.set_yticks(range(len(models)))
    ax.set_yticklabels(list(models))
    fig.colorbar(image, ax=ax, fraction=0.04, label="row wins (ties half)")
    ax.set_title(f"judge {judge}: head-to-head win rate (row vs column)", loc="left")
    return fig


def tradeoff_figure(plt: Any, rows: Sequence[Mapping[str, Any]], xkey: str, xlabel: str,
                    front: Sequence[str], title: str) -> Any:
    """Rating (with CI; open sides as arrows) against cost or latency; the Pareto front
    (no model better on both) joined by a step line."""
    points = [r for r in rows if r.get("rating") is not None and r.get(xkey) is not None]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    if not points:
        ax.set_axis_off()
        ax.set_title(f"{title}: no rated model reports {xlabel}", loc="left")
        return fig
    finite = [v for r in points for v in (r["rating"], r.get("ci_low"), r.get("ci_high"))
              if v is not None]
    edges = _limits(finite)
    ax.set_ylim(*edges)
    xs = [float(r[xkey]) for r in points]
    ax.set_xlim(*_limits(xs, 0.15))
    for r in points:
        on_front = r["model"] in front
        color = "#d62728" if on_front else "#1f77b4"
        if r.get("ci_method") is not None:
            _interval(ax, False, float(r[xkey]), r["rating"], r.get("ci_low"),
                      r.get("ci_high"), edges, color)
        ax.plot([r[xkey]], [r["rating"]], "o", color=color, zorder=3)
        ax.annotate(_label(r), (r[xkey], r["rating"]), textcoords="offset points",
                    xytext=(6, 4), fontsize=8)
    line = sorted(((float(r[xkey]), r["rating"]) for r in points if r["model"] in front))
    if line:
        ax.step([x for x, _ in line], [y for _, y in line], where="post", color="#d62728",
                alpha=0.5, label="Pareto front (point ratings)")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rating")
    ax.grid(alpha=0.3)
    ax.set_title(title, loc="left")
    return fig


def agreement_figure(plt: Any, rows: Sequence[Mapping[str, Any]]) -> Any:
    """Judge x judge agreement on shared battles (diagonal 1)."""
    import numpy as np

    judges = sorted({r["judge_a"] for r in rows} | {r["judge_b"] for r in rows})
    values = np.eye(len(judges))
    values[values == 0] = np.nan
    for r in rows:
        if r.get("agreement") is not None:
            i, j = judges.index(r["judge_a"]), judges.index(r["judge_b"])
            values[i, j] = values[j, i] = r["agreement"]
    fig, ax = plt.subplots(figsize=(1.8 + 0.8 * len(judges), 1.2 + 0.6 * len(judges)))
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", vmin=0, vmax=1)
    for i in range(len(judges)):
        for j in range(len(judges)):
            if not math.isnan(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.0%}", ha="center", va="center", fontsize=8,
                        color=_cell_text_color(image, values[i, j]))
    ax.set_xticks(range(len(judges)))
    ax.set_xticklabels(judges, rotation=40, ha="right")
    ax.set_yticks(range(len(judges)))
    ax.set_yticklabels(judges)
    fig.colorbar(image, ax=ax, fraction=0.04, label="agreement")
    ax.set_title("judge agreement on shared battles", loc="left")
    return fig
