"""report.html from a hand-made run: every section, honest CIs (open sides as arrows,
unrated models listed with the reason, disconnected boards said), escaped suite text,
nothing fetched from outside, plots/*.png beside it, rebuilt by the CLI."""
from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import assert_one_line_error, run_cli
from report_helpers import XSS

from autojudge.report import analysis, figures
from autojudge.report.html import ReportOptions, build_report, render_report
from autojudge.report.rundata import load_run

SECTIONS = ("summary", "leaderboard", "tags", "winrate", "tradeoffs", "agreement", "prompts")


def test_page_has_every_section_and_escapes_suite_text(handmade_run: Path) -> None:
    path = build_report(handmade_run)
    page = path.read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f'id="{section}"' in page, section
    assert XSS not in page and "<script" not in page.lower()
    assert html.escape(XSS, quote=False) in page or html.escape(XSS) in page
    assert "gamma&lt;b&gt;" in page and "gamma<b>" not in page
    # self-contained: no URL the browser would fetch (images are data: URIs)
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert all(src.startswith(("data:image/png;base64,", "data:image/jpeg;base64,"))
               for src in re.findall(r'<img[^>]* src="([^"]+)"', page))
    assert "Not connected: 2 groups" in page
    assert "unrated" in page and "all 6 images failed (timeout x6)" in page
    assert "&gt;= " in page and "&lt;= " in page  # open CI sides as on screen
    plots = sorted(p.name for p in (handmade_run / "plots").glob("*.png"))
    assert "leaderboard_fake.png" in plots and "agreement.png" in plots
    assert any(p.startswith("quality_vs_cost") for p in plots)
    assert all((handmade_run / "plots" / p).read_bytes()[:4] == b"\x89PNG" for p in plots)


def test_unrated_models_are_never_ranked_and_failed_images_show_a_placeholder(
        handmade_run: Path) -> None:
    page = build_report(handmade_run).read_text(encoding="utf-8")
    row = re.search(r'<tr class="unrated">(.*?)</tr>', page, re.S).group(1)
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
    assert cells[0] == "-" and cells[1] == "delta" and cells[2] == "unrated"
    assert page.count("failed: timeout") == 6  # delta's six prompts, no <img> for them


def test_open_sides_are_arrows_to_the_edge_never_whiskers(handmade_run: Path) -> None:
    board = next(b for b in json.loads((handmade_run / "leaderboard.json").read_text())["boards"]
                 if b["judge"] == "fake" and b["tag"] is None)
    rated = [r for r in board["models"] if r["rating"] is not None]
    open_sides = sum((r["ci_low"] is None) + (r["ci_high"] is None) for r in rated)
    assert open_sides >= 3  # alpha above, beta and gamma below
    with figures.pyplot() as plt:
        fig = figures.leaderboard_figure(plt, board, "t", 0.95)
        ax = fig.axes[0]
        styles = [type(a.arrow_patch.get_arrowstyle()).__name__
                  for a in ax.texts if getattr(a, "arrow_patch", None) is not None]
        left, right = ax.get_xlim()
        heads = [a.xy[0] for a in ax.texts if getattr(a, "arrow_patch", None) is not None
                 and type(a.arrow_patch.get_arrowstyle()).__name__ == "CurveFilledB"]
        plt.close(fig)
    assert styles.count("CurveFilledB") == open_sides  # one arrow per open side
    assert all(x in (left, right) for x in heads)  # each runs to the plot's edge
    assert len(styles) == 2 * len(rated)  # bounded sides are whiskers, none missing


def test_pareto_front_and_win_matrix() -> None:
    points = {"cheap_bad": (900.0, 0.01), "mid": (1000.0, 0.02), "dear_good": (1100.0, 0.05),
              "dominated": (950.0, 0.04)}
    assert analysis.pareto_front(points) == ["cheap_bad", "mid", "dear_good"]
    battles = [{"judge": "j", "model_a": "a", "model_b": "b", "winner": w}
               for w in ("model_a", "model_a", "tie", "model_b")]
    matrix = analysis.win_matrix(battles, "j", ["a", "b"])
    assert matrix[("a", "b")] == (pytest.approx(2.5 / 4), 4)
    assert matrix[("b", "a")] == (pytest.approx(1.5 / 4), 4)


def test_prompt_grid_is_bounded_and_lists_each_judge(handmade_run: Path) -> None:
    page, _ = render_report(load_run(handmade_run), ReportOptions(max_prompts=2, plots=False))
    assert "Showing 2 of 6 prompt/seed rows" in page
    assert page.count('class="prompt"') == 2
    assert "fake: 0.9" in page and re.search(r"pair: \d+W \d+L \d+T", page)


def test_cli_rebuilds_the_report_and_refuses_bad_input(handmade_run: Path, tmp_path: Path) -> None:
    proc = run_cli(["autojudge.report", str(handmade_run), "--max-prompts", "3"])
    assert proc.returncode == 0, proc.stderr
    assert (handmade_run / "report.html").is_file() and "report.html" in proc.stdout
    assert_one_line_error(run_cli(["autojudge.report", str(tmp_path / "nope")]), "not found")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(run_cli(["autojudge.report", str(empty)]), "leaderboard.json")
    (empty / "leaderboard.json").write_text("{not json")
    assert_one_line_error(run_cli(["autojudge.report", str(empty)]), "unreadable")
    assert_one_line_error(run_cli(["autojudge.report", str(empty / "leaderboard.json")]),
                          "is a file, not a folder")
    for bad in (["--max-prompts", "0"], ["--bogus"]):
        proc = run_cli(["autojudge.report", str(handmade_run), *bad])
        assert proc.returncode == 2
        assert_one_line_error(proc)


def test_report_module_imports_no_heavy_packages() -> None:
    code = ("import sys, autojudge.report.html, autojudge.compare, autojudge.sweeps.pool, "
            "autojudge.sweeps.variants; "
            "heavy = {'torch', 'wandb', 'matplotlib', 'onnxruntime'} & set(sys.modules); "
            "assert not heavy, heavy")
    check = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def _texts(fig) -> dict[str, str]:
    from matplotlib.colors import to_hex

    return {t.get_text(): to_hex(t.get_color()) for t in fig.axes[0].texts}


def test_cell_numbers_are_light_on_dark_cells_and_dark_on_light_ones() -> None:
    assert figures.text_color((0.02, 0.19, 0.38, 1.0)) == "white"  # RdBu's dark blue end
    assert figures.text_color((0.97, 0.97, 0.97, 1.0)) == "black"  # its white middle
    cells = {("best", "t"): {"rating": 1400.0}, ("mid", "t"): {"rating": 1000.0},
             ("worst", "t"): {"rating": 600.0}}
    with figures.pyplot() as plt:
        heat = _texts(figures.tag_heatmap_figure(plt, ["best", "mid", "worst"], ["t"], cells, "j"))
        wins = _texts(figures.win_matrix_figure(
            plt, ["a", "b"], {("a", "b"): (1.0, 9), ("b", "a"): (0.0, 9)}, "j"))
        even = _texts(figures.win_matrix_figure(
            plt, ["a", "b"], {("a", "b"): (0.5, 4), ("b", "a"): (0.5, 4)}, "j"))
        agree = _texts(figures.agreement_figure(
            plt, [{"judge_a": "x", "judge_b": "y", "agreement": 0.9}]))
    # both ends of RdBu are dark: white numbers; its middle is light: black numbers
    assert heat == {"1400": "#ffffff", "1000": "#000000", "600": "#ffffff"}
    assert wins == {"100%\nn=9": "#ffffff", "0%\nn=9": "#ffffff"}  # RdYlGn's dark ends
    assert set(even.values()) == {"#000000"}  # its pale yellow middle
    assert agree["90%"] == "#000000" and agree["100%"] == "#000000"  # viridis' light end


def _with_costs(run_dir: Path, cost: float) -> Path:
    path = run_dir / "leaderboard.json"
    document = json.loads(path.read_text())
    for model in document["models"]:
        model["cost_per_image_usd"] = cost
    path.write_text(json.dumps(document))
    return run_dir


def test_all_zero_costs_give_a_note_not_a_flat_chart(handmade_run: Path) -> None:
    page, plots = render_report(load_run(_with_costs(handmade_run, 0.0)), ReportOptions())
    assert not [p for p in plots if p.startswith("quality_vs_cost")]
    assert [p for p in plots if p.startswith("quality_vs_latency")]
    assert "No rating vs $ per image chart: every rated model&#39;s $ per image is 0." in page
    assert 'alt="rating vs cost' not in page and 'alt="rating vs latency' in page


def test_cost_chart_axis_spans_the_costs(handmade_run: Path) -> None:
    data = load_run(_with_costs(handmade_run, 0.002))
    page, plots = render_report(data, ReportOptions())
    assert [p for p in plots if p.startswith("quality_vs_cost")]
    assert "every rated model" not in page


def test_win_matrix_rows_and_columns_are_best_rated_first(handmade_run: Path,
                                                          monkeypatch) -> None:
    drawn: dict[str, list[str]] = {}
    draw = figures.win_matrix_figure

    def spy(plt, models, matrix, judge):
        drawn[judge] = list(models)
        return draw(plt, models, matrix, judge)

    monkeypatch.setattr(figures, "win_matrix_figure", spy)
    data = load_run(handmade_run)
    data.models.reverse()  # the order jobs or config listed them says nothing
    render_report(data, ReportOptions(plots=False))
    for board in (b for b in data.document["boards"] if b["tag"] is None
                  and b["judge"] in drawn):
        ratings = {r["model"]: r["rating"] for r in board["models"]}
        rated = [m for m in drawn[board["judge"]] if ratings.get(m) is not None]
        assert [ratings[m] for m in rated] == sorted(ratings[m] for m in rated)[::-1]
        assert drawn[board["judge"]][:len(rated)] == rated  # unrated ones last
    assert drawn


def test_a_rebuilt_report_draws_nothing_and_is_the_same_page(handmade_run: Path,
                                                             monkeypatch) -> None:
    """Charts and thumbnails are kept in the store's renders by their inputs: a second
    build draws and encodes nothing and writes the same page and plots; a board whose
    numbers changed is drawn anew; without the store everything is drawn as before."""
    import autojudge.report.html as page_module

    first = build_report(handmade_run).read_text()
    plots = {p.name: p.read_bytes() for p in (handmade_run / "plots").glob("*.png")}
    drawn: list = []
    real_png, real_thumb = figures.png_bytes, page_module.thumbnail_jpeg
    monkeypatch.setattr(figures, "png_bytes", lambda fig: drawn.append(fig) or real_png(fig))
    monkeypatch.setattr(page_module, "thumbnail_jpeg",
                        lambda *a: drawn.append(a) or real_thumb(*a))
    assert build_report(handmade_run).read_text() == first and drawn == []
    assert {p.name: p.read_bytes() for p in (handmade_run / "plots").glob("*.png")} == plots
    document = json.loads((handmade_run / "leaderboard.json").read_text())
    board = next(b for b in document["boards"] if b["judge"] == "fake" and b["tag"] is None)
    rated = next(r for r in board["models"] if r["rating"] is not None)
    rated["rating"] += 7.0
    (handmade_run / "leaderboard.json").write_text(json.dumps(document))
    build_report(handmade_run)
    # the charts that show that rating: its leaderboard and its rating vs latency and
    # vs cost; no thumbnail, no other board's chart
    assert len(drawn) == 3 and all(hasattr(fig, "savefig") for fig in drawn)
    store = next(Path(p) for p in [document["run"].get("store")] if p)
    for file in store.glob("index.sqlite*"):
        file.unlink()
    drawn.clear()
    build_report(handmade_run)
    assert len(drawn) >= len(plots)  # no store: every chart and thumbnail drawn again
