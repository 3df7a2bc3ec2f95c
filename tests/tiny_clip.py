"""Tiny randomly initialised CLIP models for tests and benchmarks (no hub, no weights).

- `make_open_clip(folder)`: an open_clip model config JSON (`tiny-clip-test.json`, embed dim
  16, 32x32 images) and a weights file saved from a seeded random init, so a judge loads it
  exactly the way a user loads real weights: `model_config=... pretrained=/path/file.pt`.
- `make_transformers_clip(folder)`: a `CLIPModel` + `CLIPProcessor` written with
  `save_pretrained`, whose tokenizer carries the real CLIP BPE vocabulary (taken from the
  file that ships inside the open_clip wheel). The folder name contains "openai", as
  torchmetrics' CLIPScore wants for a local path.
- `make_aesthetic_head(path, in_dim)`: a random improved-aesthetic-predictor head state dict.
"""
from __future__ import annotations

import json
from pathlib import Path

TINY_ARCH = "tiny-clip-test"
TINY_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 8, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2},
}


def make_open_clip(folder: Path, seed: int = 0, cfg: dict | None = None,
                   arch: str = TINY_ARCH) -> tuple[Path, Path]:
    """(model config json, weights file) of a tiny random open_clip model."""
    import open_clip
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    config = folder / f"{arch}.json"
    config.write_text(json.dumps(cfg or TINY_CFG))
    open_clip.add_model_config(str(config))
    torch.manual_seed(seed)
    model = open_clip.create_model(arch, pretrained=None)
    weights = folder / f"{arch}-seed{seed}.pt"
    torch.save(model.state_dict(), weights)
    return config, weights


def _write_clip_tokenizer_files(folder: Path) -> None:
    from open_clip.tokenizer import SimpleTokenizer

    simple = SimpleTokenizer()
    rename = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    vocab = {rename.get(tok, tok): idx for tok, idx in simple.encoder.items()}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    merges = sorted(simple.bpe_ranks.items(), key=lambda kv: kv[1])
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(f"{a} {b}" for (a, b), _ in merges) + "\n")


def make_transformers_clip(folder: Path, seed: int = 0, image_size: int = 32) -> Path:
    """A save_pretrained folder with a tiny random CLIPModel and a real CLIP tokenizer."""
    import torch
    from transformers import (CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor,
                              CLIPTokenizer)

    folder.mkdir(parents=True, exist_ok=True)
    tok_dir = folder / "_tokenizer_src"
    tok_dir.mkdir(exist_ok=True)
    _write_clip_tokenizer_files(tok_dir)
    tokenizer = CLIPTokenizer.from_pretrained(str(tok_dir))
    image_processor = CLIPImageProcessor(size={"shortest_edge": image_size},
                                         crop_size={"height": image_size, "width": image_size})
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    config = CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4,
                         num_hidden_layers=2, vocab_size=49408, max_position_embeddings=77,
                         projection_dim=16, eos_token_id=49407, bos_token_id=49406,
                         pad_token_id=49407),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4,
                           num_hidden_layers=2, image_size=image_size, patch_size=8,
                           projection_dim=16),
        projection_dim=16)
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def make_aesthetic_head(path: Path, in_dim: int, seed: int = 0) -> Path:
    """A random head with the improved-aesthetic-predictor's layout and state-dict keys."""
    import torch

    from autojudge.judges.aesthetic import build_head

    torch.manual_seed(seed)
    head = build_head(in_dim)
    # scale the last layer so outputs spread over a few points around 5, like the real head
    with torch.no_grad():
        head.layers[-1].bias.fill_(5.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(head.state_dict(), path)
    return path
