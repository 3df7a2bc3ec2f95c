"""Hostile requests against the arena: oversized and endless bodies, wrongly typed votes,
pairs whose images cannot be served, and server paths in answers. Each gets a 4xx with a
one-line JSON error, records nothing, and names no server file."""
from __future__ import annotations

import json
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from arena_helpers import MODELS, serve, stop
from autojudge.arena.app import _MAX_BODY
from autojudge.arena.images import ImageCache
from autojudge.errors import AutojudgeError

CHUNK = 64 << 10


def _stored(client) -> int:
    return client.app.state.arena.store.count()


def _one_line_error(response, status: int) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error, str) and "\n" not in error and "Traceback" not in error
    return error


def _post_raw(client, headers: list[tuple[bytes, bytes]], total: int) -> tuple[int, int]:
    """POST /api/vote straight into the ASGI app, the body `total` bytes in chunks made
    on demand; (status, bytes the app took before answering)."""
    taken = {"bytes": 0}

    async def receive() -> dict:
        if taken["bytes"] >= total:
            return {"type": "http.request", "body": b"", "more_body": False}
        taken["bytes"] += CHUNK
        return {"type": "http.request", "body": b" " * CHUNK, "more_body": True}

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/api/vote", "raw_path": b"/api/vote",
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
             "server": ("testserver", 80),
             "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"),
                         *headers]}
    client.portal.call(client.app, scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], taken["bytes"]


def test_an_endless_chunked_body_is_cut_off_at_the_limit(make_client) -> None:
    client = make_client()
    status, taken = _post_raw(client, [(b"transfer-encoding", b"chunked")], total=64 << 20)
    assert status == 413
    assert taken <= _MAX_BODY + CHUNK  # one chunk past the limit, not the 64 MiB
    status, taken = _post_raw(client, [(b"content-length", str(1 << 30).encode())],
                              total=1 << 30)
    assert (status, taken) == (413, 0)  # refused on its Content-Length, nothing read
    assert _stored(client) == 0


@pytest.mark.parametrize("choice", [["left"], {"left": 1}, 1, None, True, "LEFT"])
def test_a_choice_of_the_wrong_type_is_a_400(make_client, choice) -> None:
    client = make_client()
    pair = client.get("/api/pair").json()
    response = client.post("/api/vote", json={"token": pair["token"], "choice": choice})
    assert "left|right|tie|bothbad" in _one_line_error(response, 400).replace(", ", "|")
    assert _stored(client) == 0 and client.app.state.arena.live.n_votes == 0
    good = client.post("/api/vote", json={"token": pair["token"], "choice": "left"})
    assert good.status_code == 200  # the token still works


@pytest.mark.parametrize("token", [["a.b"], {"a": "b"}, "é.é", "a" * 300 + ".b"])
def test_a_token_of_the_wrong_type_or_characters_is_a_400(make_client, token) -> None:
    client = make_client()
    client.get("/api/pair")
    response = client.post("/api/vote", json={"token": token, "choice": "left"})
    _one_line_error(response, 400)
    assert _stored(client) == 0


def test_deeply_nested_json_and_a_foreign_cookie(make_client) -> None:
    client = make_client()
    nested = client.post("/api/vote", content=b"[" * 3000,
                         headers={"content-type": "application/json"})
    assert "not valid JSON" in _one_line_error(nested, 400)
    # a cookie with bytes beyond ASCII is no session, not a server error
    odd = client.get("/api/pair", headers={"cookie": b"aj_session=\xc3\xa9.\xc3\xa9"})
    assert odd.status_code == 200 and "token" in odd.json()
    assert _stored(client) == 0


def _blob(run_dir: Path, model: str) -> list[Path]:
    gens = [json.loads(line) for line in (run_dir / "generations.jsonl").open()]
    return [Path(g["image_path"]) for g in gens if g["model"] == model]


def test_a_pair_whose_image_broke_cannot_be_voted_on(run_dir, tmp_path, make_client,
                                                     capsys) -> None:
    client = make_client()
    arena = client.app.state.arena
    pair = client.get("/api/pair").json()
    arena.images = ImageCache()  # a long-running arena has dropped them from memory ...
    for model in MODELS:  # ... and the files changed under it
        for path in _blob(run_dir, model):
            path.write_bytes(b"not the image any more")
    image = client.get(pair["left"]["image_url"])
    voted = client.post("/api/vote", json={"token": pair["token"], "choice": "left"})
    for response in (image, voted):
        assert "fetch a new pair" in _one_line_error(response, 410)
        assert str(tmp_path) not in response.text and "blobs" not in response.text
    assert _stored(client) == 0 and arena.live.n_votes == 0
    none_left = client.get("/api/pair")
    _one_line_error(none_left, 503)
    assert str(tmp_path) not in none_left.text
    assert str(tmp_path) in capsys.readouterr().err  # the operator's log names the file
    export = tmp_path / "votes.jsonl"
    with pytest.raises(AutojudgeError, match="no votes"):
        arena.store.export(export)


def test_pairs_with_a_missing_image_are_never_served(run_dir, make_client) -> None:
    client = make_client()
    for path in _blob(run_dir, "gamma_model"):
        path.unlink()
    revealed = set()
    for _ in range(12):
        pair = client.get("/api/pair").json()
        assert client.get(pair["right"]["image_url"]).status_code == 200
        body = client.post("/api/vote", json={"token": pair["token"], "choice": "tie"}).json()
        revealed |= {body["left"], body["right"]}
    assert revealed == {"alpha_model", "beta_model"}
    assert _stored(client) == 12


def test_no_answer_names_a_server_path(run_dir, tmp_path, make_client) -> None:
    client = make_client()
    pair = client.get("/api/pair").json()
    vote = {"token": pair["token"], "choice": "left"}
    answers = [client.get(p) for p in ("/", "/leaderboard", "/api/info", "/api/leaderboard",
                                       "/favicon.ico", "/nope", "/static/nope.js",
                                       "/static/../core.py", "/api/vote", "/img/x.y/left",
                                       "/api/pair?tag=nope")]
    answers += [client.post("/api/vote", json=vote), client.post("/api/vote", json=vote),
                client.post("/api/vote", json={"token": "x.y", "choice": "left"}),
                client.post("/api/vote", content=b"{", headers={"content-type": "text/plain"}),
                client.post("/api/vote", content=b"{",
                            headers={"content-type": "application/json"}),
                client.post("/api/vote", content=b" " * (2 * _MAX_BODY),
                            headers={"content-type": "application/json"})]
    statuses = [a.status_code for a in answers]
    assert {200, 400, 403, 404, 405, 409, 413, 415} <= set(statuses), statuses
    arena = client.app.state.arena
    for path in {str(tmp_path), str(tmp_path.resolve()), str(arena.store.path),
                 str(run_dir)}:
        for answer in answers:
            assert path not in answer.text, (answer.request.url, answer.text[:200])


def test_favicon_and_the_pages_link_it(make_client) -> None:
    client = make_client()
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
    assert icon.content.startswith(b"<svg")
    for page in ("/", "/leaderboard"):
        assert '<link rel="icon" href="/favicon.ico"' in client.get(page).text


def test_the_board_explains_its_agreement_columns(make_client) -> None:
    client = make_client()
    page = client.get("/leaderboard").text
    assert "<em>Decisive</em>: agreement on the battles where both" in page
    assert "<em>Kappa</em>: Cohen's kappa" in page
    script = client.get("/static/board.js").text
    assert "decisive: " in script and "kappa: " in script  # the columns' tooltips


@pytest.mark.slow
def test_hostile_requests_over_real_http(run_dir) -> None:
    """uvicorn answers an endless chunked upload with 413 and hangs up, long before the
    body would end; wrongly typed votes are 400s; no traceback in the server's log."""
    import httpx

    proc, url = serve(run_dir)
    try:
        parts = urlsplit(url)
        with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
            sock.sendall(b"POST /api/vote HTTP/1.1\r\nhost: arena\r\n"
                         b"content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n")
            for _ in range(4):  # 16 KiB past the limit, and never a last chunk
                sock.sendall(b"1000\r\n" + b" " * 4096 + b"\r\n")
            reply = b""
            while data := sock.recv(65536):  # until the server closes the connection
                reply += data
        assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
        with httpx.Client(base_url=url, timeout=60) as client:
            pair = client.get("/api/pair").json()
            for choice in (["left"], {"a": 1}):
                bad = client.post("/api/vote", json={"token": pair["token"], "choice": choice})
                _one_line_error(bad, 400)
            good = client.post("/api/vote", json={"token": pair["token"], "choice": "left"})
            assert good.status_code == 200
            assert client.get("/api/leaderboard").json()["live"]["n_votes"] == 1
    finally:
        code, err = stop(proc)
    assert code == 0 and "Traceback" not in err, err
