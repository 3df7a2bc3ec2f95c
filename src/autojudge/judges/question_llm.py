"""Yes/no questions for prompts that bring none (no suite `questions:`, no GenEval
metadata): written once by an LLM behind an OpenAI-compatible chat-completions endpoint
(OpenAI, vLLM, Ollama, ...) and cached in the store, so a later run asks nothing.

Settings (`QuestionLLMConfig`): base_url, model, and api_key_env, the NAME of the
environment variable holding the key ("" for a local server without one); the key never
goes in config or in an error text.

Answer format (what the template asks for, and all `parse_llm_questions` accepts): one
JSON object

    {"questions": [{"id": "1", "question": "Is there a dog?", "parents": [], "skill": "entity"},
                   {"id": "2", "question": "Is the dog red?", "parents": ["1"],
                    "skill": "attribute"}]}

or the bare list; in ```json fences or amid prose (the outermost {...} or [...] is
read). ids are strings or integers, unique; `parents` name ids of the same answer
(questions this one presupposes, DSG-style) and form no cycle; `skill` is optional.
An answer that breaks these rules is unparseable and asked again (bounded retries).

Cache: the store's `questions` table, keyed by `question_cache_key(prompt text,
model)`: a hash of the prompt text, the template's fingerprint (its text) and the model
name. Changing the template or the model asks again; the endpoint URL, sampling and
retry settings do not.

Example:
    >>> [q.text for q in parse_llm_questions('''Sure! ```json
    ... {"questions": [{"id": 1, "question": "Is there a cat?"},
    ...                {"id": 2, "question": "Is the cat black?", "parents": [1]}]}
    ... ```''')]
    ['Is there a cat?', 'Is the cat black?']
"""
from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from autojudge.errors import AutojudgeError
from autojudge.judges.questions import QuestionFormatError, parse_questions
from autojudge.types import Failure, Question, stable_hash

if TYPE_CHECKING:
    from autojudge.store.index import Store

__all__ = ["QuestionLLMConfig", "LLMQuestionGenerator", "QuestionGenerationError",
           "parse_llm_questions", "question_cache_key", "template_fingerprint",
           "SYSTEM_TEMPLATE", "USER_TEMPLATE"]

SYSTEM_TEMPLATE = ("You write yes/no questions that check whether an image matches the "
                   "text prompt it was generated from, in the style of Davidsonian Scene "
                   "Graph (DSG) evaluation. You answer with JSON only.")
USER_TEMPLATE = """Write atomic yes/no questions that together check every detail of the \
text-to-image prompt below: each entity, its attributes (colour, count, material, size, \
text it shows) and the relations between entities (position, action).

Rules:
- One fact per question, answerable yes or no from the image alone; "yes" must mean the \
image matches the prompt.
- First ask whether each entity is present. A question about an entity's attribute or \
relation lists, in "parents", the ids of the questions it presupposes.
- Ask nothing the prompt does not say.

Answer with JSON only, in exactly this format:
{"questions": [{"id": "1", "question": "Is there a dog?", "parents": [], "skill": "entity"},
               {"id": "2", "question": "Is the dog red?", "parents": ["1"], "skill": "attribute"}]}
skill is one of: entity, attribute, count, relation, action, text, other.

Prompt: <<PROMPT>>"""

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
_SECRETISH = re.compile(r"(sk-[A-Za-z0-9_\-*]{3,}|Bearer\s+\S+)")


@dataclass
class QuestionLLMConfig:
    """Settings of the question-writing LLM.

    Attributes:
        base_url: the OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (vLLM).
        model: the model name the endpoint serves; part of the cache key.
        api_key_env: NAME of the environment variable holding the key ("" = no key).
        temperature, max_tokens, seed: sampling (seed is sent; endpoints may ignore it).
        timeout_s: per-request timeout.
        max_retries: retries after the first attempt (429, 5xx, timeouts, unparseable).
        backoff_s: first backoff; doubles per retry.
    """

    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.0
    max_tokens: int = 1000
    seed: Optional[int] = 0
    timeout_s: float = 60.0
    max_retries: int = 2
    backoff_s: float = 1.0


class QuestionGenerationError(AutojudgeError):
    """The LLM gave no usable questions after its retries; `failure` is the typed record
    a judge keeps (transient kinds are retryable: a later run asks again)."""

    def __init__(self, kind: str, message: str, retryable: bool):
        super().__init__(message)
        self.failure = Failure(kind, message, retryable)


def template_fingerprint() -> str:
    """Hash of the template text: part of the cache key, so editing it asks again."""
    return stable_hash({"system": SYSTEM_TEMPLATE, "user": USER_TEMPLATE})


def question_cache_key(prompt_text: str, model: str) -> str:
    """The store key of a prompt's generated questions."""
    return stable_hash({"prompt": prompt_text, "template": template_fingerprint(),
                        "model": model})


def parse_llm_questions(text: str) -> tuple[Question, ...]:
    """Questions of an answer in the documented format; QuestionFormatError otherwise."""
    data = _json_in(text or "")
    if isinstance(data, dict):
        if "questions" not in data:
            raise QuestionFormatError('the JSON object has no "questions" list')
        data = data["questions"]
    return parse_questions(data)


def _json_in(text: str) -> Any:
    """The JSON value in `text`: all of it, a fenced block, or the outermost braces."""
    candidates = [text.strip(), *(m.group(1).strip() for m in _FENCE.finditer(text))]
    for open_, close in (("{", "}"), ("[", "]")):
        start, end = text.find(open_), text.rfind(close)
        if 0 <= start < end:
            candidates.append(text[start:end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            continue
    raise QuestionFormatError(f"no JSON in the answer: {' '.join(text.split())[:200]!r}")


def _dump(questions: tuple[Question, ...]) -> str:
    """The cached payload, in the answer format (so reading it back is the same parse)."""
    return json.dumps([{"id": q.id, "question": q.text, "parents": list(q.parents),
                        "skill": q.skill} for q in questions])


class LLMQuestionGenerator:
    """Writes (and caches) questions for prompt texts; thread-safe.

    Args:
        config: the endpoint and sampling settings.
        store: where questions are cached across runs (None: this object only).
        who: how errors name the caller, e.g. "judge 'dsg'".
    """

    def __init__(self, config: QuestionLLMConfig, store: "Store | None" = None,
                 who: str = "question LLM"):
        self.config, self.store, self.who = config, store, who
        self._memo: dict[str, tuple[Question, ...]] = {}
        self._lock = threading.Lock()
        self._client: Any = None
        #: requests sent to the endpoint, and prompts answered from the cache
        self.stats = {"requests": 0, "cached": 0}

    def fingerprint(self) -> dict[str, str]:
        """What decides the questions (as the cache key does), for a judge's fingerprint."""
        return {"model": self.config.model, "template": template_fingerprint()}

    def check(self) -> None:
        """One AutojudgeError line for settings that cannot work, before any request."""
        c = self.config
        if not c.base_url.startswith(("http://", "https://")):
            raise AutojudgeError(f"{self.who}: base_url {c.base_url!r} is not an http(s) URL, "
                                 "e.g. http://localhost:8000/v1")
        if c.max_retries < 0 or c.max_tokens < 1 or c.timeout_s <= 0:
            raise AutojudgeError(f"{self.who}: max_retries must be >= 0, max_tokens >= 1 "
                                 "and timeout_s > 0")
        if c.api_key_env and not os.environ.get(c.api_key_env):
            raise AutojudgeError(f"{self.who}: environment variable {c.api_key_env} is not "
                                 f"set; export {c.api_key_env}=<your key>, or set "
                                 "api_key_env='' for a local server without a key")

    def questions(self, prompt_text: str) -> tuple[Question, ...]:
        """The questions for `prompt_text`: cached, or asked of the LLM once and stored.

        Raises QuestionGenerationError when the LLM gives no usable answer."""
        key = question_cache_key(prompt_text, self.config.model)
        cached = self._cached(key)
        if cached is not None:
            with self._lock:
                self.stats["cached"] += 1
            return cached
        questions = self._ask(prompt_text)
        with self._lock:
            self._memo[key] = questions
        if self.store is not None:
            self.store.put_questions(key, _dump(questions))
        return questions

    def _cached(self, key: str) -> tuple[Question, ...] | None:
        with self._lock:
            if key in self._memo:
                return self._memo[key]
        payload = self.store.get_questions(key) if self.store is not None else None
        if payload is None:
            return None
        try:
            questions = parse_questions(json.loads(payload))
        except (ValueError, TypeError):
            return None  # an unreadable row is asked again (first write wins in the store)
        with self._lock:
            self._memo[key] = questions
        return questions

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import openai

                c = self.config
                key = os.environ.get(c.api_key_env, "") if c.api_key_env else ""
                self._client = openai.OpenAI(base_url=c.base_url, api_key=key or "not-needed",
                                             timeout=c.timeout_s, max_retries=0)
            return self._client

    def _scrub(self, text: str) -> str:
        env = self.config.api_key_env
        key = os.environ.get(env, "") if env else ""
        text = " ".join(str(text).split())
        return _SECRETISH.sub("<redacted>", text.replace(key, "<redacted>") if key else text)[:300]

    def _ask(self, prompt_text: str) -> tuple[Question, ...]:
        """One prompt: bounded retries with exponential backoff, then questions or a
        QuestionGenerationError."""
        c = self.config
        failure = Failure("judge_error", "no answer", True)
        for attempt in range(c.max_retries + 1):
            if attempt:
                time.sleep(min(c.backoff_s * 2 ** (attempt - 1), 60.0))
            with self._lock:
                self.stats["requests"] += 1
            answer = self._request(prompt_text)
            if isinstance(answer, Failure):
                failure = answer
                if not failure.retryable:
                    break
                continue
            try:
                return parse_llm_questions(answer)
            except QuestionFormatError as exc:
                failure = Failure("unparseable", self._scrub(f"{exc}"), True)
        raise QuestionGenerationError(
            failure.kind, f"{self.who}: no usable questions for {prompt_text[:80]!r} after "
            f"{attempt + 1} attempt(s): {failure.message}", failure.retryable)

    def _request(self, prompt_text: str) -> str | Failure:
        """One chat-completions call: the answer text, or why there is none."""
        import openai

        c = self.config
        kwargs: dict[str, Any] = {
            "model": c.model, "temperature": c.temperature, "max_tokens": c.max_tokens,
            "messages": [{"role": "system", "content": SYSTEM_TEMPLATE},
                         {"role": "user",
                          "content": USER_TEMPLATE.replace("<<PROMPT>>", prompt_text)}]}
        if c.seed is not None:
            kwargs["seed"] = c.seed
        try:
            response = self.client.chat.completions.create(**kwargs)
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise AutojudgeError(f"{self.who}: {c.base_url} rejected the API key from "
                                 f"${c.api_key_env or '(none)'} (HTTP {exc.status_code}); "
                                 "check the key and the endpoint") from None
        except openai.RateLimitError as exc:
            return Failure("http_429", self._scrub(f"rate limited: {exc.message}"), True)
        except openai.APITimeoutError:
            return Failure("timeout", f"no answer within {c.timeout_s:g} s", True)
        except openai.APIConnectionError as exc:
            return Failure("connection_error", self._scrub(exc.message), True)
        except openai.APIStatusError as exc:
            status = int(exc.status_code)
            return Failure(f"http_{status}", self._scrub(exc.message), status >= 500)
        choices = getattr(response, "choices", None) or []
        message = getattr(choices[0], "message", None) if choices else None
        text = getattr(message, "content", None) or ""
        if not text.strip():
            return Failure("unparseable", "empty answer", True)
        return text
