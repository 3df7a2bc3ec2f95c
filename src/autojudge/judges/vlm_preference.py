"""VLM pairwise preference judge: a vision-language model sees the prompt and both images
and says which is better on a named criterion.

Backends:

- `openai`: any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, LM
  Studio, TGI, llama.cpp server, ...): `base_url` + `model`, the API key read from the
  environment variable named by `api_key_env` (never from config, and never written
  anywhere: error texts are scrubbed of it).
- `transformers`: a local VLM (`model` = hub id or `save_pretrained` folder) loaded with
  AutoProcessor + AutoModelForImageTextToText in this process (`vlm_local.LocalVLMChat`),
  behind the same chat-completions surface, so everything below applies to both.
  `local_answer: choice` scores the answers A / B / tie by log-likelihood (deterministic,
  always parseable; the three log-probs are kept in the raw answer); `generate` lets the
  model write its answer. No API key; cost 0 unless a price is configured.

- Criteria (overall, prompt_alignment, visual_quality, text_rendering) and their rubrics
  are data: `judges/vlm_templates.yaml`.
- The plugin answers each pair exactly as given (A = pair.a). Swap-debiasing (both
  orders, disagreement -> "tie", the position-bias rate) is the judge runner's job
  (`stages.runner`, `judge.vlm.swap`), as for any pairwise judge.
- The raw answer text, parsed choice, rationale, token usage, attempts and cost
  (`cost_usd`, which the runner meters) are kept in the verdict's raw.
- Unparseable answers, refusals, timeouts, connection errors, 429 and 5xx are retried
  (bounded, exponential backoff, Retry-After honoured) and then recorded as typed
  failures (`unparseable`, `refusal`, `timeout`, `http_429`, `http_5xx`...; `local_error`
  when a local model fails on an input, not retried), never as wins.
  Transient kinds are `retryable` (a later run asks again); content kinds are final.
- Requests run on `concurrency` threads; cost per call comes from the endpoint's reported
  token usage and `judges/vlm_prices.yaml` (or the price overrides in config).

Example:
    >>> parse_answer('{"rationale": "B misspells it", "winner": "A"}')
    ('A', 'B misspells it')
    >>> parse_answer("```json\\n{\\"winner\\": \\"tie\\", \\"rationale\\": \\"same\\"}\\n```")
    ('tie', 'same')
    >>> parse_answer("I like turtles")
    (None, '')
"""
from __future__ import annotations

import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from autojudge.errors import AutojudgeError
from autojudge.judges.vlm_images import EncodedImages
from autojudge.judges.vlm_prompts import (CRITERIA, PRICES, REFUSAL, TEMPLATES, image_data_url,
                                          load_prices, load_templates, model_price,
                                          parse_answer, retry_after_s, usage_cost)
from autojudge.runtime.extras import require
from autojudge.runtime.resources import JUDGES_DIR
from autojudge.sdk import PairwiseJudge
from autojudge.types import (Failure, PairItem, Prompt, RankItem, RankVerdict, Verdict,
                             stable_hash)

__all__ = ["VLMPreferenceJudge", "parse_answer", "load_templates", "load_prices",
           "TEMPLATES", "PRICES", "CRITERIA"]

BACKENDS = ("openai", "transformers")

# criterion -> the validation families (autojudge.validate) that test it
_CRITERION_FAMILIES = {"text_rendering": ("text",), "prompt_alignment": ("alignment",),
                       "visual_quality": ("quality",), "overall": ("quality", "alignment")}

_SECRETISH = re.compile(r"(sk-[A-Za-z0-9_\-*]{3,}|Bearer\s+\S+)")


class VLMPreferenceJudge(PairwiseJudge):
    """Pairwise judge backed by a vision-language model behind an OpenAI-compatible API."""

    kind = "vlm"
    card = JUDGES_DIR / "vlm.md"

    @dataclass
    class Config:
        """Params of the `vlm` judge.

        Attributes:
            backend: "openai" (any OpenAI-compatible chat endpoint) or "transformers" (a
                local VLM loaded in-process; `model` is a hub id or a local folder).
            base_url: the endpoint, e.g. https://api.openai.com/v1, http://localhost:8000/v1
                (vLLM), http://localhost:11434/v1 (Ollama), http://localhost:1234/v1 (LM Studio).
            model: the model name the endpoint serves (gpt-4o-mini, Qwen/Qwen2.5-VL-7B-Instruct...);
                for transformers, a hub id (Qwen/Qwen2-VL-2B-Instruct) or a local folder.
            api_key_env: NAME of the environment variable holding the key ("" = no key, for
                local servers). The key itself never goes in config. Ignored by transformers.
            criterion: overall | prompt_alignment | visual_quality | text_rendering (or any
                criterion defined in the templates file).
            templates: templates YAML ("" = judges/vlm_templates.yaml).
            temperature, max_tokens, seed: sampling (seed is sent; endpoints may ignore it).
            image_max_side: images are downscaled so the longer side is at most this.
            image_format: png | jpeg (how images are encoded into data URLs).
            timeout_s: per-request timeout.
            max_retries: retries after the first attempt (429, 5xx, timeouts, unparseable).
            backoff_s: first backoff; doubles per retry (a Retry-After header wins, capped 60 s).
            concurrency: requests in flight at once.
            price_input_per_mtok, price_output_per_mtok: USD per million tokens; null = the
                price table judges/vlm_prices.yaml (0 for models it does not list).
            batch_size: pairs per call, at least 2 x concurrency (a call ends with its
                slowest request: one of a few waves of requests keeps the slots busy).
            local_answer: transformers only: "choice" (log-likelihood of A / B / tie) or
                "generate" (the model writes its answer; greedy at temperature 0).
            dtype: transformers only: auto (bfloat16/float16 on GPU, float32 on CPU) |
                float32 | float16 | bfloat16.
            device: transformers only: auto (cuda > mps > cpu) | cpu | cuda | cuda:N | mps.
            local_files_only: transformers only: never contact the hub for the weights.
            rank_answer: K-wise mode (`judge.<label>.k` > 2): "order" (rank all k, best
                first, ties allowed), "best" (pick the best of k) or "auto" (order; best
                for a local model with local_answer=choice, which can only pick one).
        """

        backend: str = "openai"
        base_url: str = "https://api.openai.com/v1"
        model: str = "gpt-4o-mini"
        api_key_env: str = "OPENAI_API_KEY"
        criterion: str = "overall"
        templates: str = ""
        temperature: float = 0.0
        max_tokens: int = 300
        seed: Optional[int] = 0
        image_max_side: int = 768
        image_format: str = "png"
        timeout_s: float = 60.0
        max_retries: int = 3
        backoff_s: float = 1.0
        concurrency: int = 4
        price_input_per_mtok: Optional[float] = None
        price_output_per_mtok: Optional[float] = None
        batch_size: int = 8
        local_answer: str = "choice"
        dtype: str = "auto"
        device: str = "auto"
        local_files_only: bool = False
        rank_answer: str = "auto"

    def __init__(self, name: str = "vlm", config: "VLMPreferenceJudge.Config | None" = None):
        super().__init__(name, config)
        c = self.config
        who = self.where
        if c.backend not in BACKENDS:
            raise AutojudgeError(f"{who}: backend '{c.backend}' is not available; use 'openai' "
                                 f"(any OpenAI-compatible endpoint, e.g. vLLM or Ollama) or "
                                 f"'transformers' (a local VLM)")
        if c.backend == "transformers":
            from autojudge.judges.vlm_local import ANSWER_MODES, DTYPES

            if c.local_answer not in ANSWER_MODES:
                raise AutojudgeError(f"{who}: local_answer must be one of "
                                     f"{', '.join(ANSWER_MODES)}")
            if c.dtype not in DTYPES:
                raise AutojudgeError(f"{who}: dtype must be one of {', '.join(DTYPES)}")
        for field_name, low in (("concurrency", 1), ("max_retries", 0),
                                ("image_max_side", 16), ("max_tokens", 1)):
            if getattr(c, field_name) < low:
                raise AutojudgeError(f"{who}: {field_name} must be >= {low}")
        if c.rank_answer not in ("auto", "order", "best"):
            raise AutojudgeError(f"{who}: rank_answer must be auto, order or best")
        if c.rank_answer == "order" and c.backend == "transformers" and \
                c.local_answer == "choice":
            raise AutojudgeError(f"{who}: rank_answer=order needs local_answer=generate (by "
                                 "log-likelihood a local model can only pick the best of k)")
        if c.image_format not in ("png", "jpeg"):
            raise AutojudgeError(f"{who}: image_format must be png or jpeg")
        self.batch_size = max(self.batch_size, 2 * c.concurrency)  # see Config.batch_size
        # API calls share one pool of `concurrency` request threads, so a second call's
        # requests queue behind the first's and fill the slots its slowest ones leave
        self.concurrent_calls = 2 if c.backend == "openai" and c.concurrency > 1 else 1
        self._pool: ThreadPoolExecutor | None = None
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._templates: dict[str, Any] | None = None
        self._prices: list[tuple[float, float] | None] = []  # the price, once looked up
        # each image encoded once: it is shown in both orders and in every pair it is in
        self._images = EncodedImages(lambda image: image_data_url(
            image, self.config.image_max_side, self.config.image_format))
        #: calls made, retries, failures by kind, tokens and cost over this judge's lifetime
        self.stats = {"requests": 0, "retries": 0, "failures": {}, "prompt_tokens": 0,
                      "completion_tokens": 0, "cost_usd": 0.0}
        self._stats_lock = threading.Lock()

    # -- identity ------------------------------------------------------------------------

    def templates(self) -> dict[str, Any]:
        if self._templates is None:
            self._templates = load_templates(self.config.templates)
        return self._templates

    def _template_text(self) -> dict[str, str]:
        t = self.templates()
        crit = (t.get("criteria") or {}).get(self.config.criterion)
        if crit is None:
            raise AutojudgeError(
                f"judge '{self.name}': unknown criterion '{self.config.criterion}'; known: "
                f"{', '.join(t.get('criteria') or {})} (templates: "
                f"{self.config.templates or TEMPLATES})")
        return {"system": str(t["system"]), "user": str(t["user"]),
                "criterion_name": str(crit.get("name", self.config.criterion)),
                "rubric": str(crit.get("rubric", "")).strip()}

    def fingerprint_params(self) -> dict[str, Any]:
        # the prompt templates by content; a local model by its files, never its device
        c = self.config
        try:
            template_hash = stable_hash(self._template_text())
        except AutojudgeError:
            template_hash = None  # check() reports it
        params = {
            "backend": c.backend, "base_url": c.base_url.rstrip("/"), "model": c.model,
            "criterion": c.criterion, "templates": template_hash, "temperature": c.temperature,
            "max_tokens": c.max_tokens, "seed": c.seed, "image_max_side": c.image_max_side,
            "image_format": c.image_format}
        if c.backend == "transformers":  # the weights, not the URL; never the device
            from autojudge.runtime.weights import model_ref_identity

            del params["base_url"]
            params["model"] = model_ref_identity(c.model)
            params.update(dtype=c.dtype, local_answer=c.local_answer)
        return params

    def check(self) -> None:
        who = f"judge '{self.name}'"
        if self.config.backend == "transformers":
            from autojudge.judges.vlm_local import check_local_model

            check_local_model(self.config, self.name)
            self._template_text()
            return
        require("vlm", who)
        if not self.config.base_url.startswith(("http://", "https://")):
            raise AutojudgeError(f"{who}: base_url '{self.config.base_url}' is not an http(s) "
                                 f"URL; e.g. judge.{self.name}.base_url=http://localhost:8000/v1")
        self._template_text()
        env = self.config.api_key_env
        if env and not os.environ.get(env):
            raise AutojudgeError(
                f"{who}: environment variable {env} is not set; export {env}=<your key> (keys "
                f"are read from the environment only), or set judge.{self.name}.api_key_env='' "
                f"for a local server without a key")

    @property
    def needs(self) -> str:
        """What `applies` needs (the pre-flight message when no prompt qualifies)."""
        if self.config.criterion == "text_rendering":
            return "prompts with expected_text for criterion text_rendering"
        return "prompts with text"

    @property
    def validation_families(self) -> tuple[str, ...]:
        """The controlled-pair families its criterion is about (autojudge.validate)."""
        return _CRITERION_FAMILIES.get(self.config.criterion, ("quality",))

    def applies(self, prompt: Prompt) -> bool:
        if self.config.criterion == "text_rendering":
            return bool(prompt.expected_text and prompt.expected_text.strip())
        return bool(prompt.text and prompt.text.strip())

    # -- judging -------------------------------------------------------------------------

    def run_stats(self) -> dict[str, Any]:
        """Calls, retries, failures and tokens of this judge's lifetime (the runner adds
        the position-bias rate and the metered cost)."""
        with self._stats_lock:
            return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.stats.items()
                    if k != "cost_usd"}

    @property
    def client(self) -> Any:
        with self._client_lock:
            if self._client is None and self.config.backend == "transformers":
                from autojudge.judges.vlm_local import LocalVLMChat

                c = self.config
                self._client = LocalVLMChat(c.model, answer=c.local_answer, device=c.device,
                                            dtype=c.dtype, local_files_only=c.local_files_only,
                                            who=f"judge '{self.name}'")
            elif self._client is None:
                import openai

                key = os.environ.get(self.config.api_key_env, "") if self.config.api_key_env else ""
                self._client = openai.OpenAI(base_url=self.config.base_url,
                                             api_key=key or "not-needed",
                                             timeout=self.config.timeout_s, max_retries=0)
            return self._client

    @property
    def requests_pool(self) -> ThreadPoolExecutor:
        """The `concurrency` threads every request of this judge runs on."""
        with self._client_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.config.concurrency,
                                                thread_name_prefix=f"vlm-{self.name}")
            return self._pool

    def _scrub(self, text: str) -> str:
        key = os.environ.get(self.config.api_key_env, "") if self.config.api_key_env else ""
        if key:
            text = text.replace(key, "<redacted>")
        return _SECRETISH.sub("<redacted>", " ".join(str(text).split()))[:500]

    def _data_url(self, image: Any, sha: str = "") -> str:
        return self._images.get(image, sha)

    def _messages(self, pair: PairItem) -> list[dict[str, Any]]:
        """One order of one pair as asked: pair.a is "Image A"."""
        t = self._template_text()
        user = t["user"].format(prompt=pair.prompt.text, criterion_name=t["criterion_name"],
                                rubric=t["rubric"])
        url_a, url_b = (self._data_url(it.image, it.image_sha) for it in (pair.a, pair.b))
        return [
            {"role": "system", "content": t["system"]},
            {"role": "user", "content": [
                {"type": "text", "text": user},
                {"type": "text", "text": "Image A:"},
                {"type": "image_url", "image_url": {"url": url_a}},
                {"type": "text", "text": "Image B:"},
                {"type": "image_url", "image_url": {"url": url_b}},
            ]},
        ]

    def _price(self) -> tuple[float, float] | None:
        if not self._prices:  # the price table is a file: read once, not per answer
            c = self.config
            self._prices.append(model_price(c.model, c.price_input_per_mtok,
                                            c.price_output_per_mtok))
        return self._prices[0]

    def compare(self, pairs: Sequence[PairItem]) -> list[Verdict]:
        """One verdict per pair as given (A = pair.a), all requests on the judge's
        `concurrency` threads; failures are typed, never wins."""
        if self.config.concurrency == 1 or not pairs:
            return [self._ask(p) for p in pairs]
        # both orders of a pair side by side (a call's first requests need half the images
        # encoded), and each image encoded ahead of its requests (overlapping the waits)
        first: dict[frozenset, int] = {}  # image pair -> where it first comes
        order = sorted(range(len(pairs)), key=lambda i: (first.setdefault(
            frozenset((pairs[i].a.image_sha, pairs[i].b.image_sha)), i), i))
        todo = [pairs[i] for i in order]
        ahead = self._images.ahead([(it.image, it.image_sha) for p in todo for it in (p.a, p.b)])
        try:
            answers = dict(zip(order, self.requests_pool.map(self._ask, todo)))
        finally:
            ahead.shutdown(cancel_futures=True)
        return [answers[i] for i in range(len(pairs))]

    def _count(self, **changes: Any) -> None:
        with self._stats_lock:
            for k, v in changes.items():
                if k == "failure":
                    self.stats["failures"][v] = self.stats["failures"].get(v, 0) + 1
                else:
                    self.stats[k] += v

    def _ask(self, pair: PairItem) -> Verdict:
        """One order: bounded retries, then a Verdict (winner in this order's terms)."""
        found, raw, failure = self._call(self._messages(pair), self._read)
        if found is None:
            return Verdict(None, raw=raw, failure=failure)
        return Verdict(found.winner, rationale=found.rationale, raw={**dict(found.raw), **raw})

    def _call(self, messages: list[dict[str, Any]], read: Any, extra: dict | None = None
              ) -> tuple[Any, dict[str, Any], Failure | None]:
        """One request with bounded retries: (what `read` made of the answer, raw
        attempt info, None) or (None, raw, the typed failure). `read(response, seconds)`
        gives (result or None, failure or None, info)."""
        import openai

        from autojudge.judges.vlm_local import LocalVLMError

        c = self.config
        attempts: list[dict[str, Any]] = []
        failure: Failure | None = None
        for attempt in range(c.max_retries + 1):
            if attempt:
                self._count(retries=1)
            self._count(requests=1)
            retry_after: float | None = None
            started = time.perf_counter()
            final = recorded = False
            try:
                kwargs: dict[str, Any] = {"model": c.model, "messages": messages,
                                          "temperature": c.temperature,
                                          "max_tokens": c.max_tokens}
                if c.seed is not None:
                    kwargs["seed"] = c.seed
                response = self.client.chat.completions.create(**kwargs, **(extra or {}))
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                raise AutojudgeError(
                    f"judge '{self.name}': {c.base_url} rejected the API key from "
                    f"${c.api_key_env or '(none)'} (HTTP {exc.status_code}); check the key and "
                    f"the endpoint") from None
            except LocalVLMError as exc:  # the local model failed on this input: no retry
                failure = Failure("local_error", self._scrub(str(exc)), True)
                final = True
            except openai.RateLimitError as exc:
                failure = Failure("http_429", self._scrub(f"rate limited: {exc.message}"), True)
                retry_after = retry_after_s(exc)
            except openai.APITimeoutError:
                failure = Failure("timeout", f"no answer within {c.timeout_s:g} s", True)
            except openai.APIConnectionError as exc:
                failure = Failure("connection_error", self._scrub(f"{exc.message}"), True)
            except openai.APIStatusError as exc:
                status = int(exc.status_code)
                if status >= 500:
                    failure = Failure(f"http_{status}",
                                      self._scrub(f"server error: {exc.message}"), True)
                    retry_after = retry_after_s(exc)
                else:  # a 4xx other than 429 will not change on retry
                    failure = Failure(f"http_{status}",
                                      self._scrub(f"request rejected: {exc.message}"), False)
                    final = True
            else:
                found, failure, info = read(response, time.perf_counter() - started)
                attempts.append(info)
                if found is not None:
                    return found, {"attempts": len(attempts),
                                   "errors": [a.get("error") for a in attempts[:-1]]}, None
                failure = failure or Failure("judge_error", "no verdict")
                recorded = True
                # a local model at temperature 0 answers the same way every time
                final = c.backend == "transformers" and c.temperature == 0
            if not recorded:
                attempts.append({"error": failure.kind})
            if final:
                break
            if attempt < c.max_retries:
                delay = retry_after if retry_after is not None else c.backoff_s * (2 ** attempt)
                time.sleep(min(max(delay, 0.0), 60.0))
        assert failure is not None
        self._count(failure=failure.kind)
        message = f"{failure.message} (after {len(attempts)} attempts)"
        last_answer = next((a.get("answer") for a in reversed(attempts) if a.get("answer")), None)
        raw = {"attempts": len(attempts), "errors": [a.get("error") for a in attempts]}
        if last_answer is not None:
            raw["answer"] = last_answer
        return None, raw, Failure(failure.kind, message, failure.retryable)

    def _answer_info(self, response: Any, seconds: float) -> dict[str, Any]:
        """What every answer keeps (scrubbed text, latency, tokens, cost; the usage is
        counted), plus "text" (the answer as given, for the parser to pop) and
        "refusal" (the endpoint's refusal field, if any)."""
        choice = response.choices[0] if getattr(response, "choices", None) else None
        message = getattr(choice, "message", None)
        text = (getattr(message, "content", None) or "") if message is not None else ""
        refusal = getattr(message, "refusal", None) if message is not None else None
        usage = getattr(response, "usage", None)
        info: dict[str, Any] = {"text": text, "refusal": refusal,
                                "answer": self._scrub(text) if text else (refusal or ""),
                                "latency_s": round(seconds, 3)}
        metered = usage_cost(usage, self._price())
        if metered is not None:
            pt, ct, cost = metered
            info["usage"] = {"prompt_tokens": pt, "completion_tokens": ct}
            if cost is not None:
                info["cost_usd"] = round(cost, 8)
            self._count(prompt_tokens=pt, completion_tokens=ct, cost_usd=cost or 0.0)
        return info

    def _read(self, response: Any, seconds: float) -> tuple[Verdict | None, Failure | None,
                                                           dict[str, Any]]:
        info = self._answer_info(response, seconds)
        text, refusal = info.pop("text"), info.pop("refusal")
        parsed, rationale = parse_answer(text)
        if parsed is None:
            if refusal or REFUSAL.match(text or ""):
                failure = Failure("refusal", f"the model declined: {self._scrub(refusal or text)[:200]}")
                info["error"] = "refusal"
            else:
                failure = Failure("unparseable", f"no A/B/tie in the answer: "
                                                 f"{self._scrub(text)[:200]!r}")
                info["error"] = "unparseable"
            return None, failure, info
        winner = {"A": "model_a", "B": "model_b", "tie": "tie"}[parsed]
        raw = {**info, "choice": parsed, "rationale": self._scrub(rationale)[:1000]}
        return Verdict(winner, rationale=raw["rationale"], raw=raw), None, info

    # -- K-wise (judge.<label>.k > 2; the runner: stages.kwise) ----------------------------

    def rank(self, groups: Sequence[RankItem]) -> list[RankVerdict]:
        """One RankVerdict per group of k images as shown (slot 1 first): an order, or
        the best (`rank_answer`); failures typed, never a ranking."""
        from autojudge.judges.vlm_rank import rank_all

        return rank_all(self, groups)

    def rank_fingerprint(self) -> dict[str, Any]:
        """The ranking prompt and answer mode: part of the K-wise cache key."""
        from autojudge.judges.vlm_rank import rank_mode, rank_templates

        return {"rank_answer": rank_mode(self.config),
                "rank_templates": stable_hash(rank_templates(self.templates()))}

