"""The arena under load: concurrent voters on 127.0.0.1, no vote lost, live updates.

Starts `python -m autojudge.arena` (per-voter rate limit off) on a run: a synthetic one
(3 models x 40 prompts, 256x256 PNGs in a fresh store) unless --run names one. Then
--voters voters, each its own session, loop for --seconds: GET /api/pair, GET both images
(as the page preloads them; --no-images skips), POST /api/vote, then wait --think seconds
(jittered; 0 = flat out, the stress case; a person takes a second or more).
Meanwhile one Server-Sent Events client (its own process, as an open leaderboard page)
listens on /events.

Prints: votes/s; p50/p99/max vote latency (the POST alone, and the whole pair + images +
vote cycle, each voter's first cycle left out as warm-up) and the p99's verdict against
the 100 ms target; the time from sending a vote to the first SSE event that counts it
(online Elo), and to the first event whose Bradley-Terry refit includes it. Then where
the time went: the server's own split of each vote (`--timings`: its checks, the wait
for and the duration of its group commit, the event loop's turns back to it, the
answer), its event-loop lag, garbage collections and time per route; who had the two
cores (server, refit worker, voters, the page, and other work on the machine) and how
long the server's event loop was ready to run without a free core. Last, it checks that
the export (`--export`) holds exactly as many votes as got a 2xx answer.

    python benchmarks/bench_arena.py                   # 50 voters, 60 s
    python benchmarks/bench_arena.py --seconds 10      # shorter
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import multiprocessing
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def synthetic_run(root: Path, n_prompts: int = 40) -> Path:
    """A finished 3-model run with real PNGs in a store and an automated judge."""
    import numpy as np
    from PIL import Image

    from autojudge.ratings import RatingConfig, board_structure, rate_battles
    from autojudge.store.index import Store

    models = ["model_a1", "model_b2", "model_c3"]
    store = Store(root / "store")
    rng = np.random.default_rng(0)
    gens, battles = [], []
    for m, model in enumerate(models):
        for p in range(n_prompts):
            pixels = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8) // (m + 1)
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="PNG")
            sha, ext = store.put_blob(buffer.getvalue())
            gens.append({"model": model, "prompt_id": f"p{p}", "seed": 0, "status": "ok",
                         "image_sha256": sha, "image_path": str(store.blob_path(sha, ext)),
                         "latency_s": 0.5 * (m + 1), "cost_usd": 0.003 * (m + 1)})
    for p in range(n_prompts):
        for a in range(3):
            for b in range(a + 1, 3):
                battles.append({"model_a": models[a], "model_b": models[b],
                                "winner": "model_a" if rng.random() < 0.7 else "model_b",
                                "judge": "bench", "prompt_id": f"p{p}", "seed": 0})
    rows = rate_battles([b["model_a"] for b in battles], [b["model_b"] for b in battles],
                        [b["winner"] for b in battles], [b["prompt_id"] for b in battles],
                        config=RatingConfig(bootstrap_rounds=200), models=models)
    suite = root / "suite.yaml"
    suite.write_text("name: bench\nprompts:\n" + "".join(
        f"  - {{id: p{p}, text: 'bench prompt {p}', category: bench}}\n"
        for p in range(n_prompts)))
    run = root / "run"
    run.mkdir()
    (run / "generations.jsonl").write_text("".join(json.dumps(g) + "\n" for g in gens))
    (run / "battles.jsonl").write_text("".join(json.dumps(b) + "\n" for b in battles))
    document = {"schema": 1, "run": {"name": "bench", "suite_path": str(suite),
                                     "models": models, "store": str(store.root),
                                     "ratings": {"bootstrap_rounds": 1000, "seed": 0,
                                                 "confidence": 0.95}},
                "boards": [{"judge": "bench", "tag": None, "method": "bt",
                            "n_battles": len(battles), "n_prompts": n_prompts,
                            **board_structure(rows), "models": rows}],
                "models": [{"model": m, "latency_p50_s": 0.5} for m in models],
                "agreement": []}
    (run / "leaderboard.json").write_text(json.dumps(document))
    store.close()
    return run


def start_server(run: Path, votes: Path, timings: Path | None
                 ) -> tuple[subprocess.Popen, str]:
    from autojudge.testing.arena_process import start_arena

    try:
        return start_arena(run, ["--votes", str(votes), "--votes-per-minute", "0",
                                 *(["--timings", str(timings)] if timings else [])])
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None


def cpu_seconds(pid: int, children: bool = False) -> float:
    """CPU seconds (user + system) of process `pid` so far, with `children` its child
    processes' too (the refit worker); 0 where /proc cannot tell (not Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        if children:
            for task in Path(f"/proc/{pid}/task").iterdir():
                for child in (task / "children").read_text().split():
                    total += cpu_seconds(int(child), children=True)
        return total
    except (OSError, ValueError, IndexError):
        return 0.0


def waited_for_cpu(pid: int) -> float:
    """Seconds the main thread of `pid` was ready to run but every core was taken
    (the scheduler's run-queue wait, /proc/PID/schedstat; 0 where it cannot tell)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def machine_busy() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine so far (/proc/stat; 0s elsewhere)."""
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    hz = os.sysconf("SC_CLK_TCK")
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks[:8]) - idle) / hz, sum(ticks[:8]) / hz


def listen(url: str, seconds: float, out: "multiprocessing.Queue") -> None:
    """The open page: (monotonic time, n_votes, refit_n_votes) of every SSE event."""
    import httpx

    seen = []
    deadline = time.monotonic() + seconds
    with httpx.Client(timeout=None) as client:
        with client.stream("GET", f"{url}/events") as response:
            out.put("ready")
            for line in response.iter_lines():
                if line.startswith("data: "):
                    live = json.loads(line[6:])["live"]
                    seen.append((time.monotonic(), live["n_votes"], live["refit_n_votes"]))
                if time.monotonic() > deadline:
                    break
    out.put(seen)


class Connection:
    """A bare keep-alive HTTP/1.1 client with one cookie jar: a voter's browser tab.

    (httpx costs several times the server's own CPU per request; on two cores the
    benchmark would measure the client.)"""

    def __init__(self, url: str):
        host, port = url.split("//")[1].split(":")
        self.host, self.port = host, int(port)
        self.cookie: str | None = None
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: dict | None = None
                      ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        data = b"" if body is None else json.dumps(body).encode()
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if self.cookie:
            head.append(f"Cookie: {self.cookie}")
        if body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.lower()
            if name == "content-length":
                length = int(value)
            elif name == "set-cookie":
                self.cookie = value.strip().split(";")[0]
        return status, await self.reader.readexactly(length)

    def reset(self) -> None:
        """Drop the connection (the next request opens a new one, as a browser does)."""
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def get_json(self, path: str) -> dict:
        status, data = await self.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {data[:200]!r}")
        return json.loads(data)


async def voter(url: str, stop_at: float, think: float, images: bool, log: dict) -> None:
    tab = Connection(url)
    side = Connection(url)  # the second image loads in parallel, as in a browser
    first = True
    while time.monotonic() < stop_at:
        cycle = time.monotonic()
        try:
            pair = await tab.get_json("/api/pair")
            side.cookie = tab.cookie
            if images:
                for got in await asyncio.gather(
                        tab.request("GET", pair["left"]["image_url"]),
                        side.request("GET", pair["right"]["image_url"]),
                        return_exceptions=True):
                    if isinstance(got, BaseException):
                        raise got
            sent = time.monotonic()
            status, data = await tab.request("POST", "/api/vote",
                                             {"token": pair["token"], "choice": "left"})
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            # a connection the server closed or reset: counted, then a new one
            log["dropped"].append(type(exc).__name__)
            tab.reset()
            side.reset()
            continue
        done = time.monotonic()
        if 200 <= status < 300:
            # the first cycle opens the connections and reads images from disk: warm-up
            log["ok"].append((sent, done - sent, None if first else done - cycle,
                              json.loads(data)["n_votes"]))
            first = False
        else:
            log["refused"].append(status)
        if think:  # jittered, so voters do not all vote in the same instant
            await asyncio.sleep(think * random.uniform(0.5, 1.5))
    for conn in (tab, side):
        if conn.writer is not None:
            conn.writer.close()


TARGET_MS = 100.0  # the vote's p99 under the flat-out load


def first_at(events: list, column: int, n: int, start: int) -> tuple[float | None, int]:
    """Time of the first event (from index `start`) whose column counts vote n."""
    for k in range(start, len(events)):
        if events[k][column] >= n:
            return events[k][0], k
    return None, len(events)


def delays(ok: list, events: list, column: int) -> list[float]:
    out, k = [], 0
    for sent, _, _, n in sorted(ok, key=lambda r: r[3]):
        at, k = first_at(events, column, n, k)
        if at is not None:
            out.append(at - sent)
    return out


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a finished run (default: a synthetic one)")
    parser.add_argument("--voters", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--think", type=float, default=0.0,
                        help="mean seconds each voter waits between votes, jittered +-50%% "
                             "(default 0: flat out)")
    parser.add_argument("--no-images", action="store_true", help="skip the image requests")
    parser.add_argument("--no-timings", action="store_true",
                        help="serve without --timings (no server-side breakdown; for an "
                             "arena from before it, or to see the bookkeeping's cost)")
    args = parser.parse_args()
    if not 1 <= args.voters <= 500 or not 0 < args.seconds <= 600:
        parser.error("--voters must be 1..500 and --seconds 0..600")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or synthetic_run(Path(tmp))
        votes, timings = Path(tmp) / "votes.sqlite", Path(tmp) / "timings.json"
        proc, url = start_server(run, votes, None if args.no_timings else timings)
        try:
            results = asyncio_run(url, args, proc.pid)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
        results["server"] = json.loads(timings.read_text()) if timings.is_file() else None
        export = Path(tmp) / "votes.jsonl"
        done = subprocess.run([sys.executable, "-m", "autojudge.arena", str(run), "--votes",
                               str(votes), "--export", str(export)], capture_output=True,
                              text=True)
        exported = sum(1 for _ in export.open()) if done.returncode == 0 else 0
    return report(results, exported, args)


def asyncio_run(url: str, args: argparse.Namespace, server: int) -> dict:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    page = ctx.Process(target=listen, args=(url, args.seconds + 8, queue))
    page.start()
    assert queue.get(timeout=60) == "ready"
    log: dict = {"ok": [], "refused": [], "dropped": [], "client_lag": [],
                 "load": [os.getloadavg()[0]]}

    def cpu() -> list[float]:  # server (with its refit worker), its worker, page, machine
        return [cpu_seconds(server), cpu_seconds(server, children=True) - cpu_seconds(server),
                cpu_seconds(page.pid), time.process_time(), *machine_busy(),
                waited_for_cpu(server), waited_for_cpu(os.getpid())]

    before = cpu()
    start = time.monotonic()
    stop_at = start + args.seconds

    async def lag() -> None:  # how late this process's loop wakes: latency it adds
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            log["client_lag"].append(max(0.0, loop.time() - before - 0.01))

    async def crowd() -> None:
        probe = asyncio.create_task(lag())
        await asyncio.gather(*(voter(url, stop_at, args.think, not args.no_images, log)
                               for _ in range(args.voters)))
        probe.cancel()

    asyncio.run(crowd())
    log["elapsed"] = time.monotonic() - start
    log["cpu"] = [b - a for a, b in zip(before, cpu())]
    log["load"].append(os.getloadavg()[0])
    log["events"] = queue.get(timeout=120)
    page.join(timeout=30)
    return log


def report(log: dict, exported: int, args: argparse.Namespace) -> int:
    ok = log["ok"]
    if not ok:
        print("no vote succeeded")
        return 1
    post = [r[1] * 1000 for r in ok]
    cycle = [r[2] * 1000 for r in ok if r[2] is not None]
    live = [d * 1000 for d in delays(ok, log["events"], 1)]
    refit = [d for d in delays(ok, log["events"], 2)]
    print(f"{args.voters} voters, {log['elapsed']:.1f} s, think {args.think} s, "
          f"images {'off' if args.no_images else 'on'}")
    print(f"votes: {len(ok)} accepted ({len(ok) / log['elapsed']:.0f} votes/s), "
          f"{len(log['refused'])} refused {sorted(set(log['refused']))}"
          + (f", {len(log['dropped'])} connections dropped by the server "
             f"{sorted(set(log['dropped']))}" if log["dropped"] else ""))
    p99 = pct(post, 99)
    print(f"vote POST latency: p50 {statistics.median(post):.1f} ms, p99 {p99:.1f} ms,"
          f" max {max(post):.1f} ms -> p99 {'under' if p99 < TARGET_MS else 'OVER'} the "
          f"{TARGET_MS:.0f} ms target")
    if cycle:
        print(f"pair+images+vote cycle: p50 {statistics.median(cycle):.1f} ms, "
              f"p99 {pct(cycle, 99):.1f} ms")
    if live:
        print(f"vote -> SSE update (online Elo): p50 {statistics.median(live):.0f} ms, "
              f"p99 {pct(live, 99):.0f} ms, max {max(live):.0f} ms "
              f"({len(log['events'])} events)")
    if refit:
        print(f"vote -> SSE with a BT refit that includes it: p50 "
              f"{statistics.median(refit):.2f} s, max {max(refit):.2f} s")
    if log.get("server"):
        where_time_went(log, post)
    cpu_report(log, len(ok))
    lost = len(ok) - exported
    # more stored than answered: a vote whose answer a dropped connection never brought
    print(f"export: {exported} votes; 2xx answers: {len(ok)}; "
          f"{'no vote lost' if lost <= 0 else f'{lost} LOST'}"
          + (f" ({-lost} stored, their answers dropped)" if lost < 0 else ""))
    return 0 if lost <= 0 else 1


STAGE_NOTES = {"checks": "request in -> handed to the writer: body, JSON, token, limits",
               "queued": "-> its group commit starts (the commit before it, the GIL)",
               "commit": "-> on disk: one INSERT + fsync for its batch",
               "to_loop": "-> the event loop sees it (the handler's next turn looks)",
               "resume": "-> the vote's handler runs again (0: it saw it itself)",
               "answer": "-> answer written: ratings, JSON, headers"}


def where_time_went(log: dict, post: list[float]) -> None:
    """The server's own measurements (--timings) beside the voters' clock."""
    server = log["server"]
    stages, batch, slow = server["stages"], server["batch"], server["slowest_votes"]
    print("where a vote's time went (server side, ms: p50 / p99 / mean of the slowest 1%):")
    for stage in server["vote_stages"]:
        if stage in stages:
            row = stages[stage]
            print(f"  {stage:8} {row['p50_ms']:7.2f} / {row['p99_ms']:7.2f} / "
                  f"{slow.get(stage, 0.0):7.2f}   {STAGE_NOTES[stage]}")
    app = stages.get("serve POST /api/vote")
    if app:
        outside = statistics.median(post) - app["p50_ms"]
        print(f"  in the app {app['p50_ms']:.2f} / {app['p99_ms']:.2f} / "
              f"{slow.get('total_ms', 0.0):.2f}; outside it (sockets, uvicorn, both event "
              f"loops' queues) p50 {outside:.1f} ms of the voters' {statistics.median(post):.1f}")
    print(f"  votes per commit: mean {batch['mean']}, p99 {batch['p99']}, max "
          f"{batch['max']} ({batch['commits']} commits)")
    lag, client = stages.get("loop_lag"), sorted(log["client_lag"])
    if lag and client:
        print(f"event-loop lag (a ready callback's wait), p50 / p99 ms: server "
              f"{lag['p50_ms']:.1f} / {lag['p99_ms']:.1f}, voters "
              f"{1000 * pct(client, 50):.1f} / {1000 * pct(client, 99):.1f}")
    routes = sorted((k for k in stages if k.startswith("serve ")),
                    key=lambda k: -stages[k]["total_s"])
    print("server time by route (mean ms x requests): " + ", ".join(
        f"{k[6:]} {stages[k]['mean_ms']:.2f} x {stages[k]['n']}" for k in routes))
    gc_rows = [f"{k} {stages[k]['n']} x {stages[k]['mean_ms']:.1f} ms (max "
               f"{stages[k]['max_ms']:.0f})" for k in sorted(stages) if k.startswith("gc ")]
    print("server garbage collections: " + (", ".join(gc_rows) or "none"))


def cpu_report(log: dict, n_votes: int) -> None:
    """Who had the cores: this benchmark's processes, and everything else running."""
    server_s, worker_s, page_s, client_s, busy_s, all_s, server_wait, client_wait = log["cpu"]
    ours = server_s + worker_s + page_s + client_s
    cores = os.cpu_count() or 1
    busy = cores * busy_s / all_s if all_s else 0.0
    wall = log["elapsed"]
    print(f"CPU, in cores busy over the run ({cores} here): server {server_s / wall:.2f}, "
          f"refit worker {worker_s / wall:.2f}, voters {client_s / wall:.2f}, SSE page "
          f"{page_s / wall:.2f}; the whole machine {busy:.2f}, of which other work "
          f"{max(0.0, busy - ours / wall):.2f}; server CPU per vote (with its pair and "
          f"images) {1000 * server_s / n_votes:.2f} ms; load average {log['load'][0]:.2f} before, "
          f"{log['load'][1]:.2f} after")
    print(f"ready to run but no free core (run-queue wait), share of the run: the server's "
          f"event loop {server_wait / wall:.0%}, the voters' {client_wait / wall:.0%}")


if __name__ == "__main__":
    sys.exit(main())
