"""K-wise battles in the arena (`--k K`): groups of K images of one prompt and seed, votes
by best and by order, every refusal, the K-wise export rated by `python -m autojudge.rate`,
the live board refit from rankings, and an older votes database."""
from __future__ import annotations

import json
import sqlite3

import pytest
from arena_helpers import MODELS, Clock, arena_config, make_run
from helpers import assert_one_line_error, run_cli
from starlette.testclient import TestClient

from autojudge.arena.app import create_app
from autojudge.battles.log import read_battle_log
from autojudge.ratings import RatingConfig
from autojudge.ratings.rankings import break_rankings, rate_rankings

FIVE = ("alpha_model", "beta_model", "gamma_model", "delta_model", "eps_model")


@pytest.fixture
def run_dir(tmp_path):
    """Five models, so a group of four leaves one out (conftest's make_client uses it)."""
    return make_run(tmp_path / "run", tmp_path / "store", models=FIVE)


def group(client, tag: str | None = None) -> dict:
    response = client.get("/api/group" + (f"?tag={tag}" if tag else ""))
    assert response.status_code == 200, response.text
    return response.json()


def cast(client, g: dict, **vote) -> object:
    return client.post("/api/vote", json={"token": g["token"], **vote})


def shown(client, g: dict) -> list[str]:
    """The models behind a group's slots (server side: the page never says before)."""
    arena = client.app.state.arena
    issue = arena.tokens._issues[g["token"].split(".")[0]]
    return [arena.kwise.sampler.groups[issue.pair].models[i] for i in issue.order]


def preferred(models: list[str]) -> list[int]:
    """The slots of `models` from best to worst for a voter who prefers FIVE's order."""
    return sorted(range(len(models)), key=lambda s: FIVE.index(models[s]))


def n_stored(client) -> int:
    return len(client.app.state.arena.store.ranking_rows())


def test_a_group_shows_k_anonymous_images_of_one_prompt(make_client) -> None:
    client = make_client(k=4)
    assert client.get("/api/info").json()["k"] == 4
    page = client.get("/")
    assert page.status_code == 200 and "/static/kwise.js" in page.text
    g = group(client)
    assert g["k"] == 4 and [i["slot"] for i in g["images"]] == [0, 1, 2, 3]
    assert [i["image_url"] for i in g["images"]] == [f"/img/{g['token']}/{s}" for s in range(4)]
    assert not any(m in json.dumps(g) for m in FIVE)
    models = shown(client, g)
    assert len(set(models)) == 4 and set(models) <= set(FIVE)
    bodies = set()
    for image in g["images"]:
        response = client.get(image["image_url"])
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        assert b"made by" not in response.content  # the PNG's text chunk is stripped
        bodies.add(response.content)
    assert len(bodies) == 4  # four different models' images
    for url in (f"/img/{g['token']}/4", f"/img/{g['token']}/left", f"/img/{g['token']}/-1"):
        assert client.get(url).status_code == 404, url


def test_vote_best_of_k(make_client) -> None:
    client = make_client(k=4)
    g = group(client)
    models = shown(client, g)
    answer = cast(client, g, best=2)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["models"] == models and body["ranks"] == [None, None, 1, None]
    assert body["choice"] == "best" and body["n_votes"] == 1
    assert [r["model"] for r in body["ratings"]] == models
    row = client.app.state.arena.store.ranking_rows()[0]
    assert list(row["models"]) == models and list(row["ranks"]) == [None, None, 1, None]
    assert row["token"] == g["token"] and row["choice"] == "best" and len(row["images"]) == 4
    # the best beat the three others, once each; nothing between the unranked three
    counts = {r["model"]: r for r in client.app.state.arena.live.rows()}
    assert counts[models[2]]["wins"] == 3 and counts[models[2]]["battles"] == 3
    assert all(counts[m]["losses"] == 1 and counts[m]["battles"] == 1
               for m in models if m != models[2])


def test_vote_by_order_and_all_equal(make_client) -> None:
    client = make_client(k=4)
    g = group(client)
    models = shown(client, g)
    body = cast(client, g, order=[2, 0, 3, 1]).json()
    assert body["models"] == models and body["ranks"] == [2, 4, 1, 3]
    assert body["choice"] == "order"
    tie = cast(client, group(client), tie=True).json()
    assert tie["ranks"] == [1, 1, 1, 1] and tie["choice"] == "tie"
    arena = client.app.state.arena
    assert arena.live.n_votes == 2 and arena.live.n_pairs == 12  # 6 pairs per ranking
    assert sum(r["ties"] for r in arena.live.rows()) == 12


@pytest.mark.parametrize("vote, words", [
    ({"best": 4}, "slots are 0..3"), ({"best": -1}, "slots are 0..3"),
    ({"best": "1"}, "integer"), ({"best": True}, "integer"), ({"best": 1.0}, "integer"),
    ({"order": [0, 1, 2]}, "order has 3 entries"), ({"order": [0, 1, 2, 3, 0]}, "5 entries"),
    ({"order": [0, 1, 2, 4]}, "slot 4"), ({"order": [0, -1, 2, 3]}, "slot -1"),
    ({"order": [0, 0, 1, 2]}, "slot 0 twice"), ({"order": "0123"}, "list"),
    ({"order": [0, "1", 2, 3]}, "list of slots"), ({"best": 0, "order": [0, 1, 2, 3]}, "exactly one"),
    ({"best": 0, "choice": "left"}, "exactly one"), ({"tie": False}, "tie must be true"),
    ({"choice": "left"}, "token is for a group"), ({"choice": "middle"}, "choice must be")])
def test_malformed_group_votes_change_nothing(make_client, vote, words) -> None:
    client = make_client(k=4)
    g = group(client)
    response = cast(client, g, **vote)
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error"} and words in response.json()["error"]
    assert n_stored(client) == 0 and client.app.state.arena.live.n_votes == 0
    assert cast(client, g, best=0).status_code == 200  # the real token still works


def test_forged_replayed_expired_and_foreign_group_tokens_are_refused(make_client) -> None:
    clock = Clock()
    client = make_client(k=4, token_ttl_s=60, clock=clock)
    g = group(client)
    nonce, mac = g["token"].split(".")
    for token, status in ((f"{nonce}.{mac[:-2]}AA", 403), (f"AAAAAAAAAAAAAAAA.{mac}", 403),
                          ("x", 400), (5, 400)):
        response = client.post("/api/vote", json={"token": token, "best": 0})
        assert response.status_code == status and "error" in response.json(), token
    thief = TestClient(client.app)  # same server, its own session
    thief.get("/api/group")
    assert cast(thief, g, best=0).status_code == 403
    assert thief.get(g["images"][0]["image_url"]).status_code == 404
    assert n_stored(client) == 0
    assert cast(client, g, best=0).status_code == 200
    replay = cast(client, g, order=[0, 1, 2, 3])
    assert replay.status_code == 409 and "group was already voted on" in replay.json()["error"]
    assert client.get(g["images"][0]["image_url"]).status_code == 404  # the group is closed
    late = group(client)
    clock.now += 61
    expired = cast(client, late, best=0)
    assert expired.status_code == 410 and "expired" in expired.json()["error"]
    assert n_stored(client) == 1 and client.app.state.arena.live.n_votes == 1


def test_pair_and_group_tokens_do_not_mix(make_client) -> None:
    client = make_client(k=4)
    pair = client.get("/api/pair").json()  # the pair API still answers beside groups
    wrong = cast(client, pair, best=0)
    assert wrong.status_code == 400 and "token is for a pair" in wrong.json()["error"]
    assert client.post("/api/vote", json={"token": pair["token"],
                                          "choice": "left"}).status_code == 200
    pairwise = make_client()  # --k 2 (the default): the pairwise arena
    refused = pairwise.get("/api/group")
    assert refused.status_code == 404 and "--k" in refused.json()["error"]
    best = cast(pairwise, pairwise.get("/api/pair").json(), best=0)
    assert best.status_code == 400 and "shows pairs" in best.json()["error"]


def test_group_votes_are_rate_limited_with_pair_votes(make_client) -> None:
    clock = Clock()
    client = make_client(k=4, votes_per_minute=60, burst=3, clock=clock)
    statuses = [cast(client, group(client), best=0).status_code for _ in range(2)]
    statuses.append(client.post("/api/vote", json={"token": client.get("/api/pair").json()
                                                   ["token"], "choice": "tie"}).status_code)
    statuses += [cast(client, group(client), best=0).status_code for _ in range(2)]
    assert statuses == [200, 200, 200, 429, 429]
    clock.now += 2.0
    assert cast(client, group(client), best=1).status_code == 200


def test_every_model_is_shown_at_the_same_pace(make_client) -> None:
    client = make_client(k=4)
    shown_count = dict.fromkeys(FIVE, 0)
    meetings: dict[frozenset, int] = {}
    prompts = set()
    for _ in range(20):
        g = group(client)
        prompts.add(g["prompt"])
        models = shown(client, g)
        for m in models:
            shown_count[m] += 1
        for a in models:
            for b in models:
                if a < b:
                    meetings[frozenset((a, b))] = meetings.get(frozenset((a, b)), 0) + 1
        cast(client, g, best=0)
    assert set(shown_count.values()) == {16}  # 20 groups of 4 over 5 models
    assert len(meetings) == 10 and max(meetings.values()) - min(meetings.values()) <= 2
    assert len(prompts) == 4  # every prompt, not one over and over


def test_a_prompt_with_fewer_models_gives_a_smaller_group(tmp_path) -> None:
    run = make_run(tmp_path / "run", tmp_path / "store")  # three models
    with TestClient(create_app(arena_config(run, k=4))) as client:
        g = group(client, tag="animals")
        assert g["k"] == 3 and "animals" in g["tags"]
        assert sorted(shown(client, g)) == sorted(MODELS)
        wrong = cast(client, g, order=[0, 1, 2, 3])
        assert wrong.status_code == 400 and "order has 4 entries" in wrong.json()["error"]
        assert cast(client, g, order=[2, 1, 0]).json()["ranks"] == [3, 2, 1]


def test_the_live_board_refits_from_rankings(make_client) -> None:
    client = make_client(k=4)
    arena = client.app.state.arena
    for n in range(10):
        g = group(client)
        best_first = preferred(shown(client, g))
        vote = {"best": best_first[0]} if n % 2 else {"order": best_first}
        assert cast(client, g, **vote).status_code == 200
    _wait(lambda: arena.live.refit_n_votes == 10)
    board = client.get("/api/leaderboard").json()
    human = board["boards"][0]
    assert board["live"]["n_votes"] == 10 and board["live"]["refit_n_votes"] == 10
    assert human["n_battles"] == 5 * 6 + 5 * 3  # the pairs the rankings order
    rows = arena.store.ranking_rows()
    expected = rate_rankings([r["models"] for r in rows], [r["ranks"] for r in rows],
                             clusters=[r["prompt_id"] for r in rows],
                             config=RatingConfig(**arena.rating), names=arena.runs.models)
    fitted = {r["model"]: r["rating"] for r in human["models"]}
    assert fitted == pytest.approx({r["model"]: r["rating"] for r in expected})
    assert human["models"][0]["model"] == "alpha_model"  # every voter put it first
    # a restarted arena counts them again, in both the board and the group loads
    again = create_app(arena_config(arena.config.runs[0], k=4))
    assert again.state.arena.live.n_votes == 10 and again.state.arena.live.n_pairs == 45
    assert again.state.arena.kwise.sampler.model_load.sum() == 40


def test_export_writes_k_wise_rows_that_rate_reads(make_client, run_dir, tmp_path) -> None:
    client = make_client(k=4)
    cast_rows = []
    for n in range(8):
        g = group(client)
        best_first = preferred(shown(client, g))
        body = cast(client, g, **({"best": best_first[0]} if n % 2 else
                                  {"order": best_first})).json()
        cast_rows.append((body["models"], body["ranks"]))
    pair = client.get("/api/pair").json()  # a pairwise vote stays a pairwise row
    pairwise = client.post("/api/vote", json={"token": pair["token"], "choice": "left"}).json()
    for suffix in ("jsonl", "csv", "parquet"):
        out = tmp_path / f"votes.{suffix}"
        proc = run_cli(["autojudge.arena", str(run_dir), "--export", str(out)])
        assert proc.returncode == 0 and "wrote 9 votes" in proc.stdout, proc.stderr
        df = read_battle_log(out)  # K-wise rows come back as the pairs they order
        broken = break_rankings([m for m, _ in cast_rows], [r for _, r in cast_rows])
        assert list(zip(df["model_a"], df["model_b"], df["winner"])) == [
            *zip(broken.model_a, broken.model_b, broken.winner),
            (pairwise["left"], pairwise["right"], "model_a")]
        assert (df["judge"] == "human").all() and df["prompt_id"].notna().all()
        assert df["voter"].nunique() == 1
    lines = [json.loads(line) for line in (tmp_path / "votes.jsonl").read_text().splitlines()]
    kwise = lines[:8]
    assert [(r["models"], r["ranks"]) for r in kwise] == cast_rows
    assert kwise[1]["ranks"].count(1) == 1 and kwise[1]["ranks"].count(None) == 3  # best of 4
    assert all(r["judge"] == "human" and r["prompt_id"] and r["seed"] == 0 and r["tags"]
               and r["prompt"] and r["voter"] and r["tstamp"] > 0 for r in kwise)
    assert lines[8]["model_a"] == pairwise["left"] and lines[8]["winner"] == "model_a"
    rated = run_cli(["autojudge.rate", str(tmp_path / "votes.jsonl"), "--json",
                     "--bootstrap", "20"])
    assert rated.returncode == 0, rated.stderr
    board = json.loads(rated.stdout)["models"]
    assert {r["model"] for r in board} == set(FIVE)
    assert board[0]["model"] == "alpha_model"
    assert run_cli(["autojudge.rate", str(tmp_path / "votes.csv")]).returncode == 0


def test_k_wise_votes_are_append_only(make_client) -> None:
    client = make_client(k=4)
    cast(client, group(client), best=0)
    store = client.app.state.arena.store
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store._db.execute("UPDATE ranking_votes SET choice = 'order'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store._db.execute("DELETE FROM ranking_votes")


# the votes table as it was before K-wise votes (no ranking_votes table)
_OLD_SCHEMA = """
CREATE TABLE votes (id INTEGER PRIMARY KEY AUTOINCREMENT, tstamp REAL NOT NULL,
    session TEXT NOT NULL, token TEXT NOT NULL UNIQUE, issued REAL NOT NULL,
    prompt_id TEXT NOT NULL, prompt TEXT NOT NULL, seed INTEGER, tags TEXT NOT NULL,
    model_left TEXT NOT NULL, model_right TEXT NOT NULL, image_left TEXT NOT NULL,
    image_right TEXT NOT NULL, choice TEXT NOT NULL, winner TEXT NOT NULL);
CREATE TRIGGER votes_no_update BEFORE UPDATE ON votes
    BEGIN SELECT RAISE(ABORT, 'arena votes are append-only'); END;
CREATE TRIGGER votes_no_delete BEFORE DELETE ON votes
    BEGIN SELECT RAISE(ABORT, 'arena votes are append-only'); END;
INSERT INTO votes (tstamp, session, token, issued, prompt_id, prompt, seed, tags,
    model_left, model_right, image_left, image_right, choice, winner)
    VALUES (1.0, 's', 't.x', 0.5, 'p-cat', 'a cat on a red sofa', 0, '["animals"]',
            'alpha_model', 'beta_model', 'aa', 'bb', 'left', 'model_a');
"""


def test_an_older_votes_database_still_opens(run_dir, tmp_path) -> None:
    path = run_dir / "arena" / "votes.sqlite"
    path.parent.mkdir()
    with sqlite3.connect(path) as db:
        db.executescript(_OLD_SCHEMA)
    db.close()
    out = tmp_path / "old.jsonl"  # export opens it read-only: the table is not added
    proc = run_cli(["autojudge.arena", str(run_dir), "--export", str(out)])
    assert proc.returncode == 0 and "wrote 1 vote" in proc.stdout, proc.stderr
    assert list(read_battle_log(out)["winner"]) == ["model_a"]
    with TestClient(create_app(arena_config(run_dir, k=4))) as client:
        assert client.app.state.arena.live.n_votes == 1  # the old vote counts
        assert cast(client, group(client), best=1).status_code == 200
        assert client.app.state.arena.store.count() == 2
    proc = run_cli(["autojudge.arena", str(run_dir), "--export", str(out)])
    assert proc.returncode == 0 and "wrote 2 votes" in proc.stdout, proc.stderr


def test_k_below_two_is_one_error_line(run_dir) -> None:
    assert_one_line_error(run_cli(["autojudge.arena", str(run_dir), "--k", "1"]), "--k 1")


def _wait(condition, timeout: float = 20.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_adaptive_sampling_steers_groups(make_client) -> None:
    """`--sampling adaptive --k 4`: each refit's scheduler picks groups of 4 (grown
    around the widest CI) on the ranking votes so far; the next group a session gets is
    the first pick it has not seen."""
    client = make_client(k=4, sampling="adaptive")
    arena = client.app.state.arena
    for _ in range(6):
        g = group(client)
        assert cast(client, g, order=preferred(shown(client, g))).status_code == 200
    _wait(lambda: arena.live.refit_n_votes == 6 and len(arena.kwise.sampler.queue) > 0)
    queued = list(arena.kwise.sampler.queue)
    assert all(len(models) == 4 and set(models) <= set(FIVE) for _, _, models in queued)
    sid = arena.tokens.keys.session_id(client.cookies.get("aj_session"))
    seen = {arena.kwise.sampler.groups[g].request
            for g in arena.tokens.session(sid).seen_groups}
    fresh = [q for q in queued
             if arena.kwise.sampler.index[(q[0], q[1])] not in seen] or queued
    g = group(client)
    assert sorted(shown(client, g)) == sorted(fresh[0][2])
    assert arena.sampler.queue == type(arena.sampler.queue)()  # pairs are not steered
