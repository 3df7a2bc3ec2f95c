"""Tiny random Stable Diffusion pipelines, built offline the way diffusers' own tests do
(get_dummy_components), saved with save_pretrained so the generator loads them by path.

The CLIP tokenizer is written from scratch (byte-level vocab, no merges): no hub access.
"""
from __future__ import annotations

import json
from pathlib import Path


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def write_tokenizer(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for ch in chars:
        vocab[ch] = len(vocab)
    for ch in chars:
        vocab[ch + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "model_max_length": 77, "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
        "tokenizer_class": "CLIPTokenizer"}))


def dummy_components(seed: int = 0, in_channels: int = 4):
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=32,
        in_channels=in_channels, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
        norm_num_groups=2)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False)
    torch.manual_seed(seed)
    vae = AutoencoderKL(block_out_channels=[4, 8], in_channels=3, out_channels=3,
                        down_block_types=["DownEncoderBlock2D"] * 2,
                        up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=4,
                        norm_num_groups=2)
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=2, hidden_size=32, intermediate_size=37,
        layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=2, pad_token_id=1,
        vocab_size=1000))
    return {"unet": unet, "scheduler": scheduler, "vae": vae, "text_encoder": text_encoder}


def build_tiny_sd(folder: Path, seed: int = 0) -> Path:
    """A tiny random StableDiffusionPipeline saved at `folder` (64x64 by default)."""
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTokenizer

    tok_dir = folder.parent / f".{folder.name}_tokenizer"
    write_tokenizer(tok_dir)
    tokenizer = CLIPTokenizer.from_pretrained(str(tok_dir))
    pipe = StableDiffusionPipeline(**dummy_components(seed), tokenizer=tokenizer,
                                   safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(str(folder))
    return folder


def build_tiny_lora(pipeline_dir: Path, out_dir: Path, seed: int = 1) -> Path:
    """A random (non-zero) LoRA on the tiny pipeline's UNet, saved with save_lora_weights."""
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(str(pipeline_dir / "unet"))
    torch.manual_seed(seed)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    with torch.no_grad():  # make the adapter matter on a random tiny model
        for name, p in unet.named_parameters():
            if "lora_" in name:
                p.mul_(5.0)
    StableDiffusionPipeline.save_lora_weights(str(out_dir),
                                              unet_lora_layers=get_peft_model_state_dict(unet))
    return out_dir


def perturbed_unet(pipeline_dir: Path, out_dir: Path, seed: int, scale: float = 0.5) -> Path:
    """A "fine-tuned checkpoint": the pipeline's UNet with noise added, in out_dir/unet."""
    import torch
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(str(pipeline_dir / "unet"))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale * (p.std() if p.numel() > 1 else 1))
    unet.save_pretrained(str(out_dir / "unet"))
    return out_dir
