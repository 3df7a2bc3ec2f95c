"""Question-based alignment (`dsg`): questions from the suite, GenEval metadata or an LLM,
each answered by a VQA model over a local OpenAI-compatible server with logprobs, scored
as DSG's gated fraction of yes; per-skill boards on GenEval prompts."""
from __future__ import annotations

import hashlib
import json
import math

import pytest
from helpers import REPO, assert_one_line_error, needs_shared_data, run_cli
from judge_contract import PointwiseJudgeContract
from PIL import Image
from vlm_server import ScriptedVLM, _brightness

from autojudge.judges.dsg import GENEVAL_NOTE, DSGJudge
from autojudge.store.index import Store
from autojudge.types import JudgeItem, Prompt, Question

KEY_ENV = "AUTOJUDGE_TEST_DSG_KEY"
QUESTIONS = (Question("1", "Is there a sign?", (), "object"),
             Question("2", "Is the sign red?", ("1",), "color"),
             Question("3", "Are there exactly 2 lamps?", (), "count"))
P = Prompt(id="sign", text="a red sign and two lamps", questions=QUESTIONS)
LLM_ANSWER = {"questions": [
    {"id": "1", "question": "Is there a sign?", "parents": [], "skill": "object"},
    {"id": "2", "question": "Does the sign say hello?", "parents": ["1"], "skill": "text"}]}
SKILLS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")


class DSGServer(ScriptedVLM):
    """With an image: a VQA answer whose yes-probability follows the image's brightness
    and the question's kind (first-token top_logprobs, recorded); without one: the
    question LLM's JSON answer."""

    def handle(self, handler, body):
        content = body["messages"][-1]["content"]
        parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
        urls = [c["image_url"]["url"] for c in parts if c.get("type") == "image_url"]
        text = " ".join(c["text"] for c in parts if c.get("type") == "text")
        record = {"vqa": bool(urls), "text": text, "top": None}
        with self.lock:
            self.requests.append(record)
        if not urls:
            return self._answer(handler, body.get("model", ""), json.dumps(LLM_ANSWER))
        top = self.top(_brightness(urls[0]), text)
        record["top"] = top
        entries = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in top]
        self._send(handler, 200, {
            "id": "chatcmpl-dsg", "object": "chat.completion", "created": 0,
            "model": body.get("model", ""),
            "choices": [{"index": 0, "finish_reason": "length",
                         "message": {"role": "assistant", "content": top[0][0]},
                         "logprobs": {"content": [{**entries[0], "top_logprobs": entries}]}}],
            "usage": {"prompt_tokens": 500, "completion_tokens": 1, "total_tokens": 501}})

    @staticmethod
    def top(brightness: float, question: str) -> list[tuple[str, float]]:
        p = 0.85 if brightness > 128 else 0.2
        if "exactly" in question or "at least" in question:
            p = 0.3
        elif "red" in question or "say" in question:
            p = 0.7
        mass = {" Yes": 0.9 * p, "No": 0.9 * (1 - p), "The": 0.1}
        return [(t, math.log(m)) for t, m in sorted(mass.items(), key=lambda kv: -kv[1])]


@pytest.fixture(scope="module")
def server():
    with DSGServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-test-dsg")


def item(value: int, prompt: Prompt = P) -> JudgeItem:
    im = Image.new("RGB", (24, 24), (value, value, value))
    return JudgeItem(prompt, im, hashlib.sha256(im.tobytes()).hexdigest())


def make(server, **overrides) -> DSGJudge:
    params = {"base_url": server.base_url, "model": "vqa", "api_key_env": KEY_ENV,
              "backoff_s": 0.0, "max_retries": 1, "timeout_s": 5.0, **overrides}
    return DSGJudge("dsg", DSGJudge.Config(**params))


def yes_ratio(top: list[tuple[str, float]]) -> float:
    p_yes = sum(math.exp(lp) for t, lp in top if t.strip().lower() == "yes")
    p_no = sum(math.exp(lp) for t, lp in top if t.strip().lower() == "no")
    return p_yes / (p_yes + p_no)


class TestDSGContract(PointwiseJudgeContract):
    plugin_cls = DSGJudge
    plugin_name = "dsg"
    import_module = "autojudge.judges.dsg"
    fingerprint_changes = [{"model": "other-vqa"}, {"llm_base_url": "http://127.0.0.1:9/v1"}]
    fingerprint_invariant = [{"batch_size": 1}, {"concurrency": 1}, {"timeout_s": 9.0}]

    @pytest.fixture
    def plugin_params(self, server):
        return {"base_url": server.base_url, "model": "vqa", "api_key_env": KEY_ENV,
                "backoff_s": 0.0, "max_retries": 1, "timeout_s": 5.0}

    def sample_items(self):
        return [item(v) for v in (40, 90, 200, 250)]

    def other_prompts(self):
        return [Prompt(id="plain", text="no questions here")]


@pytest.mark.parametrize("value", [40, 220])
def test_score_is_the_gated_mean_of_the_returned_yes_ratios(server, value) -> None:
    judge = make(server)
    start = len(server.requests)
    (score,) = judge.score([item(value)])
    asked = [r for r in server.requests[start:] if r["vqa"]]
    by_text = {r["text"]: yes_ratio(r["top"]) for r in asked}
    p = {q.id: by_text[q.text] for q in QUESTIONS}
    gated_2 = p["2"] if p["1"] >= 0.5 else 0.0  # "is it red" needs "is there a sign"
    assert score.value == pytest.approx((p["1"] + gated_2 + p["3"]) / 3, abs=1e-9)
    rows = {row["id"]: row for row in score.raw["questions"]}
    assert rows["2"]["gated"] == (p["1"] < 0.5) and score.raw["source"] == "suite"
    assert {row["question"] for row in rows.values()} == {q.text for q in QUESTIONS}


def test_llm_questions_are_asked_once_and_kept_in_the_store(server, tmp_path) -> None:
    from autojudge.sdk import PluginCache

    plain = Prompt(id="hello", text="a sign that says hello")
    with Store(tmp_path / "store") as store:
        for round_ in range(2):
            judge = make(server, llm_base_url=server.base_url, llm_model="writer",
                         llm_api_key_env=KEY_ENV)
            judge.attach_cache(PluginCache(store))
            start = len(server.requests)
            (score,) = judge.score([item(220, plain)])
            llm_calls = [r for r in server.requests[start:] if not r["vqa"]]
            assert len(llm_calls) == (1 if round_ == 0 else 0)
            assert score.raw["source"] == "llm"
            assert [r["id"] for r in score.raw["questions"]] == ["1", "2"]


def test_a_prompt_without_questions_and_no_llm_does_not_apply(server) -> None:
    judge = make(server)
    assert not judge.applies(Prompt(id="x", text="a cat"))
    assert judge.applies(P)
    assert judge.applies(Prompt(id="g", text="a photo of a dog",
                                meta={"include": [{"class": "dog", "count": 1}]}))


def geneval_rows() -> list[dict]:
    """Two rows per GenEval skill, in GenEval's own format."""
    rows = []
    for k, animal in enumerate(("dog", "cat")):
        rows += [
            {"tag": "single_object", "include": [{"class": animal, "count": 1}],
             "prompt": f"a photo of a {animal}"},
            {"tag": "two_object", "include": [{"class": animal, "count": 1},
                                              {"class": "bench", "count": 1}],
             "prompt": f"a photo of a {animal} and a bench"},
            {"tag": "counting", "include": [{"class": animal, "count": 3 + k}],
             "exclude": [{"class": animal, "count": 4 + k}],
             "prompt": f"a photo of {3 + k} {animal}s"},
            {"tag": "colors", "include": [{"class": animal, "count": 1, "color": "red"}],
             "prompt": f"a photo of a red {animal}"},
            {"tag": "position", "include": [{"class": animal, "count": 1},
                                            {"class": "car", "count": 1,
                                             "position": ["left of", 0]}],
             "prompt": f"a photo of a car left of a {animal}"},
            {"tag": "color_attr", "include": [{"class": animal, "count": 1, "color": "blue"},
                                              {"class": "cup", "count": 1, "color": "red"}],
             "prompt": f"a photo of a blue {animal} and a red cup"}]
    return rows


def test_geneval_gives_per_skill_boards_and_a_second_run_asks_nothing(server, tmp_path):
    suite = tmp_path / "evaluation_metadata.jsonl"
    suite.write_text("".join(json.dumps(r) + "\n" for r in geneval_rows()))
    env = {KEY_ENV: "sk-test-dsg"}
    args = ["autojudge", "suite=geneval", f"suite.path={suite}", "judge=[dsg]",
            f"judge.dsg.base_url={server.base_url}", "judge.dsg.model=vqa",
            f"judge.dsg.api_key_env={KEY_ENV}", "model=[typeset,blank]",
            "report.per_tag_min_prompts=2", "ratings.bootstrap_rounds=20", "logger=none",
            "progress=false", f"store.root={tmp_path / 'store'}"]
    first = run_cli([*args, f"hydra.run.dir={tmp_path / 'run1'}"], cwd=REPO, env=env,
                    timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    document = json.loads((tmp_path / "run1" / "leaderboard.json").read_text())
    tags = {b["tag"] for b in document["boards"] if b["judge"] == "dsg"}
    assert set(SKILLS) <= tags  # one board per GenEval skill
    assert GENEVAL_NOTE in first.stdout + first.stderr
    scores = [json.loads(line) for line in
              (tmp_path / "run1" / "scores.jsonl").read_text().splitlines()]
    dsg = [s for s in scores if s["judge"] == "dsg"]
    assert len(dsg) == 2 * len(geneval_rows())  # every image, every question recorded
    assert all(s["raw"]["source"] == "geneval" and s["raw"]["questions"] for s in dsg)
    asked = len(server.requests)
    second = run_cli([*args, f"hydra.run.dir={tmp_path / 'run2'}"], cwd=REPO, env=env,
                     timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert len(server.requests) == asked  # no question, and no probe: it passed before


def test_a_suite_without_questions_is_refused_before_any_image(server, tmp_path) -> None:
    proc = run_cli(["autojudge", "judge=[dsg]", f"judge.dsg.base_url={server.base_url}",
                    "judge.dsg.model=vqa", f"judge.dsg.api_key_env={KEY_ENV}",
                    "model=[typeset,blank]", "logger=none", "progress=false",
                    f"store.root={tmp_path / 'store'}", f"hydra.run.dir={tmp_path / 'run'}"],
                   cwd=REPO, env={KEY_ENV: "sk-test-dsg"}, timeout=300)
    assert proc.returncode == 2
    assert_one_line_error(proc, "dsg")
    assert not (tmp_path / "store").exists() or not list((tmp_path / "store").rglob("*.png"))


@needs_shared_data("geneval_evaluation_metadata.jsonl")
def test_every_real_geneval_prompt_gets_questions(server) -> None:
    from helpers import SHARED_DATA

    from autojudge.suites.load import load_suite

    suite = load_suite(str(SHARED_DATA / "geneval_evaluation_metadata.jsonl"),
                       fmt="geneval")
    judge = make(server)
    assert len(suite.prompts) == 553 and all(judge.applies(p) for p in suite.prompts)
