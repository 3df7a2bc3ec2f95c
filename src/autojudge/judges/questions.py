"""The question layer of a TIFA / Davidsonian Scene Graph (DSG) alignment judge: which
yes/no questions to ask about an image of a prompt, and how answers become a score.

Where a prompt's questions come from (`questions_for`), first match wins:

1. the suite: a native entry's `questions:` list (carried on `Prompt.questions`);
2. GenEval metadata (`Prompt.meta["include"]`, kept by the GenEval importer), converted
   deterministically by `geneval_questions`: one "is there" question per object, an
   exact-count question for counted objects, a colour question per coloured object and a
   position question per placed object; count, colour and position questions depend on
   the object questions they presuppose;
3. an LLM asked once per prompt text (`autojudge.judges.question_llm`), cached in the store.

Scoring (`alignment_score`), DSG semantics extended to probabilities: each question's
answer is a yes-probability in [0, 1] (a plain yes/no answer is 1.0/0.0). A question is
*gated* when any parent's gated yes-probability is below 0.5 (the parent counts as
"no"); a gated question's yes-probability becomes 0, whatever its own answer was.
Gating is transitive: a parent gated by its own parent gates its children. The score is
the mean gated yes-probability over all questions, so with yes/no answers it is DSG's
"fraction of questions answered yes after gating".

Example:
    >>> qs = (Question("1", "Is there a dog?", skill="object"),
    ...       Question("2", "Is the dog red?", ("1",), "color"),
    ...       Question("3", "Is there a cat?", skill="object"))
    >>> alignment_score(qs, {"1": 1.0, "2": 1.0, "3": 0.0})[0]
    0.6666666666666666
    >>> score, rows = alignment_score(qs, {"1": 0.2, "2": 0.9, "3": 1.0})
    >>> round(score, 3), [row["gated"] for row in rows]
    (0.4, [False, True, False])
    >>> [q.text for q in geneval_questions({"include": [{"class": "dog", "count": 3}],
    ...                                     "exclude": [{"class": "dog", "count": 4}]})]
    ['Is there a dog?', 'Are there exactly 3 dogs?']
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from autojudge.errors import AutojudgeError
from autojudge.types import Prompt, Question

if TYPE_CHECKING:  # the LLM module imports openai lazily; typing only here
    from autojudge.judges.question_llm import LLMQuestionGenerator

__all__ = ["Question", "QuestionSet", "QuestionFormatError", "alignment_score",
           "gated_yes_probs", "graph_problem", "parse_questions", "geneval_questions",
           "questions_for", "has_geneval_objects", "plural", "QUESTION_FIELDS", "GATE",
           "GENEVAL_QUESTIONS_VERSION"]

#: the keys of one question as a suite entry (and an LLM answer) writes it
QUESTION_FIELDS = ("id", "question", "parents", "skill")
#: the yes-probability below which a parent counts as "no" and gates its children
GATE = 0.5
#: bump when `geneval_questions` words or links questions differently: GenEval metadata is
#: not in a prompt's cache key, so a judge puts this in its fingerprint instead
GENEVAL_QUESTIONS_VERSION = 1


class QuestionFormatError(ValueError):
    """A list of questions that cannot be used; `str()` is one line naming the question,
    `number` its 1-based position in the list (None for a problem of the whole list)."""

    def __init__(self, message: str, number: int | None = None):
        super().__init__(message)
        self.number = number


@dataclass(frozen=True)
class QuestionSet:
    """A prompt's questions and where they came from ("suite", "geneval" or "llm")."""

    questions: tuple[Question, ...]
    source: str

    def to_rows(self) -> list[dict[str, Any]]:
        return [question.to_dict() for question in self.questions]


# ---------------------------------------------------------------- structure


def graph_problem(questions: Sequence[Question]) -> str | None:
    """The first thing wrong with a question list as a DSG, in words, or None.

    Checks: an empty list, empty text, a duplicate id, a parent id that is not in the
    list (or the question itself), and a cycle of parents."""
    found = _graph_problem(questions)
    return found[0] if found else None


def _graph_problem(questions: Sequence[Question]) -> tuple[str, int | None] | None:
    """(problem, index of the question it is about or None) for `graph_problem`."""
    if not questions:
        return "has no questions; write at least one", None
    seen: set[str] = set()

    def name(i: int) -> str:
        return f"question {i + 1} (id {questions[i].id!r})"

    for i, question in enumerate(questions):
        if not question.text.strip():
            return f"{name(i)} has empty text; write a yes/no question", i
        if question.id in seen:
            return f"{name(i)}: id {question.id!r} appears twice; give each a unique id", i
        seen.add(question.id)
    for i, question in enumerate(questions):
        for parent in question.parents:
            if parent == question.id:
                return f"{name(i)} names itself as a parent", i
            if parent not in seen:
                return (f"{name(i)} has unknown parent {parent!r}; parents must be ids of "
                        f"this prompt's questions ({', '.join(q.id for q in questions)})", i)
    cycle = _find_cycle(questions)
    if cycle:
        index = next(i for i, q in enumerate(questions) if q.id == cycle[0])
        return (f"questions form a cycle of parents ({' -> '.join(cycle)}); a parent must "
                "not depend on its own child", index)
    return None


def _find_cycle(questions: Sequence[Question]) -> list[str] | None:
    """One cycle of parent links as ids (first id repeated at the end), or None."""
    parents = {q.id: q.parents for q in questions}
    finished: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return [*path[path.index(node):], node]
        if node in finished:
            return None
        path.append(node)
        for parent in parents.get(node, ()):
            found = visit(parent)
            if found:
                return found
        path.pop()
        finished.add(node)
        return None

    for question in questions:
        found = visit(question.id)
        if found:
            return found
    return None


def parse_questions(items: Any) -> tuple[Question, ...]:
    """Questions of a list of mappings {id, question, parents?, skill?} (the suite's
    `questions:` field and the LLM answer format share it), checked as a DSG.

    ids may be strings or integers (kept as strings); `parents` is a list of ids.
    Raises QuestionFormatError with one line naming the bad question."""
    if not isinstance(items, list):
        raise QuestionFormatError(f"must be a list of questions, got {type(items).__name__}")
    questions = []
    for number, item in enumerate(items, start=1):
        try:
            questions.append(_one_question(item, number))
        except QuestionFormatError as exc:
            raise QuestionFormatError(str(exc), number) from None
    found = _graph_problem(questions)
    if found:
        raise QuestionFormatError(found[0], None if found[1] is None else found[1] + 1)
    return tuple(questions)


def _one_question(item: Any, number: int) -> Question:
    where = f"question {number}"
    if not isinstance(item, dict):
        raise QuestionFormatError(f"{where} must be a mapping with keys id and question "
                                  f"(parents and skill optional), got {type(item).__name__}")
    unknown = [str(key) for key in item if key not in QUESTION_FIELDS]
    if unknown:
        raise QuestionFormatError(f"{where} has unknown key {unknown[0]!r}; allowed keys: "
                                  f"{', '.join(QUESTION_FIELDS)}")
    qid = _ident(item.get("id"), f"{where}, key 'id'")
    where = f"question {number} (id {qid!r})"
    text = item.get("question")
    if not isinstance(text, str) or not text.strip():
        raise QuestionFormatError(f"{where} needs a non-empty 'question' text such as "
                                  f"'Is the dog red?'")
    parents = item.get("parents")
    if parents is None:
        parents = []
    if not isinstance(parents, list):
        raise QuestionFormatError(f"{where}: 'parents' must be a list of question ids")
    skill = item.get("skill")
    if skill is not None and not isinstance(skill, str):
        raise QuestionFormatError(f"{where}: 'skill' must be a string")
    return Question(qid, " ".join(text.split()),
                    tuple(_ident(p, f"{where}, a parent id") for p in parents),
                    (skill or "").strip().lower())


def _ident(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise QuestionFormatError(f"{where} must be a non-empty string or integer, "
                                  f"got {value!r}")
    return str(value).strip()


# ---------------------------------------------------------------- scoring


def gated_yes_probs(questions: Sequence[Question], yes_probs: Mapping[str, float]
                    ) -> dict[str, tuple[float, bool]]:
    """id -> (gated yes-probability, gated?) under DSG gating (see the module docstring).

    Raises ValueError when an answer is missing or not a probability."""
    problem = graph_problem(questions)
    if problem:
        raise ValueError(problem)
    missing = [q.id for q in questions if q.id not in yes_probs]
    if missing:
        raise ValueError(f"no answer for question(s) {', '.join(missing)}")
    for q in questions:
        p = yes_probs[q.id]
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"answer to question {q.id!r} is {p!r}, not a probability in [0, 1]")
    by_id = {q.id: q for q in questions}
    done: dict[str, tuple[float, bool]] = {}

    def resolve(qid: str) -> tuple[float, bool]:
        if qid not in done:  # parents first; graph_problem ruled out cycles
            gated = any(resolve(parent)[0] < GATE for parent in by_id[qid].parents)
            done[qid] = (0.0 if gated else float(yes_probs[qid]), gated)
        return done[qid]

    return {q.id: resolve(q.id) for q in questions}


def alignment_score(questions: Sequence[Question], yes_probs: Mapping[str, float]
                    ) -> tuple[float, list[dict[str, Any]]]:
    """(score, one raw row per question): the mean gated yes-probability.

    Each row: id, question, skill, parents, p_yes (the answer as given), gated (a parent
    counted as "no"), score (the gated yes-probability)."""
    gated = gated_yes_probs(questions, yes_probs)
    rows = [{"id": q.id, "question": q.text, "skill": q.skill, "parents": list(q.parents),
             "p_yes": float(yes_probs[q.id]), "gated": gated[q.id][1],
             "score": gated[q.id][0]} for q in questions]
    return sum(row["score"] for row in rows) / len(rows), rows


# ---------------------------------------------------------------- GenEval

_IRREGULAR = {"person": "people", "mouse": "mice", "knife": "knives", "sheep": "sheep",
              "skis": "skis", "scissors": "scissors", "broccoli": "broccoli"}
_RELATIONS = {"left of": "to the left of", "right of": "to the right of",
              "above": "above", "below": "below"}


def plural(noun: str) -> str:
    """English plural of a (COCO class) noun phrase: its last word is inflected.

    >>> [plural(n) for n in ("dog", "wine glass", "bench", "person", "knife", "tv")]
    ['dogs', 'wine glasses', 'benches', 'people', 'knives', 'tvs']
    """
    head, _, last = noun.rpartition(" ")
    if last in _IRREGULAR:
        word = _IRREGULAR[last]
    elif last.endswith(("s", "x", "z", "ch", "sh")):
        word = last + "es"
    elif last.endswith("y") and last[-2:-1] not in "aeiou":
        word = last[:-1] + "ies"
    else:
        word = last + "s"
    return f"{head} {word}" if head else word


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1].lower() in "aeiou" else f"a {noun}"


def geneval_questions(meta: Mapping[str, Any]) -> tuple[Question, ...]:
    """Questions of a GenEval metadata row (`include`, optional `exclude`), in order:
    per object (1-based k) object-k, then count-k, color-k, position-k where they apply.

    A count question is asked for objects counted above one: "exactly" where the row
    excludes one more (GenEval's encoding of an exact count), "at least" otherwise;
    objects of count one need only the object question (GenEval accepts more)."""
    include = list(meta.get("include") or ())
    excluded = {(item.get("class"), item.get("count")) for item in meta.get("exclude") or ()
                if isinstance(item, Mapping)}
    questions: list[Question] = []
    for k, item in enumerate(include, start=1):
        name, count = str(item["class"]), int(item["count"])
        present = f"object-{k}"
        questions.append(Question(present, f"Is there {_a(name)}?", (), "object"))
        many = count > 1
        if many:
            how = "exactly" if (name, count + 1) in excluded else "at least"
            questions.append(Question(f"count-{k}", f"Are there {how} {count} {plural(name)}?",
                                      (present,), "count"))
        if item.get("color"):
            subject = f"Are the {plural(name)}" if many else f"Is the {name}"
            questions.append(Question(f"color-{k}", f"{subject} {item['color']}?",
                                      (present,), "color"))
        if item.get("position"):
            relation, other = item["position"][0], int(item["position"][1])
            target = str(include[other]["class"])
            subject = f"Are the {plural(name)}" if many else f"Is the {name}"
            questions.append(Question(
                f"position-{k}", f"{subject} {_RELATIONS.get(relation, relation)} the {target}?",
                (present, f"object-{other + 1}"), "position"))
    return tuple(questions)


def has_geneval_objects(meta: Mapping[str, Any]) -> bool:
    """Whether `meta` holds a GenEval object list that `geneval_questions` can read."""
    include = meta.get("include")
    if not isinstance(include, (list, tuple)) or not include:
        return False
    for item in include:
        if not (isinstance(item, Mapping) and isinstance(item.get("class"), str)
                and isinstance(item.get("count"), int)):
            return False
        position = item.get("position")
        if position and not (isinstance(position, (list, tuple)) and len(position) == 2
                             and isinstance(position[1], int)
                             and 0 <= position[1] < len(include)):
            return False
    return True


def questions_for(prompt: Prompt, generator: "LLMQuestionGenerator | None" = None
                  ) -> QuestionSet:
    """A prompt's questions: the suite's, else GenEval's, else the LLM's (`generator`).

    Raises AutojudgeError when the prompt has neither and no generator is given, and
    the generator's QuestionGenerationError when the LLM fails."""
    if prompt.questions:
        return QuestionSet(prompt.questions, "suite")
    if has_geneval_objects(prompt.meta):
        return QuestionSet(geneval_questions(prompt.meta), "geneval")
    if generator is None:
        raise AutojudgeError(f"prompt {prompt.id!r} has no questions (no suite questions, no "
                             f"GenEval metadata) and no question LLM is configured")
    return QuestionSet(generator.questions(prompt.generation_text()), "llm")
