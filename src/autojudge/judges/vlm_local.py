"""A local transformers VLM behind the tiny chat-completions surface the VLM judge uses.

`LocalVLMChat(...).chat.completions.create(model=, messages=, temperature=, max_tokens=,
seed=)` answers OpenAI-style messages (a system string; a user content list of
``{"type": "text"}`` and ``{"type": "image_url", "image_url": {"url": "data:..."}}``
items) with a model loaded by ``AutoProcessor`` + ``AutoModelForImageTextToText`` from a
hub id or a ``save_pretrained`` folder. The response carries
``.choices[0].message.content`` (``refusal`` is None) and ``.usage.prompt_tokens /
completion_tokens``, so `VLMPreferenceJudge` reuses all of its parsing, retry,
swap-debiasing and failure logic unchanged.

Two answer modes:

- ``generate``: the model writes its answer (greedy at temperature 0; sampling seeded by
  ``seed`` otherwise), decoded as text.
- ``choice``: the candidate answers ``{"winner": "A"}``, ``{"winner": "B"}`` and
  ``{"winner": "tie"}`` are scored by their log-likelihood as continuations of the prompt
  (as lm-evaluation-harness scores multiple choice) and the best one is answered as JSON
  that also carries the three log-probs, e.g. ``{"winner": "A", "rationale": "...",
  "logprob_A": -1.2, "logprob_B": -3.4, "logprob_tie": -5.6}``. Deterministic and always
  parseable, which is what makes small local VLMs usable as judges.

Nothing heavy is imported until the first request; the model loads once, under a lock,
and requests from the judge's threads run one at a time.

Example:
    >>> chat = LocalVLMChat("/models/tiny-llava", answer="choice")
    >>> chat.chat.completions is chat
    True
"""
from __future__ import annotations

import base64
import inspect
import io
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Sequence

from autojudge.errors import AutojudgeError

__all__ = ["LocalVLMChat", "LocalVLMError", "ANSWER_MODES", "DTYPES", "CANDIDATES"]

ANSWER_MODES = ("generate", "choice")
DTYPES = ("auto", "float32", "float16", "bfloat16")
#: the answers `choice` mode scores, as the judge's templates ask for them
CANDIDATES = {"A": '{"winner": "A"}', "B": '{"winner": "B"}', "tie": '{"winner": "tie"}'}


class LocalVLMError(RuntimeError):
    """A request the local model could not answer (bad input, out of memory...)."""


@dataclass
class Message:
    """`choices[0].message` of a chat-completions response."""

    content: str
    refusal: Any = None
    role: str = "assistant"


@dataclass
class Choice:
    """One entry of `choices`."""

    message: Message
    index: int = 0
    finish_reason: str = "stop"


@dataclass
class Usage:
    """Token counts (prompt tokens include the image tokens)."""

    prompt_tokens: int
    completion_tokens: int


@dataclass
class Completion:
    """What `create()` returns: the subset of an OpenAI response the judge reads."""

    choices: list[Choice]
    usage: Usage
    model: str = ""
    logprobs: dict[str, float] = field(default_factory=dict)


class LocalVLMChat:
    """A transformers image-text-to-text model answering chat-completions requests.

    Args:
        model: hub id (``Qwen/Qwen2-VL-2B-Instruct``) or a ``save_pretrained`` folder.
        answer: "choice" (log-likelihood of A / B / tie) or "generate" (free text).
        device: "auto" (cuda > mps > cpu), "cpu", "cuda", "cuda:1", "mps".
        dtype: "auto" (bfloat16/float16 on GPU, float32 on CPU), float32, float16, bfloat16.
        local_files_only: never contact the hub, even when it is reachable.
        who: how errors name the user of this model (e.g. "judge 'vlm'").
    """

    def __init__(self, model: str, answer: str = "choice", device: str = "auto",
                 dtype: str = "auto", local_files_only: bool = False,
                 who: str = "local VLM"):
        if answer not in ANSWER_MODES:
            raise AutojudgeError(f"{who}: answer mode '{answer}' is not one of "
                                 f"{', '.join(ANSWER_MODES)}")
        if dtype not in DTYPES:
            raise AutojudgeError(f"{who}: dtype '{dtype}' is not one of {', '.join(DTYPES)}")
        self.model_ref = model
        self.answer = answer
        self.device_request = device
        self.dtype_request = dtype
        self.local_files_only = local_files_only
        self.who = who
        self.processor: Any = None
        self.model: Any = None
        self.device: str | None = None
        self._load_error: AutojudgeError | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalVLMChat(model={self.model_ref!r}, answer={self.answer!r})"

    @property
    def chat(self) -> "LocalVLMChat":
        """`client.chat.completions.create(...)`, as on an OpenAI client."""
        return self

    @property
    def completions(self) -> "LocalVLMChat":
        return self

    # -- loading -------------------------------------------------------------------------

    def _torch_dtype(self, device: str) -> Any:
        from autojudge.runtime.devices import pick_dtype

        return pick_dtype(self.dtype_request, device)

    def load(self) -> None:
        """Load processor and model once (thread-safe; later calls return at once)."""
        with self._lock:
            self._load_locked()

    def _load_locked(self) -> None:
        if self.model is not None:
            return
        if self._load_error is not None:  # failed once: say so again, do not reload
            raise self._load_error
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from autojudge.runtime.devices import pick_device

        device = pick_device(self.device_request)
        what = f"{self.who}: could not load the VLM '{self.model_ref}' with transformers"
        try:
            processor = AutoProcessor.from_pretrained(
                self.model_ref, local_files_only=self.local_files_only)
            if getattr(processor, "chat_template", None) is None:
                raise ValueError("its processor has no chat template (use an instruct / chat "
                                 "model, or save one with the processor)")
            model = AutoModelForImageTextToText.from_pretrained(
                self.model_ref, dtype=self._torch_dtype(device),
                local_files_only=self.local_files_only).to(device).eval()
        except (OSError, ValueError, KeyError, ImportError, RuntimeError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            self._load_error = AutojudgeError(
                f"{what} (AutoModelForImageTextToText on {device}): {first[:300]}")
            raise self._load_error from None
        self.processor, self.model, self.device = processor, model, device

    # -- requests ------------------------------------------------------------------------

    def create(self, model: str = "", messages: Sequence[dict[str, Any]] = (),
               temperature: float = 0.0, max_tokens: int = 300, seed: int | None = None,
               candidates: dict[str, str] | None = None, **_: Any) -> Completion:
        """Answer one chat request (the OpenAI `chat.completions.create` subset).
        `candidates` (label -> answer text): the answers `choice` mode scores (default
        the pairwise A / B / tie)."""
        import torch

        with self._lock:
            self._load_locked()
            try:
                inputs = self._inputs(messages)
                with torch.inference_mode():
                    if self.answer == "choice":
                        return self._choose(inputs) if candidates is None else \
                            self._choose(inputs, candidates)
                    return self._generate(inputs, temperature, max_tokens, seed)
            except LocalVLMError:
                raise
            except (RuntimeError, ValueError, TypeError, IndexError, KeyError) as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise LocalVLMError(f"{type(exc).__name__}: {first[:300]}") from exc

    def _inputs(self, messages: Sequence[dict[str, Any]]) -> Any:
        conversation = [to_transformers_message(m) for m in messages]
        inputs = self.processor.apply_chat_template(
            conversation, add_generation_prompt=True, tokenize=True, return_dict=True,
            return_tensors="pt")
        inputs = inputs.to(self.device)
        dtype = self.model.dtype
        for key, value in list(inputs.items()):
            if hasattr(value, "is_floating_point") and value.is_floating_point():
                inputs[key] = value.to(dtype)
        return inputs

    def _generate(self, inputs: Any, temperature: float, max_tokens: int,
                  seed: int | None) -> Completion:
        import torch

        kwargs: dict[str, Any] = {"max_new_tokens": int(max_tokens), "do_sample": False}
        if temperature and temperature > 0:
            kwargs.update(do_sample=True, temperature=float(temperature))
            if seed is not None:
                torch.manual_seed(int(seed))
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None \
            else tokenizer.eos_token_id
        if pad is not None:
            kwargs["pad_token_id"] = pad
        out = self.model.generate(**inputs, **kwargs)
        prompt_len = int(inputs["input_ids"].shape[1])
        new = out[0, prompt_len:]
        text = tokenizer.decode(new, skip_special_tokens=True).strip()
        return Completion([Choice(Message(text))], Usage(prompt_len, int(new.shape[0])),
                          model=self.model_ref)

    def _choose(self, inputs: Any, candidates: dict[str, str] = CANDIDATES) -> Completion:
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        scores: dict[str, float] = {}
        lengths: dict[str, int] = {}
        for label, text in candidates.items():
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            scores[label] = self._continuation_logprob(inputs, ids)
            lengths[label] = len(ids)
        best = max(scores, key=lambda k: (scores[k], k == "tie"))
        rounded = {k: round(v, 4) for k, v in scores.items()}
        rationale = ("highest log-likelihood answer: "
                     + ", ".join(f"{k} {v:.4f}" for k, v in rounded.items()))
        content = {"winner": best, "rationale": rationale,
                   **{f"logprob_{k}": v for k, v in rounded.items()}}
        prompt_len = int(inputs["input_ids"].shape[1])
        return Completion([Choice(Message(json.dumps(content)))],
                          Usage(prompt_len, lengths[best]), model=self.model_ref,
                          logprobs=rounded)

    def _continuation_logprob(self, inputs: Any, ids: list[int]) -> float:
        """Sum of log P(token | everything before it) over the continuation `ids`."""
        import torch

        prompt_len = int(inputs["input_ids"].shape[1])
        cont = torch.tensor([ids], dtype=inputs["input_ids"].dtype, device=self.device)
        extended = dict(inputs)
        for key, value in inputs.items():
            if key == "input_ids":
                extended[key] = torch.cat([value, cont], dim=1)
            elif (hasattr(value, "shape") and value.dim() == 2
                  and tuple(value.shape) == (1, prompt_len)):
                # per-token side inputs (attention mask, token types): extend them too
                fill = torch.ones_like(cont) if key == "attention_mask" \
                    else torch.zeros_like(cont)
                extended[key] = torch.cat([value, fill.to(value.dtype)], dim=1)
        keep = len(ids) + 1  # logits of the last prompt position and the continuation
        if "logits_to_keep" in inspect.signature(self.model.forward).parameters:
            extended["logits_to_keep"] = keep
        logits = self.model(**extended).logits[0, -keep:-1].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        picked = logprobs.gather(1, cont[0].unsqueeze(1))
        return float(picked.sum())


def to_transformers_message(message: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI-style chat message -> transformers chat format with PIL images."""
    content = message.get("content")
    if isinstance(content, str) or content is None:
        return {"role": message.get("role", "user"),
                "content": [{"type": "text", "text": content or ""}]}
    items: list[dict[str, Any]] = []
    for item in content:
        kind = item.get("type")
        if kind == "text":
            items.append({"type": "text", "text": str(item.get("text", ""))})
        elif kind == "image_url":
            image_url = item.get("image_url")
            url = image_url.get("url") if isinstance(image_url, dict) else image_url
            items.append({"type": "image", "image": decode_data_url(str(url))})
        else:
            raise LocalVLMError(f"unsupported content item type {kind!r}")
    return {"role": message.get("role", "user"), "content": items}


def decode_data_url(url: str) -> Any:
    """A ``data:image/...;base64,...`` URL -> an RGB PIL image."""
    from PIL import Image

    if not url.startswith("data:") or ";base64," not in url:
        raise LocalVLMError("the local VLM backend takes images as base64 data URLs only")
    data = base64.b64decode(url.split(";base64,", 1)[1])
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")


def check_local_model(c: Any, name: str) -> None:
    """Transformers backend: torch + transformers importable, weights on disk or the
    hub reachable; one line otherwise, before any work (never a hub retry loop)."""
    from autojudge.runtime.extras import require
    from autojudge.runtime.weights import transformers_model_problem

    who, key = f"judge '{name}'", f"judge.{name}"
    require("vlm-local", f"{who} (backend transformers)")
    if c.device != "auto" and c.device.split(":")[0] not in ("cpu", "cuda", "mps"):
        raise AutojudgeError(f"{who}: device={c.device!r}; use auto, cpu, cuda, cuda:N "
                             f"or mps")
    if not c.model.strip():
        raise AutojudgeError(f"{who}: no model; set {key}.model to a hub id (e.g. "
                             f"Qwen/Qwen2-VL-2B-Instruct) or a local folder")
    problem = transformers_model_problem(c.model, local_files_only=c.local_files_only)
    if problem is not None:
        raise AutojudgeError(f"{who}: {problem}; point {key}.model at a folder written by "
                             f"save_pretrained (model + processor), e.g. (hf download "
                             f"{c.model} --local-dir DIR elsewhere) {key}.model=/path/to/the/folder")
