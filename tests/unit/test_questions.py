"""The question layer of the TIFA / DSG alignment judge: questions from suites, GenEval
metadata and an LLM (cached in the store), and DSG-gated scoring of answers."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers import GENEVAL, needs_shared_data

from autojudge.errors import AutojudgeError
from autojudge.judges.question_llm import (LLMQuestionGenerator, QuestionGenerationError,
                                           QuestionLLMConfig, parse_llm_questions,
                                           question_cache_key)
from autojudge.judges.questions import (QuestionFormatError, alignment_score,
                                        gated_yes_probs, geneval_questions, graph_problem,
                                        parse_questions, plural, questions_for)
from autojudge.store.index import Store
from autojudge.suites.importers import read_geneval
from autojudge.suites.load import load_suite
from autojudge.types import GenRequest, Prompt, Question, stable_hash

SKILLS = {"single_object", "two_object", "counting", "colors", "position", "color_attr"}

# One row of each GenEval skill, as published (evaluation_metadata.jsonl).
ROWS = [
    {"tag": "single_object", "include": [{"class": "bench", "count": 1}],
     "prompt": "a photo of a bench"},
    {"tag": "two_object", "include": [{"class": "bench", "count": 1},
                                      {"class": "sports ball", "count": 1}],
     "prompt": "a photo of a bench and a sports ball"},
    {"tag": "counting", "include": [{"class": "clock", "count": 2}],
     "exclude": [{"class": "clock", "count": 3}], "prompt": "a photo of two clocks"},
    {"tag": "colors", "include": [{"class": "fire hydrant", "count": 1, "color": "blue"}],
     "prompt": "a photo of a blue fire hydrant"},
    {"tag": "position", "include": [{"class": "teddy bear", "count": 1},
                                    {"class": "dog", "count": 1, "position": ["right of", 0]}],
     "prompt": "a photo of a dog right of a teddy bear"},
    {"tag": "color_attr", "include": [{"class": "wine glass", "count": 1, "color": "purple"},
                                      {"class": "apple", "count": 1, "color": "black"}],
     "prompt": "a photo of a purple wine glass and a black apple"},
]
EXPECTED = {
    "single_object": [("object-1", "Is there a bench?", (), "object")],
    "two_object": [("object-1", "Is there a bench?", (), "object"),
                   ("object-2", "Is there a sports ball?", (), "object")],
    "counting": [("object-1", "Is there a clock?", (), "object"),
                 ("count-1", "Are there exactly 2 clocks?", ("object-1",), "count")],
    "colors": [("object-1", "Is there a fire hydrant?", (), "object"),
               ("color-1", "Is the fire hydrant blue?", ("object-1",), "color")],
    "position": [("object-1", "Is there a teddy bear?", (), "object"),
                 ("object-2", "Is there a dog?", (), "object"),
                 ("position-2", "Is the dog to the right of the teddy bear?",
                  ("object-2", "object-1"), "position")],
    "color_attr": [("object-1", "Is there a wine glass?", (), "object"),
                   ("color-1", "Is the wine glass purple?", ("object-1",), "color"),
                   ("object-2", "Is there an apple?", (), "object"),
                   ("color-2", "Is the apple black?", ("object-2",), "color")],
}


def as_tuples(questions) -> list[tuple]:
    return [(q.id, q.text, q.parents, q.skill) for q in questions]


# ---------------------------------------------------------------- GenEval


def test_geneval_rows_of_every_skill_become_tagged_prompts_with_dsg_questions() -> None:
    text = "\n".join(json.dumps(row) for row in ROWS)
    prompts = read_geneval("hand.jsonl", text)
    assert [p.tags for p in prompts] == [(row["tag"],) for row in ROWS]
    for prompt in prompts:
        found = questions_for(prompt)
        assert found.source == "geneval"
        assert as_tuples(found.questions) == EXPECTED[prompt.category], prompt.category
        assert prompt.questions == ()  # derived at judge time: the cache keys stay as they were
        assert set(prompt.content()) == {"id", "text", "expected_text"}


def test_geneval_counts_without_exclude_and_counted_colours_read_as_english() -> None:
    meta = {"include": [{"class": "person", "count": 3, "color": "red"},
                        {"class": "bus", "count": 1, "position": ["above", 0]}]}
    assert as_tuples(geneval_questions(meta)) == [
        ("object-1", "Is there a person?", (), "object"),
        ("count-1", "Are there at least 3 people?", ("object-1",), "count"),
        ("color-1", "Are the people red?", ("object-1",), "color"),
        ("object-2", "Is there a bus?", (), "object"),
        ("position-2", "Is the bus above the person?", ("object-2", "object-1"), "position")]
    assert [plural(n) for n in ("sandwich", "toothbrush", "sheep", "skis", "cell phone")] == \
        ["sandwiches", "toothbrushes", "sheep", "skis", "cell phones"]


@needs_shared_data("geneval_evaluation_metadata.jsonl")
def test_geneval_real_file_gives_every_prompt_a_valid_question_graph() -> None:
    suite = load_suite(GENEVAL)
    assert set(suite.tags()) == SKILLS
    assert all(len(p.tags) == 1 and p.tags[0] in SKILLS for p in suite.prompts)
    skills_by_tag: dict[str, set[str]] = {}
    for prompt in suite.prompts:
        found = questions_for(prompt)
        questions = found.questions
        assert found.source == "geneval" and graph_problem(questions) is None, prompt.id
        include = prompt.meta["include"]
        objects = [q for q in questions if q.skill == "object"]
        assert len(objects) == len(include)
        for q, item in zip(objects, include):
            assert item["class"] in q.text and item["class"] in prompt.text
        for q in questions:
            if q.skill != "object":  # every other question presupposes its object(s)
                assert q.parents and all(p.startswith("object-") for p in q.parents)
            if q.skill == "color":
                color = q.text.rstrip("?").split()[-1]
                assert color in prompt.text
            if q.skill == "count":
                assert q.text.startswith("Are there exactly ")
        skills_by_tag.setdefault(prompt.category, set()).update(q.skill for q in questions)
    assert skills_by_tag == {"single_object": {"object"}, "two_object": {"object"},
                             "counting": {"object", "count"}, "colors": {"object", "color"},
                             "position": {"object", "position"},
                             "color_attr": {"object", "color"}}
    two_dogs = next(p for p in suite.prompts if p.text == "a photo of two clocks")
    assert [q.text for q in questions_for(two_dogs).questions] == \
        ["Is there a clock?", "Are there exactly 2 clocks?"]


# ---------------------------------------------------------------- DSG gating

DOG = (Question("dog", "Is there a dog?", skill="object"),
       Question("red", "Is the dog red?", ("dog",), "color"),
       Question("collar", "Does the dog's collar have a bell?", ("red",), "attribute"),
       Question("cat", "Is there a cat?", skill="object"))


def test_a_no_parent_makes_its_children_no_transitively() -> None:
    score, rows = alignment_score(DOG, {"dog": 0.0, "red": 1.0, "collar": 1.0, "cat": 1.0})
    assert score == 0.25
    assert [(r["id"], r["gated"], r["score"]) for r in rows] == [
        ("dog", False, 0.0), ("red", True, 0.0), ("collar", True, 0.0), ("cat", False, 1.0)]
    assert rows[1] == {"id": "red", "question": "Is the dog red?", "skill": "color",
                       "parents": ["dog"], "p_yes": 1.0, "gated": True, "score": 0.0}
    assert alignment_score(DOG, dict.fromkeys(["dog", "red", "collar", "cat"], 1.0))[0] == 1.0
    # the parent itself answered yes, its child no: only the grandchild is gated
    assert alignment_score(DOG, {"dog": 1.0, "red": 0.0, "collar": 1.0, "cat": 0.0})[0] == 0.25


def test_probabilities_are_gated_at_one_half_and_otherwise_averaged() -> None:
    gated = gated_yes_probs(DOG, {"dog": 0.5, "red": 0.4, "collar": 0.9, "cat": 0.2})
    # dog at exactly 0.5 counts as yes; red at 0.4 counts as no for collar
    assert gated == {"dog": (0.5, False), "red": (0.4, False), "collar": (0.0, True),
                     "cat": (0.2, False)}
    score, _ = alignment_score(DOG, {"dog": 0.5, "red": 0.4, "collar": 0.9, "cat": 0.2})
    assert score == pytest.approx((0.5 + 0.4 + 0.0 + 0.2) / 4)


def test_answers_must_cover_every_question_with_a_probability() -> None:
    with pytest.raises(ValueError, match="no answer for question.*collar"):
        alignment_score(DOG, {"dog": 1.0, "red": 1.0, "cat": 1.0})
    with pytest.raises(ValueError, match="not a probability"):
        alignment_score(DOG, {"dog": 1.5, "red": 1.0, "collar": 1.0, "cat": 1.0})
    with pytest.raises(ValueError, match="cycle"):
        alignment_score((Question("a", "A?", ("b",)), Question("b", "B?", ("a",))),
                        {"a": 1.0, "b": 1.0})


# ---------------------------------------------------------------- suite `questions`


def suite_file(tmp_path: Path, questions_yaml: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text("prompts:\n"
                    "  - id: red-dog\n"
                    "    text: a red dog\n"
                    "    category: animals\n"
                    f"    questions:\n{questions_yaml}")
    return path


GOOD = ("      - {id: dog, question: 'Is there a dog?', skill: object}\n"
        "      - id: red\n"
        "        question: Is the dog red?\n"
        "        parents: [dog]\n")


def test_suite_questions_ride_on_the_prompt_and_in_its_content(tmp_path: Path) -> None:
    prompt = load_suite(suite_file(tmp_path, GOOD)).prompts[0]
    assert prompt.questions == (Question("dog", "Is there a dog?", (), "object"),
                                Question("red", "Is the dog red?", ("dog",), ""))
    assert questions_for(prompt).source == "suite"
    assert prompt.content()["questions"][1] == {"id": "red", "text": "Is the dog red?",
                                                "parents": ["dog"], "skill": ""}
    hash(prompt)  # still usable as a dict key
    jsonl = tmp_path / "s.jsonl"
    jsonl.write_text(json.dumps({"id": "a", "text": "a dog", "category": "animals",
                                 "questions": [{"id": 1, "question": "Is there a dog?"}]}))
    assert load_suite(jsonl).prompts[0].questions == (Question("1", "Is there a dog?"),)


def test_prompts_without_questions_keep_their_cache_keys() -> None:
    prompt = Prompt(id="sign-1", text='A shop sign that reads "OPEN"', tags=("text_rendering",),
                    category="text_rendering", expected_text="OPEN")
    assert set(prompt.content()) == {"id", "text", "expected_text"}
    # the generation key this prompt had before Prompt.questions existed
    assert stable_hash(GenRequest(prompt, 3).key_payload()) == \
        "29ff87488acc9147a7742d2a01068167017a26acea71bcb8215abd39fd161d15"


@pytest.mark.parametrize("questions_yaml, line, needles", [
    ("      - {id: dog, question: 'Is there a dog?'}\n"
     "      - {id: red, question: 'Is it red?', parents: [cat]}\n",
     7, ["question 2", "unknown parent 'cat'"]),
    ("      - {id: a, question: 'A?', parents: [b]}\n"
     "      - {id: b, question: 'B?', parents: [a]}\n",
     6, ["cycle of parents", "a -> b -> a"]),
    ("      - {id: dog, question: 'Is there a dog?'}\n"
     "      - {id: dog, question: 'Is it red?'}\n",
     7, ["question 2", "'dog' appears twice"]),
    ("      - {id: dog, question: 'Is there a dog?'}\n"
     "      - {id: red, question: '  '}\n",
     7, ["question 2 (id 'red')", "non-empty 'question'"]),
    ("      - {id: dog, question: 'Is there a dog?', parent: [x]}\n",
     6, ["unknown key 'parent'"]),
    ("      - {id: dog, question: 'Is there a dog?', parents: [dog]}\n",
     6, ["names itself as a parent"]),
])
def test_bad_suite_questions_fail_with_one_line_naming_file_entry_and_line(
        tmp_path: Path, questions_yaml: str, line: int, needles: list[str]) -> None:
    path = suite_file(tmp_path, questions_yaml)
    with pytest.raises(AutojudgeError) as caught:
        load_suite(path)
    message = str(caught.value)
    assert "\n" not in message
    for needle in (f"suite {path}", "entry 1 (id 'red-dog'", f"line {line}",
                   "field 'questions'", *needles):
        assert needle in message, (needle, message)


def test_questions_field_must_be_a_non_empty_list(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("prompts:\n  - id: a\n    text: a dog\n    category: animals\n"
                    "    questions: Is there a dog?\n")
    with pytest.raises(AutojudgeError, match=r"line 5\), field 'questions': must be a list of questions, got str"):
        load_suite(path)
    path.write_text("prompts:\n  - id: a\n    text: a dog\n    category: animals\n"
                    "    questions: []\n")
    with pytest.raises(AutojudgeError, match="has no questions"):
        load_suite(path)


def test_question_text_is_bounded_like_the_prompt_text(tmp_path: Path) -> None:
    path = suite_file(tmp_path, "      - {id: dog, question: 'Is there a " + "big " * 30 + "dog?'}\n")
    with pytest.raises(AutojudgeError, match="question 1 .id 'dog'. is 1.. characters, over "
                                             "the limit of 100"):
        load_suite(path, max_prompt_chars=100)
    assert load_suite(path).prompts[0].questions[0].id == "dog"


def test_parse_questions_numbers_the_bad_question() -> None:
    with pytest.raises(QuestionFormatError) as caught:
        parse_questions([{"id": "a", "question": "A?"}, "Is it red?"])
    assert caught.value.number == 2 and "question 2 must be a mapping" in str(caught.value)


def test_a_prompt_with_no_source_of_questions_needs_an_llm() -> None:
    with pytest.raises(AutojudgeError, match="no question LLM is configured"):
        questions_for(Prompt("p", "a cat"))


# ---------------------------------------------------------------- LLM questions

KEY_ENV = "AUTOJUDGE_TEST_QUESTION_KEY"
SECRET = "sk-test-QSECRET42"
GOOD_ANSWER = {"questions": [
    {"id": "1", "question": "Is there a cat?", "parents": [], "skill": "entity"},
    {"id": "2", "question": "Is the cat black?", "parents": ["1"], "skill": "attribute"},
    {"id": "3", "question": "Is the cat on a sofa?", "parents": ["1"], "skill": "relation"}]}


class QuestionServer:
    """An OpenAI-compatible chat endpoint on 127.0.0.1 whose request `model` picks the
    answer: dsg (JSON), fenced (JSON in prose and fences), garbage, cyclic (JSON whose
    parents loop), always-500, unauthorized. Every request is recorded."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                server.requests.append({"model": body["model"], "messages": body["messages"],
                                        "auth": self.headers.get("authorization")})
                status, payload = server.answer(body["model"])
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def answer(self, model: str) -> tuple[int, dict[str, Any]]:
        if model == "always-500":
            return 500, {"error": {"message": "internal error", "code": 500}}
        if model == "unauthorized":
            return 401, {"error": {"message": "bad key", "code": 401}}
        text = {"dsg": json.dumps(GOOD_ANSWER),
                "fenced": f"Here you go:\n```json\n{json.dumps(GOOD_ANSWER)}\n```\nDone.",
                "garbage": "I like turtles",
                "cyclic": json.dumps({"questions": [
                    {"id": "1", "question": "A?", "parents": ["2"]},
                    {"id": "2", "question": "B?", "parents": ["1"]}]})}[model]
        return 200, {"id": "x", "object": "chat.completion", "created": 0, "model": model,
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": text}}]}


@pytest.fixture(scope="module")
def server():
    srv = QuestionServer()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)


def generator(server: QuestionServer, store: Store | None = None, **overrides: Any
              ) -> LLMQuestionGenerator:
    config = QuestionLLMConfig(**{"base_url": server.base_url, "model": "dsg",
                                  "api_key_env": KEY_ENV, "backoff_s": 0.0, "max_retries": 1,
                                  "timeout_s": 5.0, **overrides})
    gen = LLMQuestionGenerator(config, store, who="judge 'dsg'")
    gen.check()
    return gen


def test_llm_questions_are_asked_once_then_read_from_the_store(server, tmp_path: Path) -> None:
    server.requests.clear()
    text = "a black cat on a sofa"
    with Store(tmp_path / "store") as store:
        first = generator(server, store).questions(text)
    assert as_tuples(first) == [("1", "Is there a cat?", (), "entity"),
                                ("2", "Is the cat black?", ("1",), "attribute"),
                                ("3", "Is the cat on a sofa?", ("1",), "relation")]
    assert len(server.requests) == 1
    sent = server.requests[0]
    assert sent["auth"] == f"Bearer {SECRET}" and text in sent["messages"][-1]["content"]
    # a second run (a new generator on the same store) asks nothing
    with Store(tmp_path / "store") as store:
        again = generator(server, store)
        assert again.questions(text) == first
        assert questions_for(Prompt("p", text), again).questions == first
        assert again.stats == {"requests": 0, "cached": 2}
    assert len(server.requests) == 1
    # another model is another key: it is asked
    with Store(tmp_path / "store") as store:
        assert generator(server, store, model="fenced").questions(text) == first
    assert len(server.requests) == 2
    assert question_cache_key(text, "dsg") != question_cache_key(text, "fenced")
    assert generator(server).fingerprint() != generator(server, model="fenced").fingerprint()


@pytest.mark.parametrize("model, kind, retryable", [
    ("garbage", "unparseable", True), ("cyclic", "unparseable", True),
    ("always-500", "http_500", True)])
def test_unusable_llm_answers_are_retried_then_typed_failures(server, tmp_path: Path, model,
                                                              kind, retryable) -> None:
    server.requests.clear()
    with Store(tmp_path / "store") as store:
        gen = generator(server, store, model=model)
        with pytest.raises(QuestionGenerationError) as caught:
            gen.questions("a cat")
        assert store.get_questions(question_cache_key("a cat", model)) is None  # not cached
    assert len(server.requests) == 2  # the first attempt and max_retries=1
    failure = caught.value.failure
    assert failure.kind == kind and failure.retryable is retryable
    assert "judge 'dsg'" in failure.message and SECRET not in failure.message


def test_a_rejected_key_and_a_missing_key_are_one_line_errors(server, monkeypatch) -> None:
    with pytest.raises(AutojudgeError, match="rejected the API key") as caught:
        generator(server, model="unauthorized").questions("a cat")
    assert SECRET not in str(caught.value)
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(AutojudgeError, match=f"environment variable {KEY_ENV} is not set"):
        generator(server)


def test_llm_answer_format_is_the_suite_format_in_json() -> None:
    assert parse_llm_questions(json.dumps(GOOD_ANSWER["questions"]))[2].parents == ("1",)
    with pytest.raises(QuestionFormatError, match="no JSON"):
        parse_llm_questions("Is there a cat? Yes.")
    with pytest.raises(QuestionFormatError, match='no "questions" list'):
        parse_llm_questions('{"items": []}')
    with pytest.raises(QuestionFormatError, match="unknown parent"):
        parse_llm_questions('{"questions": [{"id": 1, "question": "A?", "parents": [7]}]}')
