"""A tiny randomly initialised vision-language model for tests (no hub, no weights).

`make_tiny_vlm(folder)` writes a LLaVA (`LlavaForConditionalGeneration`: a 2-layer CLIP
vision tower on 32x32 images + a 2-layer Llama) and its `LlavaProcessor` with
`save_pretrained`, so the VLM judge loads it exactly as it loads a real one:
`AutoProcessor.from_pretrained(folder)` + `AutoModelForImageTextToText.from_pretrained`.
The tokenizer is a byte-level BPE trained here on the judge's own templates (so every
string has tokens and none is unknown), with special tokens for `<image>`, the chat roles,
bos, eos and pad, and a small Jinja chat template that handles text and image items.
Building it takes about a second on 2 CPU cores.
"""
from __future__ import annotations

from pathlib import Path

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "<image>", "<|system|>", "<|user|>",
            "<|assistant|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{ eos_token }}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")


def _corpus() -> list[str]:
    """Text the tokenizer learns its merges from: the judge's templates and answers."""
    repo = Path(__file__).resolve().parents[1]
    text = (repo / "judges" / "vlm_templates.yaml").read_text()
    answers = [f'{{"winner": "{c}"}}' for c in ("A", "B", "tie")]
    answers += ['{"rationale": "Image A is sharper", "winner": "B"}', "Image A: Image B:"]
    return text.splitlines() + answers * 20


def make_tokenizer(vocab_size: int = 600):
    """A byte-level BPE `PreTrainedTokenizerFast` built offline with `tokenizers`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=["<image>", "<|system|>", "<|user|>", "<|assistant|>"])


def make_tiny_vlm(folder: Path, seed: int = 0, image_size: int = 32, patch_size: int = 8,
                  init_std: float = 0.5) -> Path:
    """Write a tiny random LLaVA + processor to `folder` (created); returns the folder.

    `init_std` is larger than a real model's (0.02) so that the random model's answers
    depend clearly on the images it is shown.
    """
    import torch
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = make_tokenizer()
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer,
                               patch_size=patch_size, vision_feature_select_strategy="default",
                               chat_template=CHAT_TEMPLATE, image_token="<image>",
                               num_additional_image_tokens=1)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=4, image_size=image_size,
                              patch_size=patch_size, projection_dim=32)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       max_position_embeddings=2048, initializer_range=init_std,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id)
    config = LlavaConfig(vision_config=vision, text_config=text,
                         image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                         vision_feature_layer=-1, vision_feature_select_strategy="default",
                         initializer_range=init_std)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
