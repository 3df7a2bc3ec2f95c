"""The arena's JSON API: pairs, votes, refusals (forged, replayed, expired, malformed,
another session's), anonymity before the vote, rate limits, read-only mode, export."""
from __future__ import annotations

import json
import sqlite3
import time

import pytest
from arena_helpers import MODELS, Clock, arena_config
from starlette.testclient import TestClient

from autojudge.arena.app import create_app
from autojudge.battles.log import read_battle_log

CHOICES = ("left", "right", "tie", "bothbad")


def vote(client, pair, choice="left"):
    return client.post("/api/vote", json={"token": pair["token"], "choice": choice})


def n_stored(client) -> int:
    return client.app.state.arena.store.count()


def test_pair_and_vote_round_trip(make_client) -> None:
    client = make_client()
    pair = client.get("/api/pair").json()
    assert set(pair) >= {"token", "prompt", "tags", "left", "right"}
    assert pair["left"]["image_url"] == f"/img/{pair['token']}/left"
    left = client.get(pair["left"]["image_url"])
    assert left.status_code == 200 and left.headers["content-type"] == "image/png"
    answer = vote(client, pair, "left")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["left"] in MODELS and body["right"] in MODELS and body["left"] != body["right"]
    assert body["winner"] == "model_a" and body["n_votes"] == 1
    assert body["ratings"]["left"]["model"] == body["left"]
    assert body["ratings"]["left"]["elo"] == pytest.approx(1002.0)  # K=4, first vote
    rows = list(client.app.state.arena.store.rows())
    assert len(rows) == 1
    row = rows[0]
    assert (row["model_left"], row["model_right"], row["choice"]) == (body["left"],
                                                                      body["right"], "left")
    assert row["token"] == pair["token"] and row["session"] and row["tstamp"] > 0


def test_nothing_identifies_a_model_before_the_vote(make_client) -> None:
    client = make_client()
    page = client.get("/").text
    arena = client.app.state.arena
    hashes = [p.image_x.sha for p in arena.runs.pairs] + [p.image_y.sha for p in arena.runs.pairs]
    for _ in range(6):
        response = client.get("/api/pair")
        text = response.text
        for secret in (*MODELS, *hashes[:50], "blobs", ".png", str(arena.runs.pairs[0].image_x.path)):
            assert secret not in text and secret not in page, secret
        pair = response.json()
        for side in ("left", "right"):
            image = client.get(pair[side]["image_url"])
            # the PNG's text chunk said "made by <model>": served without it
            assert b"made by" not in image.content and b"tEXt" not in image.content
            assert not any(m.encode() in image.content for m in MODELS)
            assert "etag" not in image.headers and "last-modified" not in image.headers


def test_sides_are_random_and_pairs_spread_over_model_pairs(make_client) -> None:
    client = make_client()
    lefts, model_pairs = set(), {}
    for _ in range(24):
        body = vote(client, client.get("/api/pair").json(), "tie").json()
        lefts.add(body["left"])
        key = tuple(sorted((body["left"], body["right"])))
        model_pairs[key] = model_pairs.get(key, 0) + 1
    assert lefts == set(MODELS)
    assert sorted(model_pairs.values()) == [8, 8, 8]  # under-voted model pairs first


@pytest.mark.parametrize("body, status", [
    ({"choice": "left"}, 400), ({"token": 5, "choice": "left"}, 400),
    ({"token": "x", "choice": "left"}, 400), ({"token": "x.y", "choice": "left"}, 403),
    ("not json", 400), ([1, 2], 400)])
def test_malformed_and_forged_votes_change_nothing(make_client, body, status) -> None:
    client = make_client()
    pair = client.get("/api/pair").json()
    if isinstance(body, str):
        response = client.post("/api/vote", content=body,
                               headers={"content-type": "application/json"})
    else:
        response = client.post("/api/vote", json=body)
    assert response.status_code == status, response.text
    assert "error" in response.json()
    assert n_stored(client) == 0 and client.app.state.arena.live.n_votes == 0
    assert vote(client, pair).status_code == 200  # the real token still works


def test_bad_choice_wrong_type_and_tampered_token(make_client) -> None:
    client = make_client()
    pair = client.get("/api/pair").json()
    assert vote(client, pair, "middle").status_code == 400
    response = client.post("/api/vote", content=json.dumps({"token": pair["token"],
                                                            "choice": "left"}),
                           headers={"content-type": "text/plain"})
    assert response.status_code == 415
    nonce, mac = pair["token"].split(".")
    forged = {"token": f"{nonce}.{mac[:-2]}AA", "choice": "left"}
    assert client.post("/api/vote", json=forged).status_code == 403
    made_up = {"token": "AAAAAAAAAAAAAAAA." + mac, "choice": "left"}
    assert client.post("/api/vote", json=made_up).status_code == 403
    huge = client.post("/api/vote", content=b"{" + b" " * 10_000 + b"}",
                       headers={"content-type": "application/json"})
    assert huge.status_code == 413
    assert n_stored(client) == 0


def test_replayed_vote_is_refused(make_client) -> None:
    client = make_client()
    pair = client.get("/api/pair").json()
    assert vote(client, pair, "left").status_code == 200
    again = vote(client, pair, "right")
    assert again.status_code == 409 and "already voted" in again.json()["error"]
    assert n_stored(client) == 1 and client.app.state.arena.live.n_votes == 1
    assert client.get(pair["left"]["image_url"]).status_code == 404  # the pair is closed


def test_expired_token_is_refused(run_dir, make_client) -> None:
    clock = Clock()
    client = make_client(token_ttl_s=60, clock=clock)
    pair = client.get("/api/pair").json()
    clock.now += 61
    response = vote(client, pair)
    assert response.status_code == 410 and "expired" in response.json()["error"]
    assert client.get(pair["left"]["image_url"]).status_code == 404
    assert n_stored(client) == 0
    fresh = client.get("/api/pair").json()
    assert vote(client, fresh).status_code == 200


def test_another_sessions_token_and_images_are_refused(make_client) -> None:
    owner = make_client()
    pair = owner.get("/api/pair").json()
    thief = TestClient(owner.app)  # same server, its own cookie jar (session)
    thief.get("/api/pair")
    assert thief.get(pair["left"]["image_url"]).status_code == 404
    assert thief.get(pair["right"]["image_url"]).status_code == 404
    assert vote(thief, pair).status_code == 403
    anonymous = TestClient(owner.app)  # no session cookie at all
    assert anonymous.get(pair["left"]["image_url"]).status_code == 404
    assert vote(anonymous, pair).status_code == 403
    assert n_stored(owner) == 0
    # a session cookie made up by the client is not a session
    anonymous.cookies.set("aj_session", "made-up.cookie")
    assert vote(anonymous, pair).status_code == 403
    assert vote(owner, pair).status_code == 200


def test_guessed_image_urls_are_refused(make_client) -> None:
    client = make_client()
    pair = client.get("/api/pair").json()
    for url in (f"/img/{pair['token']}/middle", "/img/AAAA.BBBB/left",
                f"/img/{pair['token'][:-1]}x/left"):
        assert client.get(url).status_code == 404, url


def test_rate_limit_per_session(make_client) -> None:
    clock = Clock()
    client = make_client(votes_per_minute=60, burst=3, clock=clock)
    statuses = [vote(client, client.get("/api/pair").json()).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    assert n_stored(client) == 3
    clock.now += 2.0  # one vote a second comes back
    assert vote(client, client.get("/api/pair").json()).status_code == 200
    other = TestClient(client.app)  # another voter is not limited by the first
    assert vote(other, other.get("/api/pair").json()).status_code == 200


def test_tag_filter(make_client) -> None:
    client = make_client()
    for _ in range(4):
        pair = client.get("/api/pair?tag=animals").json()
        assert "animals" in pair["tags"]
        vote(client, pair)
    missing = client.get("/api/pair?tag=nonexistent")
    assert missing.status_code == 404 and "animals" in missing.json()["error"]
    info = client.get("/api/info").json()
    assert "animals" in info["tags"] and "text" in info["tags"]


def test_server_tag_restricts_the_pool(make_client) -> None:
    client = make_client(tags=["text"])
    prompts = {client.get("/api/pair").json()["prompt"] for _ in range(5)}
    assert prompts == {'a sign that reads "OPEN"'}


def test_read_only_publishes_the_board_without_voting(make_client) -> None:
    client = make_client(read_only=True)
    assert client.get("/", follow_redirects=False).status_code == 302
    assert client.get("/api/pair").status_code == 403
    assert client.post("/api/vote", json={"token": "a.b", "choice": "left"}).status_code == 403
    board = client.get("/api/leaderboard").json()
    assert board["run"]["arena"]["read_only"] is True
    assert client.get("/leaderboard").status_code == 200


def test_leaderboard_schema_and_semantics(make_client) -> None:
    client = make_client()
    empty = client.get("/api/leaderboard").json()
    assert set(empty) >= {"boards", "models", "agreement", "live"}
    human = empty["boards"][0]
    assert human["judge"] == "human" and human["tag"] is None
    assert all(r["rating"] is None and r["rating_text"] == "unrated" and r["rank"] is None
               for r in human["models"])
    judge = next(b for b in empty["boards"] if b["judge"] == "fake")
    top = judge["models"][0]  # alpha won every battle: open upper side
    assert top["ci_high"] is None and top["ci_text"].startswith(">= ")
    assert {m["model"] for m in empty["models"]} == set(MODELS)
    assert all("latency_p50_s" in m and "cost_per_image_usd" in m for m in empty["models"])
    arena = client.app.state.arena
    for _ in range(12):
        pair = client.get("/api/pair").json()
        body = vote(client, pair, "tie").json()
        assert body["n_votes"] == arena.live.n_votes
    _wait(lambda: arena.live.refit_n_votes == 12)
    board = client.get("/api/leaderboard").json()
    human = board["boards"][0]
    assert human["n_battles"] == 12 and board["live"]["n_votes"] == 12
    rows = {r["model"]: r for r in human["models"]}
    assert all(r["rating"] is not None and r["ci_text"] != "-" for r in rows.values())
    assert sum(r["battles"] for r in rows.values()) == 24
    agreement = board["agreement"]
    assert [(a["judge_a"], a["judge_b"]) for a in agreement] == [("fake", "human")]
    assert agreement[0]["n_shared"] > 0 and agreement[0]["agreement"] == 0.0  # all ties
    assert "ci_low" in agreement[0] and "ci_text" in agreement[0]


def test_disconnected_human_board_says_so(tmp_path) -> None:
    from arena_helpers import make_run
    run = make_run(tmp_path / "run", tmp_path / "store", models=("m1", "m2", "m3", "m4"),
                   prompts=[{"id": "p1", "text": "x", "category": "c"}])
    app = create_app(arena_config(run))
    arena = app.state.arena
    arena.live.add("m1", "m2", "model_a", "p1", 0)
    arena.live.add("m3", "m4", "tie", "p1", 0)
    arena.live.refit_now()
    human = arena.leaderboard()["boards"][0]
    assert human["connected"] is False and human["n_components"] == 2
    winner = next(r for r in human["models"] if r["model"] == "m1")
    assert winner["ci_text"].startswith(">= ") and winner["separated"]


def test_export_is_the_human_battle_log(make_client, tmp_path) -> None:
    client = make_client()
    choices = []
    for k in range(8):
        choice = CHOICES[k % 4]
        body = vote(client, client.get("/api/pair").json(), choice).json()
        choices.append((body["left"], body["right"], body["winner"]))
    out = tmp_path / "votes.jsonl"
    assert client.app.state.arena.store.export(out) == 8
    df = read_battle_log(out)
    assert list(zip(df["model_a"], df["model_b"], df["winner"])) == choices
    assert set(df["winner"]) == {"model_a", "model_b", "tie", "tie (bothbad)"}
    assert (df["judge"] == "human").all() and df["prompt_id"].notna().all()
    assert df["seed"].notna().all() and df["tstamp"].is_monotonic_increasing
    assert all(isinstance(t, list) and t for t in df["tags"])


def test_votes_are_append_only_and_survive_a_restart(run_dir, make_client) -> None:
    client = make_client()
    for _ in range(3):
        vote(client, client.get("/api/pair").json(), "left")
    store = client.app.state.arena.store
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store._db.execute("UPDATE votes SET choice = 'right'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store._db.execute("DELETE FROM votes")
    mode = store._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert store.path == run_dir / "arena" / "votes.sqlite"
    again = create_app(arena_config(run_dir))
    assert again.state.arena.live.n_votes == 3  # the next server counts earlier votes


def test_adaptive_sampling_serves_the_schedulers_picks(make_client) -> None:
    client = make_client(sampling="adaptive")
    arena = client.app.state.arena
    for _ in range(6):
        vote(client, client.get("/api/pair").json(), "left")
    _wait(lambda: arena.live.refit_n_votes == 6 and len(arena.sampler.queue) > 0)
    queued = list(arena.sampler.queue)
    sid = arena.tokens.keys.session_id(client.cookies.get("aj_session"))
    fresh = [p for p in queued if p not in arena.tokens.session(sid).seen]
    pair = client.get("/api/pair").json()
    assert arena.tokens.lookup(pair["token"], sid).pair == fresh[0]


def _wait(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)
