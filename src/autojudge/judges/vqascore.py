"""VQAScore judge: how well an image shows its prompt, as a vision-language model's
probability of answering "Yes" (Lin et al. 2024, "Evaluating Text-to-Visual Generation
with Image-to-Text Generation", arXiv:2404.01291).

score = P(Yes) / (P(Yes) + P(No)) for the question

    Does this figure show "{prompt}"? Please answer yes or no.

asked about the image, in [0, 1]. The paper scores the unnormalised P("Yes"); dividing by
P(Yes) + P(No) removes the probability mass a chat model puts on other first tokens
("The", "Sure", ...), which varies with formatting and, on an API, is only partly visible
through the top-K logprobs. Which tokens count as Yes / No, and both backends (`openai`:
any OpenAI-compatible endpoint that returns logprobs; `transformers`: a local VLM), are
`autojudge.judges.vqa_backend`'s, which question-based judges share.

raw = {"p_yes", "p_no", "token" (openai: the first answer token), "usage", "cost_usd"
(openai, when priced: the runner meters it), "attempts"}.

Example (config):
    vqascore: {kind: vqascore, base_url: http://localhost:8000/v1,
               model: Qwen/Qwen2.5-VL-7B-Instruct, api_key_env: ""}
    vqascore: {kind: vqascore, backend: transformers, model: Qwen/Qwen2-VL-2B-Instruct}
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from autojudge.errors import AutojudgeError
from autojudge.judges.vqa_backend import VQABackend, VQASettings
from autojudge.runtime.resources import JUDGES_DIR
from autojudge.sdk import PointwiseJudge
from autojudge.types import Failure, JudgeItem, Prompt, Score

__all__ = ["VQAScoreJudge", "QUESTION"]

#: the VQAScore paper's question
QUESTION = 'Does this figure show "{prompt}"? Please answer yes or no.'


class VQAScoreJudge(PointwiseJudge):
    """Pointwise judge: P(Yes) / (P(Yes) + P(No)) of "does this figure show the prompt?"."""

    kind = "vqascore"
    score_range = (0.0, 1.0)
    validation_families = ("alignment",)
    card = JUDGES_DIR / "vqascore.md"
    # what never changes an answer: how many at once, how long to wait, who pays and where
    non_semantic = ("batch_size", "concurrency", "timeout_s", "max_retries", "backoff_s",
                    "api_key_env", "price_input_per_mtok", "price_output_per_mtok",
                    "device", "local_files_only")

    @dataclass
    class Config(VQASettings):
        """Params of the `vqascore` judge: the VQA model's settings (`VQASettings`, one
        home for every yes/no judge: backend, base_url, model, api_key_env, top_logprobs,
        image_max_side, image_format, timeout_s, max_retries, backoff_s, concurrency,
        price_input_per_mtok, price_output_per_mtok, dtype, device, local_files_only),
        plus:

        Attributes:
            question: the question asked; "{prompt}" is replaced by the prompt's text.
            batch_size: images per call to the judge.
        """

        question: str = QUESTION
        batch_size: int = 8

    def __init__(self, name: str = "vqascore", config: "VQAScoreJudge.Config | None" = None):
        super().__init__(name, config)
        question = self.config.question
        try:
            filled = question.format(prompt="\x00")
        except (KeyError, IndexError, ValueError) as exc:
            raise AutojudgeError(f"{self.where}: question {question!r} is not a template with "
                                 f"only {{prompt}} in braces ({type(exc).__name__}: {exc})") \
                from None
        if "\x00" not in filled:
            raise AutojudgeError(f"{self.where}: question {question!r} must contain {{prompt}}")
        self.backend = VQABackend(VQASettings.of(self.config), name)

    def fingerprint_params(self) -> dict[str, Any]:
        # the backend's identity (a local model by its files, never the device or key)
        return {**self.backend.identity(), "question": self.config.question,
                "formula": "P(yes)/(P(yes)+P(no)), first token"}

    def check(self) -> None:
        self.backend.check(self.cache)

    @property
    def needs(self) -> str:
        return "prompts with text"

    def applies(self, prompt: Prompt) -> bool:
        return bool(prompt.text and prompt.text.strip())

    def question_for(self, prompt: Prompt) -> str:
        return self.config.question.format(prompt=prompt.text.strip())

    def score(self, items: Sequence[JudgeItem]) -> list[Score]:
        """One Score per item, in order: the yes-ratio, or a typed failure (never 0)."""
        out: list[Score | None] = [None] * len(items)
        todo = []
        for i, item in enumerate(items):
            if self.applies(item.prompt):
                todo.append(i)
            else:
                out[i] = Score(None, failure=Failure(
                    "not_applicable", f"{self.where}: prompt '{item.prompt.id}' is empty"))
        answers = self.backend.answers([(items[i].image, self.question_for(items[i].prompt))
                                        for i in todo])
        for i, answer in zip(todo, answers):
            out[i] = Score(answer.value, raw=dict(answer.raw), failure=answer.failure)
        return [s for s in out if s is not None]

    def run_stats(self) -> dict[str, Any]:
        """Requests, retries, failures and tokens over this judge's lifetime (the runner
        reports what fresh scores cost as spent_usd)."""
        return {k: v for k, v in self.backend.stats_snapshot().items() if k != "cost_usd"}
