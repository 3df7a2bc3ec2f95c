"""diffusers generator on a tiny random pipeline: batching speed-up and harness overhead.

    python benchmarks/bench_diffusers.py [--images 16] [--steps 5] [--size 64] [--repeats 5]

Builds a tiny random StableDiffusionPipeline offline (tests/tiny_diffusers.py), then, side
by side in one run:

- images/s through DiffusersGenerator with batch_size 1 and batch_size 8;
- the same batches called directly on the pipeline (same prompts, same per-image
  generators, PNG encoding included on both sides), and the harness overhead
  (generator time / direct time - 1; aim <= 10%).
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import warnings

    import torch
    from diffusers.utils import logging as diffusers_logging

    warnings.filterwarnings("ignore")
    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()

    from autojudge.generators.diffusers_local import DiffusersGenerator
    from autojudge.types import GenRequest, Prompt
    from tiny_diffusers import build_tiny_sd

    folder = build_tiny_sd(Path(tempfile.mkdtemp()) / "sd")
    requests = [GenRequest(Prompt(id=f"p{i}", text=f"a photo of object {i}"), i)
                for i in range(args.images)]

    def harness_once(gen) -> float:
        start = time.perf_counter()
        outs = gen.generate(requests)
        assert all(o.ok for o in outs)
        return time.perf_counter() - start

    def direct_once(pipe, batch: int) -> float:
        start = time.perf_counter()
        for i in range(0, len(requests), batch):
            chunk = requests[i:i + batch]
            with torch.inference_mode():
                images = pipe(prompt=[r.prompt.text for r in chunk],
                              num_inference_steps=args.steps, guidance_scale=7.5,
                              width=args.size, height=args.size,
                              generator=[torch.Generator("cpu").manual_seed(r.seed)
                                         for r in chunk]).images
            for image in images:
                image.save(io.BytesIO(), format="PNG", compress_level=6)
        return time.perf_counter() - start

    print(f"diffusers (tiny random SD, {args.size}x{args.size}, {args.steps} steps, "
          f"{args.images} images, best of {args.repeats} interleaved runs, torch threads "
          f"{torch.get_num_threads()})")
    rows = {}
    for batch in (1, 8):
        gen = DiffusersGenerator("bench", DiffusersGenerator.Config(
            model=str(folder), num_inference_steps=args.steps, width=args.size,
            height=args.size, batch_size=batch))
        gen.generate(requests[:batch])  # load + warm-up
        pipe = gen.pipeline()
        t_harness, t_direct = [], []
        for _ in range(args.repeats):  # interleaved, best of: robust to a busy machine
            t_harness.append(harness_once(gen))
            t_direct.append(direct_once(pipe, batch))
        rows[batch] = (min(t_harness), min(t_direct))
        h, d = rows[batch]
        print(f"  batch {batch}: harness {args.images / h:7.1f} img/s   "
              f"direct pipeline {args.images / d:7.1f} img/s   "
              f"overhead {100 * (h / d - 1):+5.1f}%")
    print(f"  batching speed-up (batch 8 vs 1, harness): {rows[1][0] / rows[8][0]:.2f}x")


if __name__ == "__main__":
    main()
