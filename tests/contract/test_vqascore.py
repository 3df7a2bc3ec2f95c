"""Contract + specifics of the VQAScore judge: its `openai` backend against a scripted
OpenAI-compatible server on 127.0.0.1 that returns logprobs (driven through the real
`openai` client), its `transformers` backend on a tiny random LLaVA (tests/tiny_vlm.py)."""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
from helpers import assert_one_line_error, record_connections, rows_in, run_cli
from judge_contract import PointwiseJudgeContract
from PIL import Image
from vlm_server import ScriptedVLM, _brightness

from autojudge.errors import AutojudgeError
from autojudge.judges.vqascore import QUESTION, VQAScoreJudge
from autojudge.stages.runner import JudgeRunner, RunnerSettings
from autojudge.store.index import Store
from autojudge.types import JudgeItem, PairItem, Prompt

SECRET = "sk-test-VQASECRET42"
KEY_ENV = "AUTOJUDGE_TEST_VQA_KEY"
P = Prompt(id="p", text="a bright grey square")


class LogprobServer(ScriptedVLM):
    """`model` picks the behaviour: `logprobs` (first-token top_logprobs whose yes-mass
    grows with the image's brightness, plus distractors "The" and "Yes."), `no-logprobs`
    (a plain answer), `no-yes-no` (top tokens without yes or no), `unauthorized` (401),
    `always-500`.
    Every request's body and the top_logprobs returned are recorded."""

    def handle(self, handler, body):
        content = body["messages"][-1]["content"]
        urls = [c["image_url"]["url"] for c in content if c.get("type") == "image_url"]
        text = " ".join(c["text"] for c in content if c.get("type") == "text")
        model = body.get("model", "")
        record = {"model": model, "auth": handler.headers.get("authorization"), "text": text,
                  "body": {k: v for k, v in body.items() if k != "messages"}, "top": None,
                  "brightness": _brightness(urls[0])}
        with self.lock:
            self.requests.append(record)
        if model == "unauthorized":
            return self._error(handler, 401, "Incorrect API key provided: "
                               + str(handler.headers.get("authorization", "")).split()[-1])
        if model == "always-500":
            return self._error(handler, 500, "internal error")
        message = {"role": "assistant", "content": "Yes"}
        choice = {"index": 0, "finish_reason": "length", "message": message}
        if model != "no-logprobs":
            top = self.top(record["brightness"], model)[:int(body.get("top_logprobs") or 0)]
            record["top"] = top
            entries = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in top]
            choice["logprobs"] = {"content": [{**entries[0], "top_logprobs": entries}],
                                  "refusal": None}
        self._send(handler, 200, {
            "id": "chatcmpl-vqa", "object": "chat.completion", "created": 0, "model": model,
            "choices": [choice],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 1, "total_tokens": 1001}})

    @staticmethod
    def top(brightness: float, model: str) -> list[tuple[str, float]]:
        p = 1.0 / (1.0 + math.exp(-(brightness - 128.0) / 40.0))
        mass = {" Yes": 0.54 * p, "Yes": 0.225 * p, "YES": 0.135 * p,
                "No": 0.63 * (1 - p), " no": 0.27 * (1 - p), "The": 0.06, "Yes.": 0.04}
        if model == "no-yes-no":
            mass = {"The": 0.5, "It": 0.3, "Sure": 0.1}
        ranked = sorted(mass.items(), key=lambda kv: -kv[1])
        return [(t, math.log(m)) for t, m in ranked if m > 0]


@pytest.fixture(scope="module")
def server():
    with LogprobServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)


def gray(value: int, size: int = 24, prompt: Prompt = P) -> JudgeItem:
    im = Image.new("RGB", (size, size), (value, value, value))
    return JudgeItem(prompt, im, hashlib.sha256(im.tobytes()).hexdigest())


def make(server, **overrides) -> VQAScoreJudge:
    params = {"base_url": server.base_url, "model": "logprobs", "api_key_env": KEY_ENV,
              "backoff_s": 0.0, "max_retries": 1, "timeout_s": 5.0, **overrides}
    return VQAScoreJudge("vqascore", VQAScoreJudge.Config(**params))


def by_hand(top: list[tuple[str, float]]) -> float:
    """P(Yes) / (P(Yes) + P(No)) from the (token, logprob) list the server returned."""
    p_yes = sum(math.exp(lp) for t, lp in top if t.strip().lower() == "yes")
    p_no = sum(math.exp(lp) for t, lp in top if t.strip().lower() == "no")
    return p_yes / (p_yes + p_no)


class TestVQAScoreContract(PointwiseJudgeContract):
    plugin_cls = VQAScoreJudge
    plugin_name = "vqascore"
    import_module = "autojudge.judges.vqascore"
    forbidden_imports = PointwiseJudgeContract.forbidden_imports + ("openai", "httpx")
    fingerprint_changes = [{"model": "other-model"}, {"question": 'Is this "{prompt}"?'},
                           {"top_logprobs": 5}, {"image_max_side": 256},
                           {"image_format": "jpeg"}, {"base_url": "http://127.0.0.1:1/v1"},
                           {"backend": "transformers"}]
    fingerprint_invariant = [{"concurrency": 1}, {"batch_size": 1}, {"max_retries": 0},
                             {"timeout_s": 1.0}, {"backoff_s": 3.0},
                             {"api_key_env": "SOME_OTHER_VAR"}, {"price_input_per_mtok": 9.0},
                             {"device": "cpu"}, {"local_files_only": True}]

    @pytest.fixture
    def plugin_params(self, server):
        return {"base_url": server.base_url, "model": "logprobs", "api_key_env": KEY_ENV,
                "backoff_s": 0.0}

    def sample_items(self):
        return [gray(230), gray(40), gray(128), gray(180, size=30)]

    def other_prompts(self):
        return [Prompt(id="empty", text="   ")]


@pytest.mark.parametrize("k", [20, 3])
def test_score_is_the_yes_ratio_of_the_returned_logprobs(server, k):
    judge = make(server, top_logprobs=k)
    start = len(server.requests)
    scores = judge.score([gray(230), gray(40), gray(128)])
    seen = {round(r["brightness"]): r for r in server.requests[start:]}  # any order
    assert sorted(seen) == [40, 128, 230]
    for value, score in zip((230, 40, 128), scores):
        request = seen[value]
        body = request["body"]
        assert body["logprobs"] is True and body["top_logprobs"] == k
        assert body["max_tokens"] == 1 and request["auth"] == f"Bearer {SECRET}"
        assert request["text"] == QUESTION.format(prompt=P.text)
        assert len(request["top"]) == min(k, 7)
        assert abs(score.value - by_hand(request["top"])) <= 1e-9
    assert scores[0].value > scores[2].value > scores[1].value  # brighter = more "yes"
    if k == 3:  # the top 3 of the brightest image are all yes-variants: No counts 0
        assert scores[0].value == 1.0 and scores[0].raw["p_no"] == 0.0


def test_each_image_gets_its_own_answer(server):
    judge = make(server, concurrency=1)
    for value in (250, 10):
        start = len(server.requests)
        score = judge.score([gray(value)])[0]
        top = server.requests[start]["top"]
        assert abs(score.value - by_hand(top)) <= 1e-9
        assert score.raw["token"] == top[0][0] and score.failure is None
        assert "Yes." in [t for t, _ in top]  # a distractor that must not count
    assert 0.0 < score.value < 0.5


def test_endpoint_without_logprobs_is_refused_at_check_in_one_line(server):
    judge = make(server, model="no-logprobs")
    start = len(server.requests)
    with pytest.raises(AutojudgeError) as info:
        judge.check()
    message = str(info.value)
    assert "\n" not in message and "without logprobs" in message and SECRET not in message
    assert len(server.requests) - start == 1  # one probe, not retried
    # scoring anyway gives a typed failure, never a 0
    score = judge.score([gray(200)])[0]
    assert score.value is None and score.failure.kind == "no_logprobs"
    assert not score.failure.retryable


def test_check_passes_once_and_probes_once(server):
    judge = make(server)
    start = len(server.requests)
    judge.check()
    judge.check()
    assert len(server.requests) - start == 1


def test_a_warm_run_does_not_probe_an_endpoint_that_passed_before(server, tmp_path):
    """The probe's pass is kept in the store (by endpoint and model): the next run's
    check() sends nothing; another model is probed."""
    from autojudge.stages.runner import JudgeRunner
    from autojudge.store.index import Store

    with Store(tmp_path / "store") as store:
        start = len(server.requests)
        JudgeRunner("vqascore", make(server), store).check()
        assert len(server.requests) - start == 1
        JudgeRunner("vqascore", make(server), store).check()  # a second run, same store
        assert len(server.requests) - start == 1
        with pytest.raises(AutojudgeError, match="without logprobs"):
            JudgeRunner("vqascore", make(server, model="no-logprobs"), store).check()
        assert len(server.requests) - start == 2


def test_no_yes_or_no_among_the_top_tokens_is_a_failure(server):
    score = make(server, model="no-yes-no").score([gray(200)])[0]
    assert score.value is None and score.failure.kind == "no_yes_no"
    assert "'The'" in score.failure.message and "\n" not in score.failure.message


def test_cost_is_metered_per_call(server, tmp_path):
    judge = make(server, price_input_per_mtok=2.0, price_output_per_mtok=10.0)
    runner = JudgeRunner("vqascore", judge, Store(tmp_path), RunnerSettings(orient=False))
    pairs = [PairItem(P, gray(200), gray(60)), PairItem(P, gray(90), gray(60))]
    runner.verdicts(pairs)
    per_call = (1000 * 2.0 + 1 * 10.0) / 1e6
    assert runner.spent_usd == pytest.approx(3 * per_call)  # three distinct images
    assert judge.backend.stats["cost_usd"] == pytest.approx(3 * per_call)
    assert judge.backend.stats["prompt_tokens"] == 3000
    again = JudgeRunner("vqascore", make(server, price_input_per_mtok=2.0,
                                         price_output_per_mtok=10.0),
                        Store(tmp_path), RunnerSettings(orient=False))
    again.verdicts(pairs)  # from the cache: costs nothing
    assert again.spent_usd is None and again.counts.computed == 0
    listed = make(server, model="gpt-4o-mini")  # priced by judges/vlm_prices.yaml
    assert listed.score([gray(1)])[0].raw["cost_usd"] == pytest.approx(
        (1000 * 0.15 + 1 * 0.60) / 1e6)
    unpriced = make(server).score([gray(200)])[0]
    assert "cost_usd" not in unpriced.raw and unpriced.raw["usage"]["prompt_tokens"] == 1000


def test_server_errors_are_retryable_failures_after_bounded_retries(server):
    judge = make(server, model="always-500", max_retries=2)
    start = len(server.requests)
    score = judge.score([gray(200)])[0]
    assert score.value is None and score.failure.kind == "http_500"
    assert score.failure.retryable and "after 3 attempts" in score.failure.message
    assert len(server.requests) - start == 3
    assert judge.run_stats()["retries"] == 2 and judge.run_stats()["failures"] == {"http_500": 1}


def test_rejected_key_is_one_line_without_the_key(server):
    with pytest.raises(AutojudgeError) as info:
        make(server, model="unauthorized").score([gray(200)])
    assert SECRET not in str(info.value) and "\n" not in str(info.value)
    assert KEY_ENV in str(info.value)


def test_check_needs_the_key_variable(server, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(AutojudgeError, match=f"export {KEY_ENV}="):
        make(server).check()
    make(server, api_key_env="").check()  # local servers need no key


@pytest.mark.parametrize("overrides,needle", [
    ({"top_logprobs": 0}, "top_logprobs must be in 1..20"),
    ({"top_logprobs": 21}, "top_logprobs must be in 1..20"),
    ({"question": "Is this a {thing}?"}, "not a template"),
    ({"question": "Is this nice?"}, "must contain {prompt}"),
    ({"backend": "llamacpp"}, "backend 'llamacpp' is not available"),
    ({"concurrency": 0}, "concurrency must be >= 1"),
])
def test_bad_settings_are_one_line(server, overrides, needle):
    with pytest.raises(AutojudgeError, match=needle.replace("{", r"\{").replace(".", r"\.")):
        make(server, **overrides)


@pytest.mark.slow
def test_cli_run_against_an_endpoint_without_logprobs_stops_before_any_image(server, tmp_path):
    store, run = tmp_path / "store", tmp_path / "run"
    start = len(server.requests)
    proc = run_cli(["autojudge", "model=[typeset,blank]", "judge=[vqascore]",
                    f"judge.vqascore.base_url={server.base_url}",
                    "judge.vqascore.model=no-logprobs", "judge.vqascore.api_key_env=''",
                    "suite.limit=2", "logger=none", "progress=false", f"store.root={store}",
                    f"hydra.run.dir={run}"], env={"HF_HUB_OFFLINE": "1"}, timeout=240)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert_one_line_error(proc, "judge 'vqascore'", "without logprobs")
    assert len(server.requests) - start == 1  # the probe, and nothing else
    assert rows_in(store, "generations") == 0
    images = [p for p in Path(tmp_path).rglob("*") if p.suffix in (".png", ".jpg", ".webp")]
    assert images == []


# -- the transformers backend, on a tiny random LLaVA ------------------------------------

YES_TOKENS = ("Yes", "ĠYes", "yes", "Ġyes", "YES", "ĠYES")
NO_TOKENS = ("No", "ĠNo", "no", "Ġno", "NO", "ĠNO")


@pytest.fixture(scope="module")
def yes_no_vlm(tmp_path_factory) -> Path:
    """make_tiny_vlm with a tokenizer that also learned the question and yes / no."""
    import tiny_vlm

    corpus = tiny_vlm._corpus
    extra = [QUESTION.format(prompt=P.text), "Yes", "No", " Yes", " No", "yes no YES"] * 40
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tiny_vlm, "_corpus", lambda: corpus() + extra)
        return tiny_vlm.make_tiny_vlm(tmp_path_factory.mktemp("vqa") / "tiny-llava-yes-no")


def noise(seed: int, size: int = 24) -> JudgeItem:
    import numpy as np

    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    im = Image.fromarray(pixels)
    return JudgeItem(P, im, hashlib.sha256(im.tobytes()).hexdigest())


def local(folder: Path, **overrides) -> VQAScoreJudge:
    params = {"backend": "transformers", "model": str(folder), "api_key_env": "", **overrides}
    return VQAScoreJudge("vqascore", VQAScoreJudge.Config(**params))


class TestVQAScoreLocalContract(PointwiseJudgeContract):
    plugin_cls = VQAScoreJudge
    plugin_name = "vqascore"
    import_module = "autojudge.judges.vqa_backend"
    fingerprint_changes = [{"dtype": "float16"}, {"model": "Qwen/Qwen2-VL-2B-Instruct"},
                           {"question": 'Is this "{prompt}"?'}, {"image_max_side": 256}]
    fingerprint_invariant = [{"device": "cpu"}, {"device": "cuda"}, {"batch_size": 1},
                             {"local_files_only": True}, {"api_key_env": "OPENAI_API_KEY"},
                             {"base_url": "http://127.0.0.1:1/v1"}]

    @pytest.fixture
    def plugin_params(self, yes_no_vlm):
        return {"backend": "transformers", "model": str(yes_no_vlm), "api_key_env": ""}

    def sample_items(self):
        return [noise(3), gray(255), gray(60), noise(13)]


def test_local_score_is_the_softmax_ratio_of_the_next_token_logits(yes_no_vlm):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    judge = local(yes_no_vlm)
    judge.check()
    items = [noise(3), gray(200)]
    scores = judge.score(items)
    processor = AutoProcessor.from_pretrained(yes_no_vlm)
    model = AutoModelForImageTextToText.from_pretrained(yes_no_vlm).eval()
    vocab = processor.tokenizer.get_vocab()
    yes = [vocab[t] for t in YES_TOKENS if t in vocab]
    no = [vocab[t] for t in NO_TOKENS if t in vocab]
    assert len(yes) >= 2 and len(no) >= 2  # several variants, all summed
    for item, score in zip(items, scores):
        conversation = [{"role": "user", "content": [
            {"type": "image", "image": item.image},
            {"type": "text", "text": QUESTION.format(prompt=P.text)}]}]
        inputs = processor.apply_chat_template(conversation, add_generation_prompt=True,
                                               tokenize=True, return_dict=True,
                                               return_tensors="pt")
        with torch.no_grad():
            logits = model(**inputs).logits[0, -1]
        probs = torch.softmax(logits.double(), dim=-1)  # over the full vocabulary
        p_yes, p_no = float(probs[yes].sum()), float(probs[no].sum())
        assert 0.0 < score.value < 1.0 and score.failure is None
        assert score.value == pytest.approx(p_yes / (p_yes + p_no), rel=1e-6, abs=1e-9)
        assert score.raw["p_yes"] == pytest.approx(p_yes, rel=1e-5)
        assert score.raw["p_no"] == pytest.approx(p_no, rel=1e-5)
    assert scores[0].value != scores[1].value  # the answer depends on the image


def test_tokenizer_without_yes_no_tokens_is_refused_at_check(tmp_path_factory):
    from tiny_vlm import make_tiny_vlm

    plain = make_tiny_vlm(tmp_path_factory.mktemp("vqa-plain") / "tiny-llava")
    with pytest.raises(AutojudgeError) as info:
        local(plain).check()
    assert "\n" not in str(info.value) and "no one-token 'yes'" in str(info.value)


def test_missing_weights_fail_check_in_one_line(tmp_path, monkeypatch):
    with pytest.raises(AutojudgeError) as info:
        local(tmp_path / "no-such-model").check()
    message = str(info.value)
    assert "\n" not in message and "does not exist" in message
    assert "judge.vqascore.model" in message
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    attempts = record_connections(monkeypatch)
    with pytest.raises(AutojudgeError, match="not in the Hugging Face cache") as info:
        local(Path("someorg/not-a-cached-vlm")).check()
    assert attempts == [] and "\n" not in str(info.value)
