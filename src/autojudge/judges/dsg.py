"""Question-based alignment judge (TIFA / Davidsonian Scene Graph style): decompose the
prompt into yes/no questions, ask a VQA model each about the image, score the fraction
answered yes after DSG's dependency gating.

Questions come from the suite (`questions:`), from GenEval metadata (deterministically),
or from an LLM asked once per prompt text and kept in the store
(`autojudge.judges.questions`, `autojudge.judges.question_llm`). Each question is answered
by the same yes/no machinery as VQAScore (`autojudge.judges.vqa_backend`: an
OpenAI-compatible endpoint's logprobs, or a local transformers VLM's next-token logits),
as P(Yes) / (P(Yes) + P(No)). The score is `questions.alignment_score`: the mean gated
yes-probability (a child counts as "no" when its parent does).

On GenEval's prompts this gives per-skill boards (single object, two objects, counting,
colours, position, colour attribution are tags), like GenEval's own table: but it is
GenEval's prompts scored by VQA, not GenEval's detector-based score. The run says so.

raw = {"source" (suite | geneval | llm), "questions": [{id, question, skill, parents,
p_yes, gated, score}, ...], "cost_usd" (openai, when priced)}: every question asked and
its answer, in scores.jsonl.

Example (config):
    dsg: {kind: dsg, base_url: http://localhost:8000/v1, model: Qwen/Qwen2.5-VL-7B-Instruct,
          api_key_env: "", llm_base_url: http://localhost:8001/v1, llm_model: qwen2.5-7b}
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from autojudge.judges.questions import (GENEVAL_QUESTIONS_VERSION, QuestionSet,
                                        has_geneval_objects, alignment_score, questions_for)
from autojudge.judges.vqa_backend import VQABackend, VQASettings
from autojudge.runtime.resources import JUDGES_DIR
from autojudge.sdk import PointwiseJudge
from autojudge.types import Failure, JudgeItem, Prompt, Score

__all__ = ["DSGJudge", "GENEVAL_NOTE"]

GENEVAL_NOTE = ("GenEval prompts scored by VQA questions (judge dsg), not GenEval's "
                "detector-based score")


class DSGJudge(PointwiseJudge):
    """Pointwise judge: the fraction of a prompt's yes/no questions a VQA model answers
    yes about the image, after DSG's dependency gating, in [0, 1]."""

    kind = "dsg"
    score_range = (0.0, 1.0)
    validation_families = ("alignment",)
    card = JUDGES_DIR / "dsg.md"
    non_semantic = ("batch_size", "concurrency", "timeout_s", "max_retries", "backoff_s",
                    "api_key_env", "price_input_per_mtok", "price_output_per_mtok",
                    "device", "local_files_only", "llm_api_key_env")

    @dataclass
    class Config(VQASettings):
        """Params of the `dsg` judge: the VQA model that answers (`VQASettings`, as for
        `vqascore`), plus:

        Attributes:
            llm_base_url: an OpenAI-compatible endpoint that writes questions for prompts
                with neither suite questions nor GenEval metadata ("" = none: such
                prompts are not judged).
            llm_model, llm_api_key_env: its model and the NAME of its key's variable.
            batch_size: images per call to the judge.
        """

        llm_base_url: str = ""
        llm_model: str = "gpt-4o-mini"
        llm_api_key_env: str = "OPENAI_API_KEY"
        batch_size: int = 4

    def __init__(self, name: str = "dsg", config: "DSGJudge.Config | None" = None):
        super().__init__(name, config)
        self.backend = VQABackend(VQASettings.of(self.config), name)
        self._generator: Any = None
        self.sources: dict[str, int] = {}  # where the judged prompts' questions came from

    @property
    def needs(self) -> str:
        return ("prompts with suite `questions:`, GenEval metadata, or a question LLM "
                f"(judge.{self.name}.llm_base_url)")

    def fingerprint_params(self) -> dict[str, Any]:
        llm = None
        if self.config.llm_base_url:
            from autojudge.judges.question_llm import template_fingerprint

            llm = {"model": self.config.llm_model, "template": template_fingerprint()}
        return {**self.backend.identity(), "geneval_questions": GENEVAL_QUESTIONS_VERSION,
                "question_llm": llm, "formula": "mean gated P(yes)/(P(yes)+P(no))"}

    def check(self) -> None:
        self.backend.check(self.cache)
        if self.config.llm_base_url:
            self._new_generator().check()

    def _new_generator(self) -> Any:
        from autojudge.judges.question_llm import LLMQuestionGenerator, QuestionLLMConfig

        c = self.config
        return LLMQuestionGenerator(
            QuestionLLMConfig(c.llm_base_url, c.llm_model, c.llm_api_key_env,
                              timeout_s=c.timeout_s, max_retries=c.max_retries,
                              backoff_s=c.backoff_s),
            store=self.cache, who=self.where)

    @property
    def generator(self) -> Any:
        """The question LLM (None without `llm_base_url`), caching in the run's store
        (made at first use, after the runner attached the cache)."""
        if self._generator is None and self.config.llm_base_url:
            self._generator = self._new_generator()
        return self._generator

    def applies(self, prompt: Prompt) -> bool:
        return bool(prompt.questions or has_geneval_objects(prompt.meta)
                    or (self.config.llm_base_url and prompt.text and prompt.text.strip()))

    def score(self, items: Sequence[JudgeItem]) -> list[Score]:
        """One Score per item: the gated fraction of yes, or a typed failure (never 0)."""
        from autojudge.judges.question_llm import QuestionGenerationError

        out: list[Score] = []
        for item in items:
            if not self.applies(item.prompt):
                out.append(Score(None, failure=Failure(
                    "not_applicable", f"{self.where}: prompt '{item.prompt.id}' has no "
                                      "questions and no question LLM is configured")))
                continue
            try:
                asked = questions_for(item.prompt, self.generator)
            except QuestionGenerationError as exc:
                out.append(Score(None, failure=exc.failure))
                continue
            out.append(self._answer(item, asked))
        return out

    def _answer(self, item: JudgeItem, asked: QuestionSet) -> Score:
        answers = self.backend.answers([(item.image, q.text) for q in asked.questions])
        failed = next((a.failure for a in answers if a.failure is not None), None)
        if failed is not None:  # one unanswered question: the fraction is unknown
            return Score(None, failure=failed)
        score, rows = alignment_score(asked.questions,
                                      {q.id: a.value for q, a in zip(asked.questions, answers)})
        self.sources[asked.source] = self.sources.get(asked.source, 0) + 1
        raw: dict[str, Any] = {"source": asked.source, "questions": rows}
        costs = [a.raw["cost_usd"] for a in answers if a.raw.get("cost_usd") is not None]
        if costs:
            raw["cost_usd"] = sum(costs)
        return Score(score, raw=raw)

    def run_stats(self) -> dict[str, Any]:
        """Requests and tokens of the VQA model, the question LLM's requests and cache
        hits, where the questions came from, and the GenEval caveat when it applies."""
        stats = {k: v for k, v in self.backend.stats_snapshot().items() if k != "cost_usd"}
        stats["question_sources"] = dict(self.sources)
        if self._generator is not None:
            stats["question_llm"] = dict(self._generator.stats)
        if self.sources.get("geneval"):
            stats["note"] = GENEVAL_NOTE
        return stats
