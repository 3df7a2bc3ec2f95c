"""Yes-probabilities of yes/no questions about images, read from a vision-language model:
the engine of the `vqascore` judge and of question-based judges (TIFA / DSG).

API (one backend per judge; thread-safe):

    backend = VQABackend(VQASettings(backend="openai", base_url=..., model=...), "vqascore")
    backend.check()                      # one line (AutojudgeError) when nothing can work
    backend.yes_probabilities([(image, question), ...]) -> [float | Failure, ...]
    backend.answers([(image, question), ...])           -> [YesNo, ...]  (p_yes, p_no, raw)
    backend.identity()                   # what fixes the answers, for a judge's fingerprint
    backend.stats                        # requests, retries, failures, tokens, cost_usd

Each answer is P(Yes) / (P(Yes) + P(No)) over the model's FIRST answer token, where
P(Yes) sums every token that reads "yes" once surrounding whitespace (and SentencePiece
"▁" / byte-level "Ġ" markers) is removed, in any letter case: "Yes", " Yes", "yes",
" yes", "YES", "▁Yes"...; P(No) likewise for "no". Tokens such as "Yes." or "Yes," do
not count.

Backends:

- `openai`: any OpenAI-compatible chat-completions endpoint, asked with `logprobs=True,
  top_logprobs=K, max_tokens=1, temperature=0`; the sums run over the first token's top K
  (a variant outside the top K counts 0: its probability is below the K-th's). Neither
  yes nor no among them is the failure `no_yes_no`; a response without logprobs is
  `no_logprobs`, never a 0, and `check()` refuses such an endpoint in one line after ONE
  probe request. The API key is read from the environment variable named by
  `api_key_env`, never from config, never written (error texts are scrubbed). 429, 5xx,
  timeouts and connection errors are retried (bounded, exponential backoff, Retry-After
  honoured) and then typed retryable failures; other 4xx are final. Cost per call from the
  reported token usage and `judges/vlm_prices.yaml` (or the configured prices), exactly as
  the `vlm` judge meters it: `raw["cost_usd"]` of each answer, summed in `stats`.
- `transformers`: a local VLM (hub id or `save_pretrained` folder) loaded with
  AutoProcessor + AutoModelForImageTextToText (`vlm_local.LocalVLMChat`); the chat
  template of one user turn [image, question] with the generation prompt, one forward
  pass, softmax over the full vocabulary of the next-token logits, the same sums. A
  tokenizer with no one-token yes or no is refused at `check()`.

Example:
    >>> answer_word(" Yes"), answer_word("NO"), answer_word("Yes."), answer_word("▁yes")
    ('yes', 'no', None, 'yes')
    >>> yes_ratio(0.75, 0.25), yes_ratio(0.0, 0.0)
    (0.75, None)
"""
from __future__ import annotations

import math
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from autojudge.errors import AutojudgeError
from autojudge.judges.vlm_prompts import fit_image, image_data_url, model_price, usage_cost
from autojudge.types import Failure, stable_hash

__all__ = ["VQABackend", "VQASettings", "YesNo", "answer_word", "yes_ratio", "BACKENDS"]

BACKENDS = ("openai", "transformers")
#: the probe `check()` sends to an openai endpoint: a small grey square
PROBE_QUESTION = 'Does this figure show "a grey square"? Please answer yes or no.'
_SECRETISH = re.compile(r"(sk-[A-Za-z0-9_\-*]{3,}|Bearer\s+\S+)")


def answer_word(token: str) -> str | None:
    """The answer a token stands for: "yes" / "no" when it is one of them once whitespace
    and tokenizer space markers are removed, in any case; else None."""
    word = token.replace("\u2581", " ").replace("\u0120", " ").strip().lower()
    return word if word in ("yes", "no") else None


def yes_ratio(p_yes: float, p_no: float) -> float | None:
    """P(Yes) / (P(Yes) + P(No)); None when both are 0."""
    total = p_yes + p_no
    return p_yes / total if total > 0 else None


@dataclass
class VQASettings:
    """How a backend asks (a judge copies these from its Config).

    Attributes:
        backend: "openai" (any OpenAI-compatible chat endpoint) or "transformers".
        base_url, model, api_key_env: the endpoint, the model it serves (or a hub id /
            local folder for transformers) and the NAME of the variable holding the key
            ("" = no key).
        top_logprobs: K, how many first-token alternatives the endpoint returns (1-20).
        image_max_side, image_format: images are fitted to this side (both backends) and
            sent as png | jpeg data URLs (openai).
        timeout_s, max_retries, backoff_s, concurrency: per request; retries after the
            first attempt; first backoff (doubles); requests in flight (openai).
        price_input_per_mtok, price_output_per_mtok: USD per million tokens; None = the
            price table (0 for models it does not list: no cost recorded).
        dtype, device, local_files_only: transformers only, as for the `vlm` judge.
    """

    backend: str = "openai"
    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"
    top_logprobs: int = 20
    image_max_side: int = 768
    image_format: str = "png"
    timeout_s: float = 60.0
    max_retries: int = 3
    backoff_s: float = 1.0
    concurrency: int = 4
    price_input_per_mtok: Optional[float] = None
    price_output_per_mtok: Optional[float] = None
    dtype: str = "auto"
    device: str = "auto"
    local_files_only: bool = False

    @classmethod
    def of(cls, config: Any) -> "VQASettings":
        """The settings a judge's Config carries (fields of the same names)."""
        import dataclasses

        return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(cls)})

    def validate(self, who: str) -> None:
        """One line naming the first bad value."""
        from autojudge.judges.vlm_local import DTYPES

        if self.backend not in BACKENDS:
            raise AutojudgeError(f"{who}: backend '{self.backend}' is not available; use "
                                 f"'openai' (any OpenAI-compatible endpoint that returns "
                                 f"logprobs, e.g. vLLM) or 'transformers' (a local VLM)")
        if not 1 <= self.top_logprobs <= 20:
            raise AutojudgeError(f"{who}: top_logprobs must be in 1..20 (the OpenAI API's "
                                 f"range), got {self.top_logprobs}")
        for name, low in (("concurrency", 1), ("max_retries", 0), ("image_max_side", 16)):
            if getattr(self, name) < low:
                raise AutojudgeError(f"{who}: {name} must be >= {low}")
        if self.image_format not in ("png", "jpeg"):
            raise AutojudgeError(f"{who}: image_format must be png or jpeg")
        if self.dtype not in DTYPES:
            raise AutojudgeError(f"{who}: dtype must be one of {', '.join(DTYPES)}")


@dataclass(frozen=True)
class YesNo:
    """One answer: `value` = P(Yes) / (P(Yes) + P(No)), None exactly when `failure` is set;
    `raw` (JSON) keeps p_yes, p_no, the first token, usage, cost_usd and attempts."""

    value: float | None
    p_yes: float | None = None
    p_no: float | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)
    failure: Failure | None = None


class VQABackend:
    """Asks yes/no questions about images; see the module docstring."""

    def __init__(self, settings: VQASettings, name: str):
        self.settings = settings
        self.name = name
        self.who = f"judge '{name}'"
        settings.validate(self.who)
        self._client: Any = None
        self._lock = threading.Lock()  # the client; the local model runs one input at a time
        self._token_ids: tuple[list[int], list[int]] | None = None
        self._probed = False
        #: calls, retries, failures by kind, tokens and cost over this backend's lifetime
        self.stats: dict[str, Any] = {"requests": 0, "retries": 0, "failures": {},
                                      "prompt_tokens": 0, "completion_tokens": 0,
                                      "cost_usd": 0.0}
        self._stats_lock = threading.Lock()

    # -- identity and checks -------------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        """What fixes the answers: endpoint or weights, K, image handling; never the
        device, key, concurrency, timeouts or prices."""
        s = self.settings
        if s.backend == "transformers":
            from autojudge.runtime.weights import model_ref_identity

            return {"backend": s.backend, "model": model_ref_identity(s.model),
                    "dtype": s.dtype, "image_max_side": s.image_max_side}
        return {"backend": s.backend, "base_url": s.base_url.rstrip("/"), "model": s.model,
                "top_logprobs": s.top_logprobs, "image_max_side": s.image_max_side,
                "image_format": s.image_format}

    def check(self, cache: Any = None) -> None:
        """Refuse in one line, before any work, what cannot answer: a missing extra, key,
        model folder or cached hub model, a tokenizer without yes/no tokens, an endpoint
        that rejects the probe or returns no logprobs. `cache` (the judge's
        `sdk.PluginCache`): an endpoint and model that passed the probe before are not
        probed again (a warm run sends nothing)."""
        self._cache = cache
        if self.settings.backend == "transformers":
            from autojudge.judges.vlm_local import check_local_model

            check_local_model(self.settings, self.name)
            self.token_ids()
            return
        self._check_endpoint()

    def _check_endpoint(self) -> None:
        from autojudge.runtime.extras import require

        s, who = self.settings, self.who
        require("vlm", who)
        if not s.base_url.startswith(("http://", "https://")):
            raise AutojudgeError(f"{who}: base_url '{s.base_url}' is not an http(s) URL; e.g. "
                                 f"judge.{self.name}.base_url=http://localhost:8000/v1")
        if s.api_key_env and not os.environ.get(s.api_key_env):
            raise AutojudgeError(
                f"{who}: environment variable {s.api_key_env} is not set; export "
                f"{s.api_key_env}=<your key> (keys are read from the environment only), or "
                f"set judge.{self.name}.api_key_env='' for a local server without a key")
        probe_key = stable_hash(["vqa-logprobs-probe", s.base_url.rstrip("/"), s.model])
        cache = getattr(self, "_cache", None)
        if self._probed or (cache is not None and cache.get_questions(probe_key) == "ok"):
            return
        from PIL import Image

        probe = self._ask_openai(Image.new("RGB", (32, 32), (128, 128, 128)), PROBE_QUESTION)
        if probe.failure is not None and probe.failure.kind == "no_logprobs":
            raise AutojudgeError(
                f"{who}: {s.base_url} (model {s.model}) answered without logprobs; VQAScore "
                f"reads P(Yes) and P(No) from the first token's top_logprobs, so it needs an "
                f"endpoint that returns them (OpenAI gpt-4o/gpt-4.1 models, vLLM...), or "
                f"judge.{self.name}.backend=transformers")
        if probe.failure is not None and probe.failure.kind != "no_yes_no":
            raise AutojudgeError(f"{who}: the probe request to {s.base_url} (model {s.model}) "
                                 f"failed: {probe.failure.message}")
        self._probed = True
        if cache is not None:
            cache.put_questions(probe_key, "ok")

    # -- answering -----------------------------------------------------------------------

    def yes_probabilities(self, questions: Sequence[tuple[Any, str]]) -> list[float | Failure]:
        """P(Yes) / (P(Yes) + P(No)) per (PIL image, question), in order; a typed Failure
        for an input that got no answer."""
        return [a.value if a.failure is None else a.failure for a in self.answers(questions)]

    def answers(self, questions: Sequence[tuple[Any, str]]) -> list[YesNo]:
        """One YesNo per (PIL image, question), in order (openai: `concurrency` threads)."""
        if not questions:
            return []
        if self.settings.backend == "transformers":
            return [self._ask_local(image, question) for image, question in questions]
        if self.settings.concurrency == 1 or len(questions) == 1:
            return [self._ask_openai(image, question) for image, question in questions]
        with ThreadPoolExecutor(max_workers=min(self.settings.concurrency, len(questions)),
                                thread_name_prefix=f"vqa-{self.name}") as pool:
            return list(pool.map(lambda q: self._ask_openai(*q), questions))

    def stats_snapshot(self) -> dict[str, Any]:
        """A copy of `stats`, consistent while other threads keep counting."""
        with self._stats_lock:
            return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.stats.items()}

    def _count(self, **changes: Any) -> None:
        with self._stats_lock:
            for k, v in changes.items():
                if k == "failure":
                    self.stats["failures"][v] = self.stats["failures"].get(v, 0) + 1
                else:
                    self.stats[k] += v

    def _failed(self, failure: Failure, raw: Mapping[str, Any]) -> YesNo:
        self._count(failure=failure.kind)
        return YesNo(None, raw=dict(raw), failure=failure)

    # -- openai --------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import openai

                env = self.settings.api_key_env
                key = os.environ.get(env, "") if env else ""
                self._client = openai.OpenAI(base_url=self.settings.base_url,
                                             api_key=key or "not-needed",
                                             timeout=self.settings.timeout_s, max_retries=0)
            return self._client

    def scrub(self, text: str) -> str:
        """One line of at most 500 characters with the key (and anything key-like) removed."""
        env = self.settings.api_key_env
        key = os.environ.get(env, "") if env else ""
        if key:
            text = text.replace(key, "<redacted>")
        return _SECRETISH.sub("<redacted>", " ".join(str(text).split()))[:500]

    def _ask_openai(self, image: Any, question: str) -> YesNo:
        """One question: bounded retries, then an answer or a typed failure."""
        import openai

        s = self.settings
        messages = [{"role": "user", "content": [
            {"type": "image_url",
             "image_url": {"url": image_data_url(image, s.image_max_side, s.image_format)}},
            {"type": "text", "text": question}]}]
        errors: list[str] = []
        for attempt in range(s.max_retries + 1):
            if attempt:
                self._count(retries=1)
            self._count(requests=1)
            try:
                response = self.client.chat.completions.create(
                    model=s.model, messages=messages, temperature=0.0, max_tokens=1,
                    logprobs=True, top_logprobs=s.top_logprobs)
            except openai.OpenAIError as exc:
                failure, retry_after, final = self._classify(exc)
            else:
                return self._read(response, len(errors) + 1, errors)
            errors.append(failure.kind)
            if final:
                break
            if attempt < s.max_retries:
                delay = retry_after if retry_after is not None else s.backoff_s * (2 ** attempt)
                time.sleep(min(max(delay, 0.0), 60.0))
        message = f"{failure.message} (after {len(errors)} attempts)"
        return self._failed(Failure(failure.kind, message, failure.retryable),
                            {"attempts": len(errors), "errors": errors})

    def _classify(self, exc: Any) -> tuple[Failure, float | None, bool]:
        """(failure, Retry-After seconds, final) for a failed request; a rejected key
        stops everything in one line."""
        import openai

        from autojudge.judges.vlm_prompts import retry_after_s

        s = self.settings
        if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
            raise AutojudgeError(
                f"{self.who}: {s.base_url} rejected the API key from "
                f"${s.api_key_env or '(none)'} (HTTP {exc.status_code}); check the key and "
                f"the endpoint") from None
        if isinstance(exc, openai.RateLimitError):
            return (Failure("http_429", self.scrub(f"rate limited: {exc.message}"), True),
                    retry_after_s(exc), False)
        if isinstance(exc, openai.APITimeoutError):
            return Failure("timeout", f"no answer within {s.timeout_s:g} s", True), None, False
        if isinstance(exc, openai.APIConnectionError):
            return Failure("connection_error", self.scrub(exc.message), True), None, False
        if isinstance(exc, openai.APIStatusError):
            status = int(exc.status_code)
            if status >= 500:
                return (Failure(f"http_{status}", self.scrub(f"server error: {exc.message}"),
                                True), retry_after_s(exc), False)
            # a 4xx other than 429 will not change on retry
            return (Failure(f"http_{status}", self.scrub(f"request rejected: {exc.message}")),
                    None, True)
        return Failure("judge_error", self.scrub(f"{type(exc).__name__}: {exc}")), None, True

    def _read(self, response: Any, attempts: int, errors: list[str]) -> YesNo:
        """The answer in a response: usage and cost first (spent either way), then the
        first token's top logprobs."""
        s = self.settings
        raw: dict[str, Any] = {"attempts": attempts}
        if errors:
            raw["errors"] = list(errors)
        metered = usage_cost(getattr(response, "usage", None),
                             model_price(s.model, s.price_input_per_mtok,
                                         s.price_output_per_mtok))
        if metered is not None:
            pt, ct, cost = metered
            raw["usage"] = {"prompt_tokens": pt, "completion_tokens": ct}
            if cost is not None:
                raw["cost_usd"] = round(cost, 8)
            self._count(prompt_tokens=pt, completion_tokens=ct, cost_usd=cost or 0.0)
        choices = getattr(response, "choices", None) or []
        logprobs = getattr(choices[0], "logprobs", None) if choices else None
        content = getattr(logprobs, "content", None) or []
        top = getattr(content[0], "top_logprobs", None) if content else None
        if not top:
            return self._failed(Failure("no_logprobs", f"{s.base_url} answered without "
                                        f"logprobs (model {s.model})"), raw)
        raw["token"] = str(getattr(content[0], "token", ""))[:40]  # one token, as sent
        sums = {"yes": [], "no": []}
        for entry in top:
            word = answer_word(str(getattr(entry, "token", "")))
            if word is not None:
                sums[word].append(math.exp(float(entry.logprob)))
        p_yes, p_no = math.fsum(sums["yes"]), math.fsum(sums["no"])
        value = yes_ratio(p_yes, p_no)
        raw.update(p_yes=p_yes, p_no=p_no)
        if value is None:
            return self._failed(Failure("no_yes_no", f"neither yes nor no among the top "
                                        f"{len(top)} first tokens (the answer began with "
                                        f"{raw['token']!r})"), raw)
        return YesNo(value, p_yes, p_no, raw)

    # -- transformers --------------------------------------------------------------------

    def _local_chat(self) -> Any:
        with self._lock:
            if self._client is None:
                from autojudge.judges.vlm_local import LocalVLMChat

                s = self.settings
                self._client = LocalVLMChat(s.model, answer="choice", device=s.device,
                                            dtype=s.dtype, local_files_only=s.local_files_only,
                                            who=self.who)
        self._client.load()
        return self._client

    def token_ids(self) -> tuple[list[int], list[int]]:
        """(yes ids, no ids) of the local model's vocabulary, by `answer_word`; one line
        when the tokenizer cannot be read or lacks either."""
        if self._token_ids is not None:
            return self._token_ids
        s = self.settings
        try:
            from transformers import AutoProcessor

            processor = AutoProcessor.from_pretrained(s.model,
                                                      local_files_only=s.local_files_only)
        except (OSError, ValueError, KeyError, ImportError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise AutojudgeError(f"{self.who}: could not load the processor of '{s.model}': "
                                 f"{first[:300]}") from None
        tokenizer = getattr(processor, "tokenizer", processor)
        ids: dict[str, list[int]] = {"yes": [], "no": []}
        for token, token_id in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1]):
            word = answer_word(token)
            if word is not None:
                ids[word].append(int(token_id))
        missing = [w for w in ("yes", "no") if not ids[w]]
        if missing:
            raise AutojudgeError(f"{self.who}: the tokenizer of '{s.model}' has no one-token "
                                 f"'{missing[0]}' answer, so P(Yes)/P(No) of the next token is "
                                 f"undefined; use an instruct VLM (Qwen2-VL, LLaVA...)")
        self._token_ids = (ids["yes"], ids["no"])
        return self._token_ids

    def _ask_local(self, image: Any, question: str) -> YesNo:
        """One forward pass: softmax of the next-token logits after the question."""
        import torch

        from autojudge.judges.vlm_local import LocalVLMError

        yes_ids, no_ids = self.token_ids()
        chat = self._local_chat()
        self._count(requests=1)
        conversation = [{"role": "user", "content": [
            {"type": "image", "image": fit_image(image, self.settings.image_max_side)},
            {"type": "text", "text": question}]}]
        with self._lock, torch.inference_mode():
            try:
                logits = next_token_logits(chat, conversation)
            except (LocalVLMError, RuntimeError, ValueError, TypeError, IndexError,
                    KeyError) as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                return self._failed(Failure("local_error", self.scrub(
                    f"{type(exc).__name__}: {first[:300]}"), True), {"attempts": 1})
        logprobs = torch.log_softmax(logits.double(), dim=-1)
        log_yes = float(torch.logsumexp(logprobs[yes_ids], dim=0))
        log_no = float(torch.logsumexp(logprobs[no_ids], dim=0))
        p_yes, p_no = math.exp(log_yes), math.exp(log_no)
        value = 1.0 / (1.0 + math.exp(log_no - log_yes))  # the ratio, even if both underflow
        return YesNo(value, p_yes, p_no, {"p_yes": p_yes, "p_no": p_no, "attempts": 1})


def next_token_logits(chat: Any, conversation: list[dict[str, Any]]) -> Any:
    """The logits (1-D, the whole vocabulary) of the token after the chat-templated
    `conversation` with its generation prompt, from a loaded `LocalVLMChat`."""
    import inspect

    inputs = chat.processor.apply_chat_template(
        conversation, add_generation_prompt=True, tokenize=True, return_dict=True,
        return_tensors="pt").to(chat.device)
    for key, value in list(inputs.items()):
        if hasattr(value, "is_floating_point") and value.is_floating_point():
            inputs[key] = value.to(chat.model.dtype)
    if "logits_to_keep" in inspect.signature(chat.model.forward).parameters:
        inputs["logits_to_keep"] = 1
    return chat.model(**inputs).logits[0, -1].float()
