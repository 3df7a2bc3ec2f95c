"""`python -m autojudge.arena`: bad usage is one `error:` line and exit 2; a served arena
answers over real HTTP (and SSE) and exports what it stored; sweeps and several runs."""
from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import httpx
import pytest

from arena_helpers import MODELS, make_run, serve, stop
from autojudge.arena.__main__ import main
from autojudge.arena.runs import load_runs
from helpers import assert_one_line_error, run_cli


def _error(capsys, argv: list[str], *needles: str) -> None:
    """main(argv) exits 2 with exactly one `error: ...` line naming `needles`."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_usage_errors_are_one_line(tmp_path, run_dir, capsys) -> None:
    _error(capsys, [str(tmp_path / "missing")], "not found")
    empty = tmp_path / "empty"
    empty.mkdir()
    _error(capsys, [str(empty)], "neither a run", "multirun.yaml")
    parent = run_dir.parent  # holds the run, but is not a sweep
    _error(capsys, [str(parent)], "pass them by name")
    no_gens = tmp_path / "no_gens"
    no_gens.mkdir()
    shutil.copy(run_dir / "leaderboard.json", no_gens)
    _error(capsys, [str(no_gens)], "no generations.jsonl")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(run_dir / "generations.jsonl", unfinished)
    _error(capsys, [str(unfinished)], "not finished")
    _error(capsys, [str(run_dir), "--host", "0.0.0.0"], "--public")
    _error(capsys, [str(run_dir), "--host", "192.168.1.7", "--port", "0"], "--public")
    _error(capsys, [str(run_dir), "--tag", "nope"], "nope", "animals")
    _error(capsys, [str(run_dir), "--sampling", "best"], "--sampling")
    _error(capsys, [str(run_dir), "--export", str(tmp_path / "v.jsonl")], "no votes database")
    _error(capsys, [str(run_dir), "--port", "70000"], "not a port")
    _error(capsys, [str(run_dir), "--votes-per-minute", "-1"], "--votes-per-minute")


def test_a_file_instead_of_a_run_and_damaged_files(tmp_path, run_dir, capsys) -> None:
    _error(capsys, [str(run_dir / "leaderboard.json")], "is a file")
    (run_dir / "generations.jsonl").write_text('{"model": "x"\n')
    _error(capsys, [str(run_dir)], "generations.jsonl, line 1", "not valid JSON")


def test_a_run_without_pairs(tmp_path, capsys) -> None:
    solo = make_run(tmp_path / "solo", tmp_path / "store", models=("only_model",))
    _error(capsys, [str(solo)], "no pair to vote on")


def test_busy_port(run_dir, capsys) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        _error(capsys, [str(run_dir), "--port", str(taken.getsockname()[1])],
               "cannot listen", "--port")


def test_export_to_an_unwritable_path_is_one_line(tmp_path, run_dir, make_client,
                                                   capsys) -> None:
    client = make_client()
    pair = client.get("/api/pair").json()
    assert client.post("/api/vote", json={"token": pair["token"], "choice": "left"}).is_success
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way")
    folder = tmp_path / "a_folder.jsonl"
    folder.mkdir()
    for target in (blocker / "votes.jsonl", folder):
        _error(capsys, [str(run_dir), "--export", str(target)], "cannot write --export",
               str(target), "writable")
    assert blocker.read_text() == "in the way" and not any(folder.iterdir())
    assert not list(tmp_path.glob(".*.tmp"))  # nothing half-written left behind
    good = tmp_path / "votes.jsonl"
    assert main([str(run_dir), "--export", str(good)]) == 0
    assert "wrote 1 vote to" in capsys.readouterr().out


def test_cli_module_and_errors_run_as_a_user_would(tmp_path) -> None:
    proc = run_cli(["autojudge.arena", str(tmp_path / "missing")], timeout=120)
    assert proc.returncode == 2
    assert_one_line_error(proc, "not found")


@pytest.mark.slow
def test_served_arena_over_http_with_sse_and_export(run_dir, tmp_path) -> None:
    proc, url = serve(run_dir, "--refit-seconds", "0.2", "--bootstrap", "20")
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            assert "Keyboard" in client.get("/").text
            with client.stream("GET", "/events") as events:
                lines = events.iter_lines()
                first = _next_event(lines)
                assert first["live"]["n_votes"] == 0
                pair = client.get("/api/pair").json()
                assert client.get(pair["left"]["image_url"]).status_code == 200
                body = client.post("/api/vote", json={"token": pair["token"],
                                                      "choice": "bothbad"}).json()
                assert body["winner"] == "tie (bothbad)"
                while (event := _next_event(lines))["live"]["n_votes"] < 1:
                    pass
                human = event["boards"][0]
                assert human["judge"] == "human" and human["n_battles"] == 1
    finally:
        code, err = stop(proc)
    assert code == 0 and "Traceback" not in err, err
    out = tmp_path / "votes.csv"
    done = run_cli(["autojudge.arena", str(run_dir), "--export", str(out)], timeout=120)
    assert done.returncode == 0 and "wrote 1 vote" in done.stdout, done.stderr
    rated = run_cli(["autojudge.rate", str(out), "--json", "--bootstrap", "10"], timeout=120)
    assert rated.returncode == 0, rated.stderr
    rows = {r["model"]: r for r in json.loads(rated.stdout)["models"]}
    assert {body["left"], body["right"]} == set(rows) and all(r["ties"] == 1 for r in rows.values())
    # read-only publishes what was voted
    proc, url = serve(run_dir, "--read-only")
    try:
        board = httpx.get(f"{url}/api/leaderboard").json()
        assert board["live"]["n_votes"] == 1
        assert httpx.get(f"{url}/api/pair").status_code == 403
    finally:
        stop(proc)


def _next_event(lines) -> dict:
    for line in lines:
        if line.startswith("data: "):
            return json.loads(line[6:])
    raise AssertionError("the event stream ended")


def test_sweep_folder_pools_runs_and_labels_models(tmp_path) -> None:
    sweep = tmp_path / "sweep"
    store = tmp_path / "store"
    # alpha's images are the same at both sweep points (a fixed baseline); beta's differ
    for k in (0, 1):
        make_run(sweep / str(k), store, models=("alpha_model", "beta_model"),
                 color_shift=7 * k, shifted=("beta_model",))
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    arena = load_runs([sweep])
    assert arena.models == ["alpha_model", "beta_model@0", "beta_model@1"]
    assert [r["label"] for r in arena.runs] == ["0", "1"]
    pairs = {(p.model_x, p.model_y) for p in arena.pairs}
    assert ("beta_model@0", "beta_model@1") in pairs and len(pairs) == 3
    board = arena.judge_boards[0]
    assert board["judge"] == "fake" and board["pooled_runs"] == 2
    assert board["n_battles"] == 2 * 4 and board["connected"]  # linked through alpha
    assert [r["label"] for r in load_runs([sweep / "1", sweep / "0"]).runs] == ["1", "0"]


def test_same_judge_battle_in_two_runs_counts_once(tmp_path) -> None:
    store = tmp_path / "store"
    a = make_run(tmp_path / "a" / "run", store, models=MODELS)
    b = make_run(tmp_path / "b" / "run", store, models=MODELS)
    arena = load_runs([a, b])
    assert arena.models == list(MODELS)  # identical images: one model each
    assert len(arena.judge_battles) == 3 * 4
    assert [r["label"] for r in arena.runs] == ["a/run", "b/run"]


def test_moved_images_are_found_in_the_store_or_left_out(tmp_path) -> None:
    run = make_run(tmp_path / "run", tmp_path / "store")
    rows = [json.loads(line) for line in (run / "generations.jsonl").read_text().splitlines()]
    for row in rows:
        row["image_path"] = "/nowhere/" + Path(row["image_path"]).name
    rows[0]["image_sha256"] = "0" * 64  # gone from the store too
    (run / "generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    arena = load_runs([run])
    assert all(p.image_x.path.is_file() for p in arena.pairs)
    assert len(arena.pairs) == 3 * 4 - 2 and "not found" in arena.warnings[0]
