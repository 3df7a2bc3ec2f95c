"""report.html: one self-contained page per run (and per `compare`), plus plots/*.png.

Built only from the run folder's files (autojudge.report.rundata), so the pipeline, the
`compare` tool and `python -m autojudge.report RUN_DIR` make the same page. Charts are
matplotlib PNGs (also written to plots/ for papers); images are small base64 JPEG
thumbnails; all text goes through Jinja2 autoescaping.

Example:
    >>> build_report("runs/2026-01-01_starter")          # doctest: +SKIP
    PosixPath('runs/2026-01-01_starter/report.html')
"""
from __future__ import annotations

import base64
import io
import json
import re
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from autojudge.experiment.schema import ReportConfig, stored_section
from autojudge.report import analysis, figures
from autojudge.report.redact import redact
from autojudge.report.render_cache import RenderCache, thumbnail_key
from autojudge.report.rundata import CONFIG_FILE, RunData, iter_headline_boards, load_run
from autojudge.report.template import CSS, TEMPLATE
from autojudge.report.terminal import board_title, cache_line, footnotes, format_ci
from autojudge.runtime.atomic_files import atomic_write_bytes, atomic_write_text

REPORT_FILE = "report.html"
PLOTS_DIR = "plots"


@dataclass(frozen=True)
class ReportOptions:
    """How the page is built.

    Attributes:
        thumbnail_px: longest side of an embedded image.
        max_prompts: prompt/seed rows with image grids (the rest are counted, not shown).
        plots: also write plots/*.png beside the page.
        cache_dir: matplotlib's font cache (the store root), unless MPLCONFIGDIR is set.
    """

    thumbnail_px: int = ReportConfig.thumbnail_px  # the `report` settings' defaults
    max_prompts: int = ReportConfig.max_prompts
    plots: bool = True
    cache_dir: str | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None, **overrides: Any) -> "ReportOptions":
        report = stored_section(config, "report")
        store = ((config or {}).get("store") or {}).get("root")
        values = {"thumbnail_px": report.thumbnail_px, "max_prompts": report.max_prompts,
                  "cache_dir": str(Path(store).expanduser()) if store else None}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._") or "x"


def data_uri(png: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(png).decode("ascii")


def thumbnail_jpeg(path: str | Path, px: int) -> bytes | None:
    """JPEG bytes of the image at `path`, longest side `px` (None if unreadable)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.thumbnail((px, px))
            rgb = image.convert("RGB")
    except Exception:  # a missing or damaged image shows as a placeholder, never a crash
        return None
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=82, optimize=True)
    return buffer.getvalue()


class _Charts:
    """Each chart once: PNG bytes for plots/ and a data URI for the page, from the
    store where the same chart was drawn before (`render_cache`); matplotlib
    is loaded only for a chart that must be drawn."""

    def __init__(self, cache: RenderCache, cache_dir: str | None):
        self.cache, self.cache_dir = cache, cache_dir
        self.files: dict[str, bytes] = {}
        self._stack = ExitStack()
        self._plt: Any = None

    @property
    def plt(self) -> Any:
        if self._plt is None:
            self._plt = self._stack.enter_context(figures.pyplot(self.cache_dir))
        return self._plt

    def add(self, name: str, draw: Callable[..., Any], *inputs: Any) -> str:
        """The chart `draw(plt, *inputs)`, named `name`."""
        png = self.cache.chart(name, [_jsonable(x) for x in inputs],
                               lambda: figures.png_bytes(draw(self.plt, *inputs)))
        self.files[f"{safe_name(name)}.png"] = png
        return data_uri(png)

    def close(self) -> None:
        self._stack.close()


def _jsonable(value: Any) -> Any:
    """`value` with arrays as lists: a chart's key must hold every number it shows."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _unit(value: Any, spec: str, prefix: str = "", suffix: str = "") -> str:
    return "-" if value is None else f"{prefix}{format(value, spec)}{suffix}"


def _board_context(board: Mapping[str, Any], stats: Mapping[str, Any], charts: _Charts,
                   confidence: float) -> dict[str, Any]:
    title = board_title(board)
    chart = charts.add(f"leaderboard_{board['judge']}", figures.leaderboard_figure, board,
                       title, confidence)
    multi = not board["connected"]
    rows = []
    for r in analysis.board_rows(board, stats):
        rows.append({**r, "group": f"g{int(r['component']) + 1}"
                     if multi and r.get("rating") is not None and r.get("component") is not None
                     else None,
                     "win_rate_text": analysis.fmt_number(r["win_rate"], ".1%"),
                     "p50_text": _unit(r["latency_p50_s"], ".3f", suffix="s"),
                     "p95_text": _unit(r["latency_p95_s"], ".3f", suffix="s"),
                     "cost_text": _unit(r["cost_per_image_usd"], ".4f", prefix="$"),
                     "failed_text": analysis.fmt_number(r["failure_rate"], ".0%")})
    definition = (board.get("definition") or {}).get("text")
    return {"judge": board["judge"], "title": title, "chart": chart, "rows": rows,
            "connected": bool(board["connected"]),
            "n_components": board.get("n_components"), "definition": definition,
            "notes": footnotes([board])}


def _tradeoff_context(board: Mapping[str, Any], stats: Mapping[str, Any],
                      charts: _Charts) -> dict[str, Any]:
    rows = analysis.board_rows(board, stats)
    out: dict[str, Any] = {"judge": board["judge"], "title": f"judge {board['judge']}"}
    for key, xkey, label in (("latency", "latency_p50_s", "latency p50 (s)"),
                             ("cost", "cost_per_image_usd", "$ per image")):
        points = {r["model"]: (r["rating"], float(r[xkey])) for r in rows
                  if r.get("rating") is not None and r.get(xkey) is not None}
        front = analysis.pareto_front(points)
        out[f"front_{key}"] = front
        out[f"{key}_note"] = None
        if points and all(x == 0 for _, x in points.values()):
            # every point on one vertical line at 0: a chart that says nothing but "0"
            out[key], out[f"{key}_note"] = None, (
                f"No rating vs {label} chart: every rated model's {label} is 0.")
            continue
        out[key] = charts.add(f"quality_vs_{key}_{board['judge']}", figures.tradeoff_figure,
                              rows, xkey, label, front,
                              f"judge {board['judge']}: rating vs {label}")
    return out


def best_first(board: Mapping[str, Any], models: Sequence[str]) -> list[str]:
    """`models` ordered by the board's rating, best first; models the board leaves
    unrated (or does not hold) follow in their given order."""
    rating = {r["model"]: r["rating"] for r in board["models"]
              if r.get("rating") is not None}
    return sorted(models, key=lambda m: (m not in rating, -rating.get(m, 0.0)))


def _matrix_context(board: Mapping[str, Any], data: RunData, charts: _Charts
                    ) -> dict[str, Any]:
    """The win-rate matrix of one board, rows and columns best-rated first (a pooled
    sweep lists its models in job order, which says nothing about who wins)."""
    models = best_first(board, data.models)
    matrix = analysis.win_matrix(data.battles, board["judge"], models)
    return {"judge": board["judge"], "chart": charts.add(
        f"winrate_{board['judge']}", figures.win_matrix_figure, models, matrix,
        board["judge"])}


def _agreement_context(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    pct = lambda v: analysis.fmt_number(v, ".0%")  # noqa: E731
    num = lambda v: analysis.fmt_number(v, ".2f")  # noqa: E731
    return [{"judge_a": r["judge_a"], "judge_b": r["judge_b"], "n_shared": r.get("n_shared"),
             "agree": pct(r.get("agreement")),
             "ci": "-" if r.get("ci_low") is None else f"{pct(r['ci_low'])} .. {pct(r['ci_high'])}",
             "decisive": pct(r.get("decisive_agreement")), "kappa": num(r.get("kappa")),
             "tau": num(r.get("kendall_tau")), "rho": num(r.get("spearman"))} for r in rows]


def _style_context(boards: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The controlled board and the coefficient table of each judge, as display cells."""
    num = lambda v: analysis.fmt_number(v, ".0f")  # noqa: E731
    out = []
    for b in boards:
        rows = [{"model": r["model"], "rank": "-" if r["rank"] is None else r["rank"],
                 "rating": num(r["rating"]) if r["rating"] is not None else "unrated",
                 "ci": format_ci(r["ci_low"], r["ci_high"], r["rating"] is not None),
                 "raw_rank": "-" if r["raw_rank"] is None else r["raw_rank"],
                 "change": "-" if r["rank_change"] is None else
                 ("=" if r["rank_change"] == 0 else f"{r['rank_change']:+d}")}
                for r in b["rows"]]
        coefs = [{"feature": c["feature"], "elo": f"{c['elo_per_sd']:+.1f}",
                  "ci": format_ci(c["ci_low"], c["ci_high"]), "sd": f"{c['sd']:.3g}"}
                 for c in b["coefficients"]]
        out.append({"judge": b["judge"], "features": ", ".join(b["features"]),
                    "note": b["note"], "rows": rows, "coefficients": coefs,
                    "dropped": [f"{k}: it {v}" for k, v in b["dropped"].items()]})
    return out


def _rewards_context(boards: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Every judge's coefficients side by side (people as "people"), as display cells."""
    judges, rows = analysis.rewards_side_by_side(boards)
    cell = lambda c: "-" if c is None else (  # noqa: E731
        f"{c['elo_per_sd']:+.1f} {format_ci(c['ci_low'], c['ci_high'])}")
    return {"judges": ["people" if j == "human" else j for j in judges],
            "rows": [{"feature": r["feature"], "cells": [cell(r[j]) for j in judges]}
                     for r in rows]}


def _prompt_context(data: RunData, options: ReportOptions, cache: RenderCache
                    ) -> tuple[list[dict[str, Any]], int]:
    """Image grids for the first `max_prompts` (prompt, seed) rows."""
    order = analysis.prompt_order(data.generations)
    cells = analysis.judge_cells(data.judges, data.scores, data.battles)
    by_key = {(g["model"], g["prompt_id"], int(g["seed"])): g for g in data.generations}
    shown = order[:max(0, options.max_prompts)]
    wanted = {g["image_sha256"]: g for pid, seed in shown for m in data.models
              if (g := by_key.get((m, pid, seed))) and g.get("status") == "ok"}
    thumbs = _thumbnails(data.run_dir, wanted, options.thumbnail_px, cache)
    out = []
    for pid, seed in shown:
        prompt = data.prompts.get(pid) or {"id": pid, "text": "", "tags": []}
        out.append({"id": pid, "seed": seed, "text": prompt.get("text") or "",
                    "expected_text": prompt.get("expected_text"),
                    "tags": list(prompt.get("tags") or []),
                    "cells": [_cell(m, by_key.get((m, pid, seed)),
                                    cells.get((m, pid, seed), []), thumbs)
                              for m in data.models]})
    return out, len(order)


def _thumbnails(run_dir: Path, generations: Mapping[str, Mapping[str, Any]],
                px: int, cache: RenderCache) -> dict[str, str | None]:
    """sha -> data URI: from the store's derived table, the rest made in threads (Pillow
    releases the GIL while it decodes, resizes and encodes, so this scales with cores)."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    def one(g: Mapping[str, Any]) -> bytes | None:
        candidates = [g.get("image_path"), run_dir / g["image"] if g.get("image") else None]
        return next((jpeg for p in candidates if p and (jpeg := thumbnail_jpeg(p, px))), None)

    keys = {sha: thumbnail_key(sha, px) for sha in generations}
    found = cache.get_many(list(keys.values()))
    todo = [sha for sha in generations if keys[sha] not in found]
    made: dict[str, bytes | None] = {}
    if todo:
        with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 1)) as pool:
            made = dict(zip(todo, pool.map(one, (generations[s] for s in todo))))
        cache.put_many({keys[sha]: jpeg for sha, jpeg in made.items() if jpeg is not None})
    out = {}
    for sha in generations:
        jpeg = found.get(keys[sha]) or made.get(sha)
        out[sha] = data_uri(jpeg, "image/jpeg") if jpeg else None
    return out


def _cell(model: str, g: Mapping[str, Any] | None, lines: list[str],
          thumbs: Mapping[str, str | None]) -> dict[str, Any]:
    if g is None:
        return {"model": model, "src": None, "missing": "not generated", "lines": lines}
    if g.get("status") != "ok":
        return {"model": model, "src": None, "lines": lines,
                "missing": f"failed: {g.get('failure_kind')}"}
    src = thumbs.get(g.get("image_sha256") or "")
    return {"model": model, "src": src, "lines": lines,
            "missing": None if src else "image not found (store cleaned?)"}


def _objective_text(run: Mapping[str, Any]) -> dict[str, Any] | None:
    record = run.get("objective")
    if not record:
        return None
    value = record.get("value")
    text = f"{value:.4g}" if isinstance(value, (int, float)) else \
        f"none ({record.get('reason')})"
    return {**record, "text": text}


def render_report(data: RunData, options: ReportOptions = ReportOptions()
                  ) -> tuple[str, dict[str, bytes]]:
    """(the page's HTML, plots/ file name -> PNG bytes)."""
    import jinja2
    from markupsafe import Markup

    document, run = data.document, data.document["run"]
    confidence = float(run["ratings"]["confidence"])  # the reader filled any default
    stats = {m["model"]: m for m in document.get("models", [])}
    headline = list(iter_headline_boards(document))
    with RenderCache.open(options.cache_dir) as cache:
        charts = _Charts(cache, options.cache_dir)
        try:
            boards = [_board_context(b, stats, charts, confidence) for b in headline]
            heatmaps = []
            for board in headline:
                models, tags, cells = analysis.tag_matrix(document["boards"], board["judge"])
                if tags:
                    heatmaps.append({"judge": board["judge"], "chart": charts.add(
                        f"tags_{board['judge']}", figures.tag_heatmap_figure, models, tags,
                        cells, board["judge"])})
            matrices = [_matrix_context(b, data, charts) for b in headline]
            tradeoffs = [_tradeoff_context(b, stats, charts) for b in headline]
            agreement = document.get("agreement") or []
            agreement_chart = charts.add("agreement", figures.agreement_figure, agreement) \
                if agreement else None
        finally:
            charts.close()
        prompts, n_rows = _prompt_context(data, options, cache)
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    css = jinja2.Template(CSS).render(thumb=int(options.thumbnail_px))
    html = env.from_string(TEMPLATE).render(
        css=Markup(css), run=_run_view(run), cache_line=cache_line(run.get("cache") or {}),
        objective=_objective_text(run), boards=boards, heatmaps=heatmaps,
        matrices=matrices, tradeoffs=tradeoffs, agreement=_agreement_context(agreement),
        style=_style_context(document.get("style_control") or []),
        rewards=_rewards_context(document.get("style_control") or []),
        agreement_chart=agreement_chart, prompts=prompts, n_prompt_rows=n_rows,
        confidence_pct=f"{confidence:.0%}", thumb=int(options.thumbnail_px),
        min_tag_prompts=((data.config or {}).get("report") or {}).get("per_tag_min_prompts", 5),
        run_dir_name=data.run_dir.name)
    return html, charts.files


def _run_view(run: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("name", "suite", "models", "judges", "n_prompts", "seeds", "n_battles",
            "n_skipped", "notes")
    view = {k: run.get(k) for k in keys}
    view.update(models=list(run.get("models") or []), judges=list(run.get("judges") or []),
                seeds=list(run.get("seeds") or []), notes=list(run.get("notes") or []))
    return view


def build_report(run_dir: str | Path, options: ReportOptions | None = None) -> Path:
    """Write RUN_DIR/report.html (and plots/*.png) from the run folder's files."""
    data = load_run(run_dir)
    options = options or ReportOptions.from_config(data.config)
    html, plots = render_report(data, options)
    folder = Path(run_dir)
    if options.plots:
        target = folder / PLOTS_DIR
        target.mkdir(exist_ok=True)
        for old in target.glob("*.png"):  # a rebuild leaves no chart of a board now gone
            if old.name not in plots:
                old.unlink()
        for name, png in plots.items():
            atomic_write_bytes(target / name, png)
    path = folder / REPORT_FILE
    atomic_write_text(path, html)
    return path


def write_config(run_dir: Path, config: Mapping[str, Any]) -> Path:
    """config.json: the resolved config the run used, secrets redacted (what `compare`
    rebuilds judges from and what the report and W&B show)."""
    path = Path(run_dir) / CONFIG_FILE
    atomic_write_text(path, json.dumps(redact(dict(config)), indent=2, default=str) + "\n")
    return path


def write_report_files(run_dir: str | Path, config: Mapping[str, Any],
                       prompts: Sequence[Any]) -> Path | None:
    """What a finished run adds beside its tables: config.json, prompts.jsonl and (with
    `report.html: true`) report.html + plots/. A failure to draw the page is logged, not
    raised: the run's results are already on disk and the page can be rebuilt."""
    import logging

    from autojudge.report.rundata import write_prompts

    run_dir = Path(run_dir)
    config = dict(config)
    suite = dict(config.get("suite") or {})
    if suite.get("path") and Path(str(suite["path"])).expanduser().exists():
        suite["path"] = str(Path(str(suite["path"])).expanduser().resolve())
        config["suite"] = suite  # compare finds the suite from any working directory
    write_config(run_dir, config)
    write_prompts(run_dir, prompts)
    if not stored_section(config, "report").html:
        return None
    try:
        return build_report(run_dir, ReportOptions.from_config(config))
    except Exception as exc:  # noqa: BLE001 - the results stand without the page
        logging.getLogger(__name__).warning(
            "report.html not written (%s: %s); rebuild it with python -m autojudge.report %s",
            type(exc).__name__, exc, run_dir)
        return None
