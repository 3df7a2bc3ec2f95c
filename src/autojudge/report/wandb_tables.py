"""What a run logs to W&B, built from the run folder (autojudge.report.rundata):

- `boards/<judge>[/<tag>]`: one table per board (rating, CI, rank, battles, win rate,
  latency p50/p95, $/image, failure rate), plus rating-vs-cost and rating-vs-latency
  scatter plots per whole-suite board;
- `battles`: prompt, tags, both images, each judge's verdict, scores and rationale;
- `prompt_grid`: per prompt and seed, every model's image with its judges' scores;
- `generations` + `latency_s/<model>` (and queue wait / inference) histograms, cost bars;
- summary metrics for cross-run charts: `rating/<judge>/<model>`, `ci_low/...`,
  `ci_high/...`, `rank/...`, `cost_usd/<model>`, `cost_per_image_usd/<model>`,
  `latency_p50_s/<model>`, `latency_p95_s/<model>`, `failure_rate/<model>`, `objective`.

Images are bounded: at most `logger.max_images` distinct images, each shrunk to
`logger.image_px` on its longest side; a cell past the budget is left empty.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Mapping

from autojudge.report import analysis
from autojudge.report.rundata import RunData, iter_headline_boards

BOARD_COLUMNS = ("model", "rank", "rating", "ci_low", "ci_high", "ci", "battles", "wins",
                 "losses", "ties", "win_rate", "latency_p50_s", "latency_p95_s",
                 "cost_per_image_usd", "failure_rate", "separated", "provisional",
                 "component", "unrated_reason")


class ImageBudget:
    """One wandb.Image per distinct image, at most `limit` of them. Each thumbnail's PNG
    is made once per image and size and kept in the store's `derived` table (`cache`, a
    `render_cache.RenderCache`); W&B is handed it as a file in `folder`, which must
    exist until the tables holding the images are logged."""

    def __init__(self, wandb: Any, limit: int, px: int, run_dir: Any = None,
                 cache: Any = None, folder: Any = None):
        self.wandb, self.limit, self.px = wandb, max(0, int(limit)), int(px)
        self.run_dir = run_dir  # images/<model>/... links: a fallback to the store path
        self.cache, self.folder = cache, folder
        self._images: dict[str, Any] = {}

    @property
    def used(self) -> int:
        return sum(1 for v in self._images.values() if v is not None)

    def image(self, generation: Mapping[str, Any] | None, caption: str = "") -> Any:
        if not generation or generation.get("status") != "ok":
            return None
        sha = generation.get("image_sha256") or ""
        if sha not in self._images:
            self._images[sha] = self._load(generation, caption) \
                if self.used < self.limit else None
        return self._images[sha]

    def _load(self, generation: Mapping[str, Any], caption: str) -> Any:
        from pathlib import Path

        from autojudge.types import stable_hash

        sha = generation.get("image_sha256") or ""
        key = stable_hash(["wandb-thumbnail-png", 1, sha, self.px])
        png = self.cache.get_many([key]).get(key) if self.cache is not None else None
        if png is None:
            png = self._thumbnail(generation)
            if png is None:
                return None
            if self.cache is not None:
                self.cache.put_many({key: png})
        if self.folder is None:
            import io

            from PIL import Image

            with Image.open(io.BytesIO(png)) as img:
                return self.wandb.Image(img.convert("RGB"), caption=caption or None)
        path = Path(self.folder) / f"{key[:32]}.png"
        path.write_bytes(png)
        return self.wandb.Image(str(path), caption=caption or None)

    def _thumbnail(self, generation: Mapping[str, Any]) -> bytes | None:
        """PNG bytes of the image shrunk to `px` (None: no readable file)."""
        import io

        from PIL import Image

        candidates = [generation.get("image_path")]
        if self.run_dir is not None and generation.get("image"):
            candidates.append(self.run_dir / generation["image"])
        for path in (p for p in candidates if p):
            try:
                with Image.open(path) as img:
                    if self.px > 0:
                        img.thumbnail((self.px, self.px))
                    rgb = img.convert("RGB")
            except Exception:  # store cleaned since the run: try the next, else no image
                continue
            buffer = io.BytesIO()
            rgb.save(buffer, format="PNG")
            return buffer.getvalue()
        return None


def board_key(board: Mapping[str, Any]) -> str:
    return f"boards/{board['judge']}" + (f"/{board['tag']}" if board["tag"] else "")


def log_boards(run: Any, wandb: Any, data: RunData) -> None:
    """One table per board, and the two scatter plots per whole-suite board."""
    stats = {m["model"]: m for m in data.document.get("models", [])}
    headline = {id(b) for b in iter_headline_boards(data.document)}
    payload: dict[str, Any] = {}
    for board in data.document["boards"]:
        rows = analysis.board_rows(board, stats)
        table = wandb.Table(columns=list(BOARD_COLUMNS))
        for r in rows:
            table.add_data(*[r["ci_text"] if c == "ci" else r.get(c) for c in BOARD_COLUMNS])
        key = board_key(board)
        payload[key] = table
        if id(board) not in headline:
            continue
        for xkey, label in (("cost_per_image_usd", "cost"), ("latency_p50_s", "latency")):
            points = [r for r in rows if r.get("rating") is not None and r.get(xkey) is not None]
            if points:
                scatter = wandb.Table(columns=["model", xkey, "rating"],
                                      data=[[r["model"], r[xkey], r["rating"]] for r in points])
                payload[f"{key}/rating_vs_{label}"] = wandb.plot.scatter(
                    scatter, xkey, "rating", title=f"{board['judge']}: rating vs {label}")
    run.log(payload)


def _by_request(data: RunData) -> dict[tuple[str, str, int], Mapping[str, Any]]:
    return {(g["model"], g["prompt_id"], int(g["seed"])): g for g in data.generations}


def log_prompt_grid(run: Any, wandb: Any, data: RunData, budget: ImageBudget) -> None:
    """Per prompt and seed, one image column per model (caption: the judges' scores)."""
    gens = _by_request(data)
    cells = analysis.judge_cells(data.judges, data.scores, data.battles)
    table = wandb.Table(columns=["prompt_id", "seed", "prompt", "tags", *data.models])
    for pid, seed in analysis.prompt_order(data.generations):
        prompt = data.prompts.get(pid) or {}
        images = [budget.image(gens.get((m, pid, seed)),
                               "; ".join(cells.get((m, pid, seed), [])) or m)
                  for m in data.models]
        table.add_data(pid, seed, prompt.get("text", ""), ", ".join(prompt.get("tags") or []),
                       *images)
    run.log({"prompt_grid": table})


def log_battles(run: Any, wandb: Any, data: RunData, budget: ImageBudget,
                max_rows: int) -> None:
    """One row per (prompt, seed, pair of models), each judge's verdict side by side."""
    judges = [j for j in data.judges if any(b.get("judge") == j for b in data.battles)]
    rows: dict[tuple[str, int, str, str], dict[str, Any]] = {}
    for b in data.battles:
        pair = (b["prompt_id"], int(b["seed"]), b["model_a"], b["model_b"])
        flipped = (pair[0], pair[1], pair[3], pair[2])
        key = flipped if flipped in rows else pair
        if key not in rows and len(rows) >= max_rows:
            continue  # the table is full: later battles only fill rows already there
        row = rows.setdefault(key, {"tags": b.get("tags") or []})
        same = key == pair
        winner = {"model_a": b["model_a"], "model_b": b["model_b"]}.get(b["winner"], b["winner"])
        row[b["judge"]] = (winner, b.get("score_a") if same else b.get("score_b"),
                           b.get("score_b") if same else b.get("score_a"), b.get("rationale"))
    columns = ["prompt_id", "seed", "prompt", "tags", "model_a", "model_b", "image_a",
               "image_b"]
    for j in judges:
        columns += [f"{j}: winner", f"{j}: score_a", f"{j}: score_b", f"{j}: rationale"]
    table = wandb.Table(columns=columns)
    gens = _by_request(data)
    for (pid, seed, a, b), row in rows.items():
        prompt = data.prompts.get(pid) or {}
        verdicts = []
        for j in judges:
            verdicts += list(row.get(j, (None, None, None, None)))
        table.add_data(pid, seed, prompt.get("text", ""), ", ".join(row["tags"]), a, b,
                       budget.image(gens.get((a, pid, seed)), a),
                       budget.image(gens.get((b, pid, seed)), b), *verdicts)
    run.log({"battles": table})


def log_costs_and_latency(run: Any, wandb: Any, data: RunData) -> None:
    """Per-image latency (queue wait and inference where the generator reports them),
    histograms per model, and cost per image and per run as bar charts."""
    table = wandb.Table(columns=["model", "prompt_id", "seed", "status", "latency_s",
                                 "queue_wait_s", "inference_s", "cost_usd", "cached"])
    series: dict[str, list[float]] = defaultdict(list)
    for g in data.generations:
        meta = g.get("meta") or {}
        queue, infer = meta.get("queue_wait_s"), meta.get("inference_time_s")
        table.add_data(g["model"], g["prompt_id"], g["seed"], g.get("status"),
                       g.get("latency_s"), queue, infer, g.get("cost_usd"), g.get("cached"))
        if g.get("status") == "ok":
            series[f"latency_s/{g['model']}"].append(float(g.get("latency_s") or 0.0))
            for name, value in (("queue_wait_s", queue), ("inference_s", infer)):
                if isinstance(value, (int, float)):
                    series[f"{name}/{g['model']}"].append(float(value))
    payload: dict[str, Any] = {"generations": table}
    payload.update({key: wandb.Histogram(values) for key, values in series.items() if values})
    models = data.document.get("models", [])
    for key, title in (("cost_per_image_usd", "$ per image"), ("cost_usd", "$ per run")):
        rows = [[m["model"], m.get(key)] for m in models if m.get(key) is not None]
        if rows:
            payload[f"cost/{key}"] = wandb.plot.bar(
                wandb.Table(columns=["model", key], data=rows), "model", key, title=title)
    run.log(payload)


def summary_metrics(document: Mapping[str, Any]) -> dict[str, Any]:
    """Flat metrics for charts across runs (see the module docstring). An open CI side
    or an unrated model is simply absent: W&B has no null to draw."""
    out: dict[str, Any] = {}
    for board in document["boards"]:
        if board["tag"] is not None:
            continue
        for row in board["models"]:
            for key in ("rating", "ci_low", "ci_high", "rank", "battles"):
                if row.get(key) is not None:
                    out[f"{key}/{board['judge']}/{row['model']}"] = row[key]
    for m in document.get("models", []):
        for key in ("cost_usd", "cost_per_image_usd", "latency_p50_s", "latency_p95_s",
                    "failure_rate", "images", "failed"):
            if m.get(key) is not None:
                out[f"{key}/{m['model']}"] = m[key]
    objective = (document.get("run") or {}).get("objective") or {}
    if objective.get("value") is not None:
        out["objective"] = objective["value"]
    return out
