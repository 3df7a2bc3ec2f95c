"""VLM judge throughput against a local OpenAI-compatible server with a fixed service time.

    python benchmarks/bench_vlm.py [--pairs 400] [--concurrency 16] [--service 0.5]

The server (autojudge.testing.fake_openai, in a separate process so it does not share the
GIL with the client) answers every chat-completions request after exactly `--service`
seconds, with unlimited parallel capacity. The real `vlm` judge is driven the way a run
drives it: through `stages.runner.JudgeRunner` with swap-debiasing (both orders: 2
requests per pair decision), handed over as the judge stage hands them (`batch_size`
pairs per plugin call: the judge's own, at least 2 x concurrency), into a fresh store
each repeat. Prints, in one run:

- wall time vs the ideal requests / concurrency x service, the ratio (aim: <= 1.15x),
  client CPU seconds per request, the most requests the server held at once; best of
  `--repeats`;
- a 429 part: a second server answers `--limit-share` of the requests HTTP 429 with
  `Retry-After: --retry-after` on their first attempt. The judge's own backoff is set far
  shorter (`backoff_s` 0.01), so the shortest wait the server saw between a 429 and the
  retry shows whether Retry-After was honoured; every decision must still come back.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
import urllib.request
from itertools import combinations
from pathlib import Path
from typing import Any


def serve(queue: "mp.Queue", service: float, share: float, retry_after: float) -> None:
    from autojudge.testing.fake_openai import FakeOpenAI

    plain = FakeOpenAI(service).start()
    limited = FakeOpenAI(service, rate_limit_share=share, retry_after_s=retry_after).start()
    queue.put((plain.base_url, limited.base_url))
    while True:
        time.sleep(3600)


def server_call(base_url: str, path: str) -> dict[str, Any]:
    root = base_url.rsplit("/v1", 1)[0]
    method = "POST" if path == "/reset" else "GET"
    request = urllib.request.Request(root + path, data=b"" if method == "POST" else None,
                                     method=method)
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def make_pairs(n_pairs: int, size: int) -> list[Any]:
    """`n_pairs` pairs over 5 models: 10 pairs per prompt, each image in 4 pairs (as a
    run of 5 models compares them), images like generated ones (smooth plus grain)."""
    import hashlib

    import numpy as np
    from PIL import Image

    from autojudge.types import JudgeItem, PairItem, Prompt

    models = 5
    per_prompt = models * (models - 1) // 2
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    pairs: list[Any] = []
    for p in range(-(-n_pairs // per_prompt)):
        prompt = Prompt(id=f"p{p}", text=f"a photo of object {p} on a table")
        items = []
        for m in range(models):
            f1, f2 = rng.uniform(1, 6, 2)
            base = np.stack([np.sin(xx * f1 + c) * np.cos(yy * f2 - c) for c in (0, 1, 2)], -1)
            pixels = (127 + 100 * base + rng.normal(0, 6, base.shape)).clip(0, 255)
            image = Image.fromarray(pixels.astype(np.uint8))
            items.append(JudgeItem(prompt, image, hashlib.sha256(image.tobytes()).hexdigest()))
        pairs += [PairItem(prompt, items[a], items[b]) for a, b in combinations(range(models), 2)]
    return pairs[:n_pairs]


def judge_once(base_url: str, pairs: list[Any], args: argparse.Namespace,
               backoff_s: float) -> tuple[float, float, list[Any], dict[str, Any]]:
    """(wall s, client CPU s, verdicts, the judge's run stats): a fresh judge and store,
    one runner call per `batch_size` prompts as `stages.judge.run_judge` hands them over
    (the runner splits each into plugin calls of `batch_size` pairs)."""
    from autojudge.judges.vlm_preference import VLMPreferenceJudge
    from autojudge.stages.runner import JudgeRunner, RunnerSettings
    from autojudge.store.index import Store

    judge = VLMPreferenceJudge("vlm", VLMPreferenceJudge.Config(
        base_url=base_url, model="bench-vlm", api_key_env="", concurrency=args.concurrency,
        batch_size=args.batch_size, image_format=args.image_format, backoff_s=backoff_s,
        max_retries=3, timeout_s=60.0))
    runner = JudgeRunner("vlm", judge, Store(Path(tempfile.mkdtemp()) / "store"),
                         RunnerSettings(swap=True, orient=False))
    per_call = runner.batch_size * runner.parallelism  # prompts per runner call
    prompts = list(dict.fromkeys(p.prompt.id for p in pairs))
    chunks = [set(prompts[i:i + per_call]) for i in range(0, len(prompts), per_call)]
    server_call(base_url, "/reset")
    server_cpu = server_call(base_url, "/stats")["cpu_s"]
    start, cpu = time.perf_counter(), time.process_time()
    verdicts = []
    for chunk in chunks:
        verdicts += [tv.verdict for tv in runner.verdicts([p for p in pairs
                                                           if p.prompt.id in chunk])]
    wall, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    stats = {**(runner.run_stats() or {}), "batch_size": runner.batch_size,
             "server_cpu_s": server_call(base_url, "/stats")["cpu_s"] - server_cpu}
    return wall, cpu_s, verdicts, stats


def lost(verdicts: list[Any]) -> int:
    """Decisions that did not come back as a consistent winner (the fake server's two
    orders always agree, so a tie here means an order failed)."""
    return sum(v.failure is not None or v.winner not in ("model_a", "model_b")
               for v in verdicts)


def latencies(verdicts: list[Any]) -> list[float]:
    """Seconds each answered request took as the judge saw it (both orders)."""
    return sorted(float(o["latency_s"]) for v in verdicts
                  for o in (v.raw.get("orders") or {}).values()
                  if isinstance(o, dict) and "latency_s" in o)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=400, help="pair decisions (2 requests each)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="judge batch_size (default: the judge's default; the judge "
                             "raises it to 2 x concurrency)")
    parser.add_argument("--service", type=float, default=0.5, help="server seconds per request")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--image-format", choices=("png", "jpeg"), default="png",
                        help="the judge's image_format (PNG: ~16 ms CPU per 256 px image, "
                             "~60 ms at 512 px; jpeg ~1.5 ms)")
    parser.add_argument("--repeats", type=int, default=3, help="best of N runs")
    parser.add_argument("--limit-share", type=float, default=0.1,
                        help="share of requests answered 429 once (0: skip the 429 part)")
    parser.add_argument("--retry-after", type=float, default=1.0, help="Retry-After seconds")
    args = parser.parse_args()
    if args.pairs < 1 or args.concurrency < 1 or args.repeats < 1 or args.service <= 0 \
            or not 0 <= args.limit_share <= 1 or (args.batch_size or 1) < 1:
        print("error: --pairs, --concurrency, --repeats, --batch-size >= 1, --service > 0, "
              "0 <= --limit-share <= 1", file=sys.stderr)
        return 2
    if args.batch_size is None:
        from autojudge.judges.vlm_preference import VLMPreferenceJudge

        args.batch_size = VLMPreferenceJudge.Config.batch_size

    queue: mp.Queue = mp.Queue()
    proc = mp.Process(target=serve, daemon=True,
                      args=(queue, args.service, args.limit_share, args.retry_after))
    proc.start()
    try:
        plain_url, limited_url = queue.get(timeout=30)
        return run(args, plain_url, limited_url)
    finally:
        proc.terminate()


def run(args: argparse.Namespace, plain_url: str, limited_url: str) -> int:
    pairs = make_pairs(args.pairs, args.size)
    # warm-up: imports, the first client
    batch = judge_once(plain_url, make_pairs(4, 32), args, 1.0)[3]["batch_size"]
    requests = 2 * len(pairs)
    ideal = requests / args.concurrency * args.service
    print(f"vlm judge: {len(pairs)} pair decisions with swap ({requests} requests), "
          f"{args.size}px images as {args.image_format}, service {args.service:g} s, concurrency "
          f"{args.concurrency}, batch_size {batch} pairs per call (via JudgeRunner)")
    runs = []
    for _ in range(args.repeats):  # best of N: robust to a busy machine
        wall, cpu_s, verdicts, judge_stats = judge_once(plain_url, pairs, args, 1.0)
        runs.append((wall, cpu_s, lost(verdicts), server_call(plain_url, "/stats"),
                     latencies(verdicts)))
        print(f"  run: {wall:6.2f} s  ratio {wall / ideal:.3f}x  client CPU {cpu_s:.2f} s  "
              f"server CPU {judge_stats['server_cpu_s']:.2f} s")
    wall, cpu_s, missing, stats, seen = min(runs, key=lambda r: r[0])
    ratio = wall / ideal
    print(f"  best of {args.repeats}:  wall {wall:.2f} s   ideal {ideal:.2f} s   ratio to ideal "
          f"{ratio:.3f}x ({'OK' if ratio <= 1.15 else 'above'} the 1.15x target)")
    print(f"  client CPU {cpu_s:.2f} s = {cpu_s / requests * 1000:.1f} ms per request; server "
          f"saw {stats['requests']} requests, at most {stats['peak_in_flight']} at once; "
          f"{missing} decisions lost")
    if seen:  # the part of the gap the requests themselves took (HTTP, both processes)
        mean = sum(seen) / len(seen)
        print(f"  request latency as the judge saw it: mean {mean:.3f} s, p95 "
              f"{seen[int(0.95 * (len(seen) - 1))]:.3f} s, max {seen[-1]:.3f} s (service "
              f"{args.service:g} s); wall / (requests / concurrency x mean latency) = "
              f"{wall / (requests / args.concurrency * mean):.3f}x")
    failed = missing > 0 or stats["answered"] != requests
    if args.limit_share > 0:
        failed |= rate_limited_part(args, limited_url, pairs, ideal)
    return 1 if failed else 0


def rate_limited_part(args: argparse.Namespace, url: str, pairs: list[Any],
                      ideal: float) -> bool:
    """One run against the rate-limiting server; True when it went wrong."""
    wall, _cpu, verdicts, judge_stats = judge_once(url, pairs, args, backoff_s=0.01)
    stats = server_call(url, "/stats")
    missing = lost(verdicts)
    gap = stats["retry_gap_min_s"]
    honoured = gap is not None and gap >= args.retry_after * 0.99
    print(f"429 part: {stats['rate_limited']} of {2 * len(pairs)} requests answered 429 with "
          f"Retry-After {args.retry_after:g} s (judge backoff_s 0.01)")
    # each wait holds its request's slot: the waits add to the work the slots share
    waited = ideal + stats["rate_limited"] * args.retry_after / args.concurrency
    print(f"  wall {wall:.2f} s; ideal with the waits {waited:.2f} s (ratio {wall / waited:.3f}x; "
          f"no-429 ideal {ideal:.2f} s); judge retries {judge_stats.get('retries')}")
    print(f"  shortest wait before a retry {'-' if gap is None else f'{gap:.3f} s'} -> "
          f"Retry-After {'honoured' if honoured else 'NOT honoured'}; {missing} decisions lost")
    return missing > 0 or (stats["rate_limited"] > 0 and not honoured)


if __name__ == "__main__":
    sys.exit(main())
