"""Plain data that flows between the stages: prompts, requests, images, scores, verdicts.

Every type here is a frozen dataclass with no behaviour beyond small helpers, so stages
and plugins can be tested on values they build by hand.

Example:
    >>> p = Prompt(id="sign-1", text='A shop sign that reads "OPEN"', tags=("text_rendering",),
    ...            category="text_rendering", expected_text="OPEN")
    >>> GenRequest(prompt=p, seed=0).key_payload()["prompt"]["expected_text"]
    'OPEN'
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping

WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")
Winner = Literal["model_a", "model_b", "tie", "tie (bothbad)"]


def stable_hash(payload: Any) -> str:
    """sha256 hex digest of a JSON-serialisable payload, independent of dict order."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


_FILE_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | None) -> str | None:
    """sha256 of a file's bytes (None for None), memoised on (path, size, mtime).

    A missing file hashes to "missing:<name>" rather than raising, so a prompt whose image
    vanished still has a key (suites check that files exist when they load)."""
    if not path:
        return None
    import os

    try:
        st = os.stat(path)
    except OSError:
        return f"missing:{os.path.basename(path)}"
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _FILE_SHA_CACHE:
        with open(path, "rb") as handle:
            _FILE_SHA_CACHE[key] = hashlib.sha256(handle.read()).hexdigest()
    return _FILE_SHA_CACHE[key]


@dataclass(frozen=True)
class Question:
    """One yes/no question about an image, for a question-answering alignment judge
    (TIFA / Davidsonian Scene Graph style; see autojudge.judges.questions).

    Attributes:
        id: unique within its prompt's questions.
        text: the question, answerable by yes or no ("Is the dog red?").
        parents: ids of questions this one presupposes: when any parent is answered
            "no", this one counts as "no" too (DSG's dependency gating).
        skill: what the question tests ("object", "count", "color", "position", ...).
    """

    id: str
    text: str
    parents: tuple[str, ...] = ()
    skill: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "parents": list(self.parents),
                "skill": self.skill}


@dataclass(frozen=True)
class Prompt:
    """One entry of a prompt suite.

    Attributes:
        id: unique within its suite; folder generators look files up by it.
        text: the prompt shown to the generator.
        tags: flat, lower-case tags (category, capabilities, difficulty, source tags);
            per-tag boards and `suite.tags=[...]` filters use them.
        category: the main category (also one of `tags`).
        expected_text: text the image should render legibly (OCR judge), if any.
        seeds: per-prompt seeds; None means the suite's default seeds.
        meta: anything else the source carried (e.g. GenEval's object list).
        task: "txt2img" (default), "img2img" (init_image, optional strength and
            style_prompt: image-to-image / style transfer) or "inpaint" (init_image + mask).
        init_image: absolute path of the image to edit (suites resolve it relative to
            the suite file), or None.
        mask: absolute path of the inpainting mask (white = repaint, black = keep), or None.
        strength: how far img2img/inpaint may move from the init image (0..1], or None
            for the generator's default.
        style_prompt: for style transfer, the style to apply (e.g. "a charcoal sketch");
            generators send `generation_text()`, the text plus this style.
        questions: yes/no questions the suite wrote for this prompt (a suite entry's
            `questions:`), for question-answering alignment judges; () when it has none.
    """

    id: str
    text: str
    tags: tuple[str, ...] = ()
    category: str | None = None
    expected_text: str | None = None
    seeds: tuple[int, ...] | None = None
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    task: str = "txt2img"
    init_image: str | None = None
    mask: str | None = None
    strength: float | None = None
    style_prompt: str | None = None
    questions: tuple[Question, ...] = ()

    def content(self) -> dict[str, Any]:
        """What a generator or judge may read of this prompt (tags excluded: they don't
        change an image or a score, so re-tagging a suite keeps the cache).

        Editing prompts add their task, strength, style prompt and the sha256 of the init
        image and mask CONTENT (never their paths), so cache keys follow the pixels: moving
        a suite keeps its cache, redrawing a mask invalidates it. A plain text-to-image
        prompt keeps exactly the three keys it always had; written questions are added
        only when there are some (they change an alignment score, as expected_text
        changes an OCR score)."""
        content: dict[str, Any] = {"id": self.id, "text": self.text,
                                   "expected_text": self.expected_text}
        if self.questions:
            content["questions"] = [question.to_dict() for question in self.questions]
        if self.task != "txt2img" or self.init_image or self.mask or self.style_prompt:
            content.update({"task": self.task, "strength": self.strength,
                            "style_prompt": self.style_prompt,
                            "init_image_sha256": file_sha256(self.init_image),
                            "mask_sha256": file_sha256(self.mask)})
        return content

    def generation_text(self) -> str:
        """The text a generator should send: the prompt, plus the style prompt if any."""
        return f"{self.text}, {self.style_prompt}" if self.style_prompt else self.text


@dataclass(frozen=True)
class GenRequest:
    """Ask a generator for one image of `prompt` with `seed`."""

    prompt: Prompt
    seed: int

    def key_payload(self) -> dict[str, Any]:
        return {"prompt": self.prompt.content(), "seed": self.seed}


@dataclass(frozen=True)
class Failure:
    """A typed failure record (never a sentinel string, never a silent drop).

    Attributes:
        kind: short machine-readable class, e.g. "missing_file", "corrupt_image",
            "http_429", "timeout", "nsfw", "judge_error", "unparseable".
        message: one human-readable line.
        retryable: whether a later run should try again instead of trusting this record.
    """

    kind: str
    message: str
    retryable: bool = False


@dataclass(frozen=True)
class GenOutput:
    """What a generator returns for one request: encoded image bytes or a failure."""

    image: bytes | None
    latency_s: float
    cost_usd: float = 0.0
    failure: Failure | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.failure is None and self.image is not None


@dataclass(frozen=True)
class Generation:
    """A stored generation: the request, the model label and where its image lives."""

    model: str
    prompt: Prompt
    seed: int
    image_sha: str | None
    image_path: str | None
    latency_s: float
    cost_usd: float
    failure: Failure | None = None
    cached: bool = False
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.failure is None and self.image_sha is not None


@dataclass(frozen=True)
class JudgeItem:
    """One image as a judge sees it: the prompt, the decoded image and its content hash.

    The pipeline builds items with `image=None` and a `loader`, so a cached score never
    decodes its image; the caching wrappers call `materialized()` before an inner judge
    sees the item, so judges may always use `item.image` directly.
    """

    prompt: Prompt
    image: Any  # PIL.Image.Image; typed loosely so importing this module stays cheap
    image_sha: str
    loader: Callable[[], Any] | None = field(default=None, compare=False, repr=False)

    def materialized(self) -> "JudgeItem":
        """This item with its image decoded."""
        if self.image is not None or self.loader is None:
            return self
        return JudgeItem(self.prompt, self.loader(), self.image_sha)


@dataclass(frozen=True)
class Score:
    """A pointwise judge's output for one image (`value` is None only with a failure)."""

    value: float | None
    raw: Mapping[str, Any] = field(default_factory=dict)
    failure: Failure | None = None


@dataclass(frozen=True)
class PairItem:
    """A pair of images of the same prompt and seed, as a pairwise judge sees them."""

    prompt: Prompt
    a: JudgeItem
    b: JudgeItem


@dataclass(frozen=True)
class Verdict:
    """A pairwise judge's output for one pair.

    `winner` is None only with a failure. `raw` keeps the judge's raw output (answers,
    OCR text, both orders of a swap-debiased VLM) so every verdict can be audited.
    """

    winner: Winner | None
    score_a: float | None = None
    score_b: float | None = None
    rationale: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict)
    failure: Failure | None = None


@dataclass(frozen=True)
class RankItem:
    """K >= 2 images of one prompt and seed, in the order a ranking judge is shown them
    (slot 1 first)."""

    prompt: Prompt
    items: tuple[JudgeItem, ...]


@dataclass(frozen=True)
class RankVerdict:
    """A ranking judge's output for one `RankItem`: one rank per slot, in slot order (an
    int >= 1, 1 = best, equal = tie; None = unranked, e.g. all but the best of a
    best-of-K answer). `ranks` is None only with a failure."""

    ranks: tuple[int | None, ...] | None
    rationale: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict)
    failure: Failure | None = None


@dataclass(frozen=True)
class RankingBattle:
    """One K-wise row of the battle log (autojudge.battles.rankings): the models in the
    first call's slot order and, per call, the ranks in that same model order (two calls
    in different slot orders: a pair whose order the calls disagree on is a tie)."""

    models: tuple[str, ...]
    ranks: tuple[tuple[int | None, ...], ...]
    judge: str
    prompt_id: str
    seed: int
    tags: tuple[str, ...] = ()
    rationale: str = ""
    tstamp: float = 0.0
    #: per model, its image's style features (`ratings.control`), as (name, value) pairs
    features: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] | None = None

    def to_row(self) -> dict[str, Any]:
        ranks: Any = [list(r) for r in self.ranks]
        row = {"models": list(self.models), "ranks": ranks[0] if len(ranks) == 1 else ranks,
               "judge": self.judge, "prompt_id": self.prompt_id, "seed": self.seed,
               "tags": list(self.tags), "rationale": self.rationale, "tstamp": self.tstamp}
        if self.features is not None:
            row["features"] = {m: dict(f) for m, f in self.features}
        return row

    def pairs(self) -> list["Battle"]:
        """The pairs the ranking orders (rank breaking, calls combined), as battles."""
        from autojudge.ratings.rankings import break_rankings, consensus_pairs

        models = [list(self.models)]
        if len(self.ranks) == 1:
            broken = break_rankings(models, [list(self.ranks[0])])
        else:
            broken = consensus_pairs(models, [list(self.ranks[0])], [list(self.ranks[1])])
        features = dict(self.features or ())
        return [Battle(str(a), str(b), str(w), self.judge, self.prompt_id, self.seed,
                       self.tags, None, None, self.rationale, self.tstamp,
                       features.get(str(a)), features.get(str(b)))
                for a, b, w in zip(broken.model_a, broken.model_b, broken.winner)]


@dataclass(frozen=True)
class Battle:
    """One row of the battle log (Chatbot Arena / imgsys convention plus context)."""

    model_a: str
    model_b: str
    winner: Winner
    judge: str
    prompt_id: str
    seed: int
    tags: tuple[str, ...] = ()
    score_a: float | None = None
    score_b: float | None = None
    rationale: str = ""
    tstamp: float = 0.0
    #: per-image style features of each side, (name, value) pairs, when the run computed
    #: them (`ratings.control`); written as {"features_a": {name: value}, ...}
    features_a: tuple[tuple[str, float], ...] | None = None
    features_b: tuple[tuple[str, float], ...] | None = None

    def to_row(self) -> dict[str, Any]:
        row = {
            "model_a": self.model_a, "model_b": self.model_b, "winner": self.winner,
            "judge": self.judge, "prompt_id": self.prompt_id, "seed": self.seed,
            "tags": list(self.tags), "score_a": self.score_a, "score_b": self.score_b,
            "rationale": self.rationale, "tstamp": self.tstamp,
        }
        if self.features_a is not None and self.features_b is not None:
            row["features_a"], row["features_b"] = dict(self.features_a), dict(self.features_b)
        return row
