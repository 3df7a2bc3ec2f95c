"""CLIP judge throughput, measured side by side in one run.

On a randomly initialised transformers CLIPModel with the shape of the judge's default,
ViT-B/32 (`--model b32`: vision 12 layers width 768, text 12 layers width 512, projection
512; no weights can be downloaded here, and speed depends on the shape, not the values),
or a small one (`--model small`: vision 6 x 384, text 4 x 256), with the real CLIP BPE
tokenizer; CPU unless --device:

  floor (forward)   the bare model forward on the same batches, inputs already tensors
  floor (by hand)   what a user writes by hand: processor + forward + cosine per batch
  judge             CLIPScoreJudge.score over all images (preprocessing, tokenising,
                    forward, embedding bookkeeping, Score objects), model already loaded
  torchmetrics      torchmetrics' CLIPScore called image by image (the common recipe),
                    timed on the first --tm-images images and reported per image

and then the embedding sharing of a clip + aesthetic run on the same backbone (images
through the image tower vs images scored).

    python benchmarks/bench_clip.py                 # ViT-B/32 shape, 512 images, batch 64
    python benchmarks/bench_clip.py --model small --n 128 --repeats 1
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


SHAPES = {
    # ViT-B/32, as open_clip's ViT-B-32 / openai/clip-vit-base-patch32
    "b32": dict(text=dict(hidden_size=512, intermediate_size=2048, num_attention_heads=8,
                          num_hidden_layers=12),
                vision=dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                            num_hidden_layers=12), projection_dim=512),
    "small": dict(text=dict(hidden_size=256, intermediate_size=1024, num_attention_heads=4,
                            num_hidden_layers=4),
                  vision=dict(hidden_size=384, intermediate_size=1536, num_attention_heads=6,
                              num_hidden_layers=6), projection_dim=256),
}


def build_model(folder: Path, shape: str = "small") -> Path:
    import torch
    from tiny_clip import _write_clip_tokenizer_files
    from transformers import (CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor,
                              CLIPTokenizer)

    folder.mkdir(parents=True, exist_ok=True)
    tok_dir = folder / "_tok"
    tok_dir.mkdir(exist_ok=True)
    _write_clip_tokenizer_files(tok_dir)
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 224},
                                           crop_size={"height": 224, "width": 224}),
        tokenizer=CLIPTokenizer.from_pretrained(str(tok_dir)))
    dims = SHAPES[shape]
    proj = dims["projection_dim"]
    config = CLIPConfig(
        text_config=dict(**dims["text"], vocab_size=49408, max_position_embeddings=77,
                         projection_dim=proj, eos_token_id=49407, bos_token_id=49406,
                         pad_token_id=49407),
        vision_config=dict(**dims["vision"], image_size=224, patch_size=32,
                           projection_dim=proj),
        projection_dim=proj)
    torch.manual_seed(0)
    CLIPModel(config).eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def make_items(n: int, size: int):
    from autojudge.experiment.validation import _scene
    from autojudge.types import JudgeItem, Prompt

    subjects = ["cat", "dog", "red bicycle", "lighthouse", "bowl of ramen", "astronaut",
                "yellow taxi", "green parrot", "old book", "snowy mountain", "sailboat", "robot"]
    items = []
    for i in range(n):
        image = _scene(i, size)
        prompt = Prompt(id=f"p{i}", text=f"a photo of a {subjects[i % len(subjects)]}, "
                                         f"variation {i}")
        items.append(JudgeItem(prompt, image, hashlib.sha256(image.tobytes()).hexdigest()))
    return items


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tm-images", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", choices=sorted(SHAPES), default="b32",
                        help="model shape (random weights)")
    args = parser.parse_args()

    import numpy as np
    import torch
    from torchmetrics.multimodal.clip_score import CLIPScore

    from autojudge.judges.clip_backbone import clear_backbones
    from autojudge.judges.clip_score import CLIPScoreJudge

    tmp = Path(tempfile.mkdtemp(prefix="bench-clip-"))
    model_dir = build_model(tmp / "openai-bench-clip", args.model)
    items = make_items(args.n, args.size)
    texts = [it.prompt.text for it in items]
    batches = [slice(s, s + args.batch) for s in range(0, args.n, args.batch)]
    print(f"model shape {args.model}; torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}; "
          f"{args.n} images {args.size}x{args.size}, batch {args.batch}, best of {args.repeats}")

    judge = CLIPScoreJudge("clip", CLIPScoreJudge.Config(
        backend="transformers", arch=str(model_dir), device=args.device,
        batch_size=args.batch))
    backbone = judge.backbone
    backbone.load()
    model, processor = backbone.model, backbone.processor

    # the same batches, preprocessed once, outside the timing
    pixels = [backbone.pixel_batch([it.image for it in items[b]]) for b in batches]
    tokens = [processor.tokenizer(texts[b], padding=True, truncation=True, max_length=77,
                                  return_tensors="pt").to(args.device) for b in batches]

    def features(out):
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    def floor_forward():
        with torch.inference_mode():
            for px, tok in zip(pixels, tokens):
                features(model.get_image_features(pixel_values=px))
                features(model.get_text_features(input_ids=tok["input_ids"],
                                                 attention_mask=tok["attention_mask"]))

    def floor_by_hand():
        out = []
        with torch.inference_mode():
            for b in batches:
                px = backbone.pixel_batch([it.image for it in items[b]])
                tok = processor.tokenizer(texts[b], padding=True, truncation=True,
                                          max_length=77, return_tensors="pt").to(args.device)
                im = features(model.get_image_features(pixel_values=px))
                tx = features(model.get_text_features(input_ids=tok["input_ids"],
                                                      attention_mask=tok["attention_mask"]))
                im = im / im.norm(dim=-1, keepdim=True)
                tx = tx / tx.norm(dim=-1, keepdim=True)
                out.extend((100 * (im * tx).sum(-1)).clamp(min=0).tolist())
        return out

    def judge_run():
        backbone._image_memo.clear()  # cold embedding caches, model stays loaded
        backbone._text_memo.clear()
        return judge.score(items)

    class Features(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m, self.config = m, m.config

        def get_image_features(self, *a, **k):
            return features(self.m.get_image_features(*a, **k))

        def get_text_features(self, *a, **k):
            return features(self.m.get_text_features(*a, **k))

    metric = CLIPScore(model_name_or_path=lambda: (Features(model), processor))
    tm_items = items[:args.tm_images]

    def torchmetrics_one_by_one():
        values = []
        for it in tm_items:
            metric.reset()
            metric.update(torch.from_numpy(np.asarray(it.image).copy()).permute(2, 0, 1),
                          it.prompt.text)
            values.append(float(metric.compute()))
        return values

    judge_run()  # warm-up (allocator, kernels), then interleave the measurements
    floor_forward()
    t_floor, t_hand, t_judge, t_tm = [], [], [], []
    for _ in range(args.repeats):
        t_floor.append(best_of(1, floor_forward))
        t_hand.append(best_of(1, floor_by_hand))
        t_judge.append(best_of(1, judge_run))
        t_tm.append(best_of(1, torchmetrics_one_by_one))
    floor, hand, ours, tm = min(t_floor), min(t_hand), min(t_judge), min(t_tm)
    tm_per_image = tm / len(tm_items)
    scores = [s.value for s in judge.score(items[:len(tm_items)])]
    reference = torchmetrics_one_by_one()
    max_diff = max(abs(a - b) for a, b in zip(scores, reference))

    print()
    print(f"{'':34} {'seconds':>8} {'images/s':>9}")
    print(f"{'floor: bare forward (tensors)':34} {floor:8.2f} {args.n / floor:9.1f}")
    print(f"{'floor: by hand (processor+fwd)':34} {hand:8.2f} {args.n / hand:9.1f}")
    print(f"{'CLIPScoreJudge.score':34} {ours:8.2f} {args.n / ours:9.1f}")
    print(f"{'torchmetrics CLIPScore 1-by-1':34} {tm_per_image * args.n:8.2f} "
          f"{1 / tm_per_image:9.1f}   (timed on {len(tm_items)} images, scaled)")
    print()
    print(f"judge overhead vs bare forward:        {100 * (ours / floor - 1):+.1f}%  "
          f"(preprocessing + tokenising included in the judge only)")
    print(f"judge overhead vs by-hand loop:        {100 * (ours / hand - 1):+.1f}%  "
          f"(same work: the judge's own machinery)")
    print(f"judge speed-up vs torchmetrics 1-by-1: {tm_per_image * args.n / ours:.1f}x")
    print(f"max |judge - torchmetrics| on {len(tm_items)} images: {max_diff:.2e}")

    # clip + aesthetic on one backbone: each image through the image tower once
    from tiny_clip import make_aesthetic_head

    from autojudge.judges.aesthetic import AestheticJudge, file_sha256
    from autojudge.store.index import Store

    clear_backbones()
    head = make_aesthetic_head(tmp / "head.pth", in_dim=SHAPES[args.model]["projection_dim"])
    store = Store(tmp / "store")
    backbone_cfg = dict(backend="transformers", arch=str(model_dir), device=args.device,
                        batch_size=args.batch)
    clip = CLIPScoreJudge("clip", CLIPScoreJudge.Config(**backbone_cfg))
    aes = AestheticJudge("aesthetic", AestheticJudge.Config(
        head=str(head), sha256=file_sha256(head), **backbone_cfg))
    for j in (clip, aes):
        j.attach_store(store)
    clip.score(items)
    aes.score(items)
    c = clip.backbone.counts
    print()
    print(f"clip + aesthetic on one backbone: {2 * args.n} images scored, "
          f"{c.images_encoded} through the image tower, {c.images_from_memory} from the "
          f"embedding cache")
    clear_backbones()
    aes2 = AestheticJudge("aesthetic", AestheticJudge.Config(
        head=str(head), sha256=file_sha256(head), **backbone_cfg))
    aes2.attach_store(store)
    aes2.score(items)
    c2 = aes2.backbone.counts
    print(f"a later run (new process, same store): {c2.images_encoded} encoded, "
          f"{c2.images_from_store} from the store's embeddings table")


if __name__ == "__main__":
    main()
