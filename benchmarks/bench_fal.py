"""fal generator throughput against a local fal-compatible server with a fixed service time.

    python benchmarks/bench_fal.py [--concurrency 32 128] [--requests 200 512] [--service 0.2]

The server (autojudge.testing.fake_fal, TLS, in a separate process so it does not share
the GIL with the client) answers every request after exactly `--service` seconds, with
unlimited parallel capacity. For each concurrency, in one run:

- autojudge's FalGenerator (fal_client.AsyncClient, bounded concurrency) wall time vs the
  ideal requests / concurrency * service, OK or above its target (--targets: 1.15x at
  32, 1.3x at 128), with the client's and the server's CPU per request, the calls that
  reached the server per request and the load average while it ran (the machine may be
  shared: best of --repeats; the first repeat opens the connections, TLS handshakes at
  both ends, and the others reuse them, as a run's later batches do);
- the floor for whole waves, ceil(requests / concurrency) * service: with a fixed service
  time no schedule beats it (pick requests as a multiple of the concurrency to make the
  ideal reachable);
- plain sequential `fal_client.subscribe` over a sample of the requests, extrapolated, and
  the speed-up ratio (first concurrency only).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time

COUNTERS = ("submits", "status_polls", "status_streams", "result_gets", "connections")


def serve(replies: "mp.Queue", asks: "mp.Queue", service: float, folder: str) -> None:
    from autojudge.testing.fake_fal import FakeFal

    server = FakeFal(folder, service_s=service, expected_key="bench:key").start()
    replies.put((server.host, str(server.cert_path)))
    while True:  # each ask: the server's counters and its CPU time so far
        asks.get()
        replies.put({**{name: int(sum(getattr(server, name).values())
                                  if name == "submits" else getattr(server, name))
                        for name in COUNTERS}, "cpu": time.process_time()})


def measure(args: argparse.Namespace, concurrency: int, n: int, target: float,
            server: tuple["mp.Queue", "mp.Queue"]) -> float:
    from autojudge.generators.fal import FalGenerator
    from autojudge.types import GenRequest, Prompt

    replies, asks = server

    def counters() -> dict:
        asks.put(None)
        return replies.get(timeout=30)

    requests = [GenRequest(Prompt(id=f"p{i}", text=f"prompt {i}"), i) for i in range(n)]
    gen = FalGenerator("bench", FalGenerator.Config(
        endpoint="fal-ai/flux/schnell", width=64, height=64, concurrency=concurrency,
        poll_interval_s=args.poll, timeout_s=60))
    gen.generate(requests[:4])  # warm-up: imports, TLS
    runs = []
    for _ in range(args.repeats):  # best of N: robust to a busy machine
        before, load = counters(), os.getloadavg()[0]
        start, cpu = time.perf_counter(), time.process_time()
        outs = gen.generate(requests)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        after = counters()
        assert all(o.ok for o in outs), [o.failure for o in outs if not o.ok][:3]
        runs.append((wall, cpu, {k: after[k] - before[k] for k in after},
                     max(load, os.getloadavg()[0])))
    wall, cpu, calls, load = min(runs, key=lambda run: run[0])
    ideal = n / concurrency * args.service
    waves = -(-n // concurrency) * args.service
    ratio = wall / ideal
    print(f"fal: {n} requests, service {args.service:.3f}s, concurrency {concurrency}")
    print(f"  FalGenerator (async, bounded)   {wall:7.2f} s   ideal {ideal:.2f} s   ratio to "
          f"ideal {ratio:.2f}x: {'OK' if ratio <= target else 'above'} (target {target:g}x; "
          f"best of {args.repeats}: {', '.join(f'{r[0] / ideal:.2f}x' for r in runs)})")
    print(f"  floor for whole waves           {waves:7.2f} s   (ceil(requests / concurrency) x "
          f"service = {waves / ideal:.2f}x the ideal; FalGenerator is {wall / waves:.2f}x it)")
    print(f"  CPU per request                 client {cpu / n * 1e3:.2f} ms, server "
          f"{calls.pop('cpu') / n * 1e3:.2f} ms   (load average {load:.1f} on "
          f"{os.cpu_count()} cores)")
    print("  calls at the server per request " + ", ".join(
        f"{name} {calls[name] / n:.2f}" for name in COUNTERS))
    return wall


def sequential(args: argparse.Namespace, n: int, wall: float) -> None:
    import fal_client
    import fal_client.client as fc

    from autojudge.generators.fal_transport import apply_host_env

    apply_host_env(fc)
    client = fal_client.SyncClient(key="bench:key")
    sample = min(args.sequential_sample, n)
    start = time.perf_counter()
    for i in range(sample):
        client.subscribe("fal-ai/flux/schnell", {"prompt": f"prompt {i}", "seed": i,
                                                  "image_size": {"width": 64, "height": 64}},
                         interval=args.poll)
    seq = (time.perf_counter() - start) / sample * n
    print(f"  sequential fal_client.subscribe {seq:7.2f} s   for {n} requests "
          f"({'measured' if sample == n else f'{sample} measured, extrapolated'})")
    print(f"  speed-up vs sequential          {seq / wall:7.1f}x   (FalGenerator at concurrency "
          f"{args.concurrency[0]})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--requests", type=int, nargs="+", default=None,
                        help="one per concurrency, or one for all (default: 200 at 32, "
                             "else 4 x concurrency: whole waves)")
    parser.add_argument("--targets", type=float, nargs="+", default=None,
                        help="ratio-to-ideal targets, one per concurrency, or one for all "
                             "(default: 1.15 up to 32, else 1.3)")
    parser.add_argument("--service", type=float, default=0.2)
    parser.add_argument("--poll", type=float, default=0.1,
                        help="status poll interval (s), where the status stream is missing")
    parser.add_argument("--repeats", type=int, default=3, help="best of N runs")
    parser.add_argument("--sequential-sample", type=int, default=20, help="0: skip")
    args = parser.parse_args()
    k = len(args.concurrency)
    if args.requests is None:
        args.requests = [200 if c == 32 else 4 * c for c in args.concurrency]
    if args.targets is None:
        args.targets = [1.15 if c <= 32 else 1.3 for c in args.concurrency]
    for name in ("requests", "targets"):
        values = getattr(args, name)
        if len(values) not in (1, k):
            parser.error(f"--{name}: give one value, or one per --concurrency ({k})")
        setattr(args, name, values * k if len(values) == 1 else values)
    if min(args.concurrency + args.requests) < 1 or args.service <= 0 or args.repeats < 1:
        parser.error("--concurrency, --requests and --repeats must be >= 1, --service > 0")

    replies: mp.Queue = mp.Queue()
    asks: mp.Queue = mp.Queue()
    proc = mp.Process(target=serve, args=(replies, asks, args.service, tempfile.mkdtemp()),
                      daemon=True)
    proc.start()
    host, cert = replies.get(timeout=30)
    os.environ.update(FAL_QUEUE_RUN_HOST=host, FAL_RUN_HOST=host, SSL_CERT_FILE=cert,
                      FAL_KEY="bench:key")
    try:
        walls = [measure(args, concurrency, n, target, (replies, asks))
                 for concurrency, n, target in zip(args.concurrency, args.requests, args.targets)]
        if args.sequential_sample > 0:
            sequential(args, args.requests[0], walls[0])
    finally:
        proc.terminate()


if __name__ == "__main__":
    sys.exit(main())
