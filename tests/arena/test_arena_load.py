"""The vote path under load: group commit stores every acknowledged vote (concurrent
voters, a server stopping mid-stream), one multi-row INSERT per batch keeps each vote's
own refusal, a response head leaves with its body, and `--timings` says where the
server's time went."""
from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from arena_helpers import arena_config, serve, stop

from autojudge.arena.serving import OneWriteTransport
from autojudge.arena.timing import VOTE_STAGES
from autojudge.arena.votes import RankingVote, Vote, VoteStore, VoteWriter


def vote(token: str) -> Vote:
    return Vote(1.0, "s", token, 0.0, "p", "prompt", 0, ("t",), "x", "y", "1", "2", "left")


def ranking(token: str) -> RankingVote:
    return RankingVote(1.0, "s", token, 0.0, "p", "prompt", 0, ("t",), ("x", "y", "z"),
                       ("1", "2", "3"), (1, None, 2), "order")


def test_a_batch_is_stored_together_and_each_vote_keeps_its_row(tmp_path: Path) -> None:
    store = VoteStore(tmp_path / "v.sqlite")
    mixed = [vote("a"), ranking("r1"), vote("b"), ranking("r2"), vote("c")]
    ids = store.append_many(mixed)
    assert ids == [1, 1, 2, 2, 3]  # each table numbers its own rows, in the order given
    assert [r["token"] for r in store.rows()] == ["a", "b", "c"]
    assert [r["token"] for r in store.ranking_rows()] == ["r1", "r2"]
    many = store.append_many([vote(f"m{k}") for k in range(600)])  # beyond one statement
    rows = {r["token"]: r["id"] for r in store.rows()}
    assert many == [rows[f"m{k}"] for k in range(600)]
    # a replayed token in a batch refuses that vote alone; the others are stored
    result = store.append_many([vote("d"), vote("a"), vote("e")])
    assert isinstance(result[1], sqlite3.IntegrityError)
    assert [r["token"] for r in store.rows()][-2:] == ["d", "e"] and store.count() == 607
    store.close()


def test_every_acknowledged_vote_is_on_disk_when_the_writer_stops(tmp_path: Path) -> None:
    """Voters post concurrently from two threads' event loops; the writer is closed while
    votes are in flight: each vote answered with a row id is in the database (read by a
    fresh connection), each one refused was not acknowledged, and none is lost."""
    path = tmp_path / "v.sqlite"
    store = VoteStore(path)
    writer = VoteWriter(store)
    acknowledged: list[str] = []
    refused: list[str] = []
    lock = threading.Lock()

    async def voters(prefix: str) -> None:
        async def one(k: int) -> None:
            token = f"{prefix}{k}"
            try:
                await writer.append(vote(token))
            except sqlite3.ProgrammingError:  # the writer had closed: not acknowledged
                with lock:
                    refused.append(token)
                return
            with lock:
                acknowledged.append(token)

        for start in range(0, 400, 50):
            await asyncio.gather(*(one(k) for k in range(start, start + 50)))

    threads = [threading.Thread(target=asyncio.run, args=(voters(p),)) for p in "ab"]
    for thread in threads:
        thread.start()
    while len(acknowledged) < 200:  # stop mid-stream
        threading.Event().wait(0.001)
    writer.close()
    for thread in threads:
        thread.join()
    store.close()
    reopened = VoteStore(path, readonly=True)
    stored = [r["token"] for r in reopened.rows()]
    assert sorted(stored) == sorted(acknowledged)
    assert len(acknowledged) + len(refused) == 800 and not set(refused) & set(stored)


class FakeTransport:
    def __init__(self) -> None:
        self.sends: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.sends.append(bytes(data))

    def writelines(self, chunks: Any) -> None:
        self.sends.append(b"".join(chunks))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def test_a_response_head_leaves_with_its_body_or_at_the_next_turn() -> None:
    async def scenario() -> list[list[bytes]]:
        raw = FakeTransport()
        transport = OneWriteTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        transport.write(b"ok")
        answer = list(raw.sends)
        transport.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n")
        waiting = list(raw.sends)
        await asyncio.sleep(0)  # a stream's first event comes later: the head goes now
        streamed = list(raw.sends)
        transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        transport.close()
        assert transport.get_extra_info("peername") == "info:peername"
        return [answer, waiting, streamed, raw.sends]

    answer, waiting, streamed, closed = asyncio.run(scenario())
    assert answer == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]  # one send
    assert waiting == answer and len(streamed) == 2 and streamed[1].endswith(b"\r\n\r\n")
    assert closed[-1] == b"HTTP/1.1 204 No Content\r\n\r\n"


def test_timings_say_where_each_vote_went(run_dir: Path, tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from autojudge.arena.app import create_app

    out = tmp_path / "timings.json"
    with TestClient(create_app(arena_config(run_dir, timings_path=out))) as client:
        for _ in range(3):
            pair = client.get("/api/pair").json()
            assert client.post("/api/vote", json={"token": pair["token"],
                                                  "choice": "left"}).status_code == 200
        forged = client.post("/api/vote", json={"token": "x.y", "choice": "left"})
        assert forged.status_code == 403
    summary = json.loads(out.read_text())
    stages = summary["stages"]
    assert all(stages[stage]["n"] == 3 for stage in VOTE_STAGES)  # the refusal is no vote
    assert stages["serve POST /api/vote"]["n"] == 4 and stages["serve GET /api/pair"]["n"] == 3
    assert summary["batch"]["commits"] >= 1 and summary["slowest_votes"]["n"] == 1


def test_a_stopped_server_keeps_every_vote_it_acknowledged(run_dir: Path,
                                                           tmp_path: Path) -> None:
    """Voters keep posting while the server is stopped (Ctrl-C): each 2xx is exported."""
    import httpx

    votes = tmp_path / "votes.sqlite"
    proc, url = serve(run_dir, "--votes", str(votes), "--votes-per-minute", "0")
    acknowledged: list[str] = []

    async def voter(stop_at: float) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            while asyncio.get_running_loop().time() < stop_at:
                try:
                    pair = (await client.get("/api/pair")).json()
                    answer = await client.post("/api/vote", json={"token": pair["token"],
                                                                  "choice": "tie"})
                except (httpx.HTTPError, ValueError, KeyError):
                    return  # the server went away
                if answer.status_code == 200:
                    acknowledged.append(pair["token"])

    async def crowd() -> None:
        stop_at = asyncio.get_running_loop().time() + 30
        tasks = [asyncio.create_task(voter(stop_at)) for _ in range(8)]
        while len(acknowledged) < 40:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(stop, proc)
        await asyncio.gather(*tasks)

    asyncio.run(crowd())
    stored = {r["token"] for r in VoteStore(votes, readonly=True).rows()}
    assert acknowledged and set(acknowledged) <= stored
