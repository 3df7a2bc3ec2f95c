"""Contract + specifics of the VLM pairwise preference judge, against a scripted
OpenAI-compatible server that the tests start on 127.0.0.1 (tests/vlm_server.py)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from judge_contract import PairwiseJudgeContract
from PIL import Image
from vlm_server import ScriptedVLM

from autojudge.errors import AutojudgeError
from autojudge.judges.swap_debias import combine, summarize_verdicts
from autojudge.judges.vlm_preference import VLMPreferenceJudge, load_templates, parse_answer
from autojudge.stages.runner import JudgeRunner, RunnerSettings
from autojudge.store.index import Store
from autojudge.types import Failure, JudgeItem, PairItem, Prompt, Verdict

SECRET = "sk-test-SECRET123"
KEY_ENV = "AUTOJUDGE_TEST_VLM_KEY"
P = Prompt(id="p", text="a bright grey square")
TEXT = Prompt(id="t", text='a sign that reads "OPEN"', expected_text="OPEN")


@pytest.fixture(scope="module")
def server():
    with ScriptedVLM() as srv:
        yield srv


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)


def gray(value: int, size: int = 24, prompt: Prompt = P) -> JudgeItem:
    im = Image.new("RGB", (size, size), (value, value, value))
    return JudgeItem(prompt, im, hashlib.sha256(im.tobytes()).hexdigest())


def make(server, **overrides) -> VLMPreferenceJudge:
    params = {"base_url": server.base_url, "model": "prefer-brighter", "api_key_env": KEY_ENV,
              "backoff_s": 0.0, "max_retries": 2, "timeout_s": 5.0, **overrides}
    return VLMPreferenceJudge("vlm", VLMPreferenceJudge.Config(**params))


def swapped(judge: VLMPreferenceJudge, tmp_path: Path):
    """The judge as a run drives it: through the runner, both orders (swap-debiased)."""
    runner = JudgeRunner("vlm", judge, Store(tmp_path / "store"),
                         RunnerSettings(swap=True, orient=False))
    return lambda pairs: [tv.verdict for tv in runner.verdicts(pairs)]


class TestVLMContract(PairwiseJudgeContract):
    plugin_cls = VLMPreferenceJudge
    plugin_name = "vlm"
    import_module = "autojudge.judges.vlm_preference"
    forbidden_imports = PairwiseJudgeContract.forbidden_imports + ("openai", "httpx")
    fingerprint_changes = [{"criterion": "visual_quality"}, {"model": "other-model"},
                           {"temperature": 0.7}, {"image_max_side": 256},
                           {"base_url": "http://127.0.0.1:1/v1"}]
    fingerprint_invariant = [{"concurrency": 1}, {"batch_size": 1}, {"max_retries": 0},
                             {"timeout_s": 1.0}, {"api_key_env": "SOME_OTHER_VAR"},
                             {"price_input_per_mtok": 9.0}]

    @pytest.fixture
    def plugin_params(self, server):
        return {"base_url": server.base_url, "model": "prefer-brighter", "api_key_env": KEY_ENV,
                "backoff_s": 0.0}

    def sample_pairs(self):
        return [PairItem(P, gray(200), gray(60)), PairItem(P, gray(20), gray(90)),
                PairItem(P, gray(128), gray(128, size=30))]

    def test_templates_are_data_and_change_the_fingerprint(self, make_plugin, tmp_path):
        import yaml

        data = load_templates()
        assert set(data["criteria"]) >= {"overall", "prompt_alignment", "visual_quality",
                                         "text_rendering"}
        data["criteria"]["overall"]["rubric"] += " Prefer brighter images."
        edited = tmp_path / "t.yaml"
        edited.write_text(yaml.safe_dump(data))
        assert make_plugin(templates=str(edited)).fingerprint() != make_plugin().fingerprint()


def test_both_orders_are_requested_and_agreement_wins(server, tmp_path):
    judge = make(server)
    start = len(server.requests)
    verdict = swapped(judge, tmp_path)([PairItem(P, gray(210), gray(40))])[0]
    seen = server.requests[start:]
    assert sorted(tuple(round(b) for b in r["brightness"]) for r in seen) == [(40, 210), (210, 40)]
    assert all(r["auth"] == f"Bearer {SECRET}" and r["path"] == "/v1/chat/completions"
               for r in seen)
    assert "a bright grey square" in seen[0]["text"] and "overall quality" in seen[0]["text"]
    assert verdict.winner == "model_a" and verdict.raw["consistent"] is True
    assert set(verdict.raw["orders"]) == {"ab", "ba"}
    for order in verdict.raw["orders"].values():  # raw answer + rationale of both orders
        assert "brighter" in order["rationale"] and json.loads(order["answer"])["winner"]


def test_position_biased_answers_become_ties_and_are_counted(server, tmp_path):
    judge = make(server, model="always-first")
    verdicts = swapped(judge, tmp_path)([PairItem(P, gray(200), gray(60)),
                                         PairItem(P, gray(10), gray(90))])
    for v in verdicts:
        assert v.winner == "tie" and v.failure is None
        assert v.raw["consistent"] is False and v.raw["bias"] == "first"
        assert "inconsistent" in v.rationale
    stats = summarize_verdicts(verdicts)
    assert stats["position_bias_rate"] == 1.0 and stats["bias_slots"] == {"first": 2}
    good = swapped(make(server), tmp_path / "2")([PairItem(P, gray(200), gray(60))])
    assert summarize_verdicts(verdicts + good)["position_bias_rate"] == pytest.approx(2 / 3,
                                                                                      abs=1e-3)


@pytest.mark.parametrize("model,kind,retryable", [
    ("garbage", "unparseable", False), ("refuse", "refusal", False),
    ("always-500", "http_500", True)])
def test_bad_answers_and_server_errors_are_failures_after_bounded_retries(server, model, kind,
                                                                          retryable):
    judge = make(server, model=model, max_retries=2)
    start = len(server.requests)
    verdict = judge.compare([PairItem(P, gray(200), gray(60))])[0]
    assert verdict.winner is None and verdict.failure.kind == kind
    assert verdict.failure.retryable is retryable
    assert "\n" not in verdict.failure.message and "after 3 attempts" in verdict.failure.message
    assert len(server.requests) - start == 3  # one order, 1 try + 2 retries
    assert judge.stats["retries"] == 2 and judge.stats["failures"] == {kind: 1}


def test_429_is_retried_then_succeeds(server, tmp_path):
    judge = make(server, model="flaky-429")
    verdict = swapped(judge, tmp_path)([PairItem(P, gray(33), gray(99))])[0]
    assert verdict.winner == "model_b" and verdict.failure is None
    for order in verdict.raw["orders"].values():
        assert order["attempts"] == 2 and order["errors"] == ["http_429"]


def test_timeouts_are_retryable_failures(server):
    judge = make(server, model="slow", timeout_s=0.3, max_retries=0)
    verdict = judge.compare([PairItem(P, gray(200), gray(60))])[0]
    assert verdict.failure.kind == "timeout" and verdict.failure.retryable


def test_answers_in_markdown_fences_parse(server):
    verdict = make(server, model="markdown").compare([PairItem(P, gray(20), gray(200))])[0]
    assert verdict.winner == "model_b"


def test_cost_from_reported_tokens_and_prices(server, tmp_path):
    judge = make(server, price_input_per_mtok=2.0, price_output_per_mtok=10.0)
    runner = JudgeRunner("vlm", judge, Store(tmp_path), RunnerSettings(orient=False))
    verdict = runner.verdicts([PairItem(P, gray(200), gray(60))])[0].verdict
    per_call = (1000 * 2.0 + 50 * 10.0) / 1e6
    # both orders are asked: the runner sums their costs and meters what was spent
    assert verdict.raw["cost_usd"] == pytest.approx(2 * per_call)
    assert judge.stats["cost_usd"] == pytest.approx(2 * per_call)
    assert runner.spent_usd == pytest.approx(2 * per_call)
    runner.verdicts([PairItem(P, gray(200), gray(60))])  # from the cache: costs nothing
    assert runner.spent_usd == pytest.approx(2 * per_call)
    listed = make(server, model="gpt-4o-mini")  # priced by judges/vlm_prices.yaml
    v = swapped(listed, tmp_path / "2")([PairItem(P, gray(200), gray(60))])[0]
    assert v.raw["cost_usd"] == pytest.approx(2 * (1000 * 0.15 + 50 * 0.60) / 1e6)
    unpriced = make(server, model="local-model").compare([PairItem(P, gray(200), gray(60))])[0]
    assert "cost_usd" not in unpriced.raw


def test_rejected_key_is_one_line_without_the_key(server):
    with pytest.raises(AutojudgeError) as info:
        make(server, model="unauthorized").compare([PairItem(P, gray(200), gray(60))])
    assert SECRET not in str(info.value) and "\n" not in str(info.value)
    assert KEY_ENV in str(info.value)


def test_check_needs_the_key_variable(server, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(AutojudgeError, match=f"export {KEY_ENV}="):
        make(server).check()
    make(server, api_key_env="").check()  # local servers need no key


def test_unknown_criterion_and_backend_are_one_line(server):
    with pytest.raises(AutojudgeError, match="unknown criterion 'beauty'"):
        make(server, criterion="beauty").check()
    with pytest.raises(AutojudgeError, match="backend 'llamacpp'"):
        make(server, backend="llamacpp")


def test_text_rendering_applies_only_to_prompts_with_text(server):
    judge = make(server, criterion="text_rendering")
    assert judge.applies(TEXT) and not judge.applies(P)
    assert make(server).applies(P)


def test_the_plugin_alone_asks_one_order_per_pair(server):
    judge = make(server)
    start = len(server.requests)
    assert judge.compare([PairItem(P, gray(200), gray(60))])[0].winner == "model_a"
    assert len(server.requests) - start == 1


@pytest.mark.parametrize("text,expected", [
    ('{"rationale": "x", "winner": "A"}', "A"), ('{"winner": "b"}', "B"),
    ('{"winner": "Image B", "reason": "sharper"}', "B"), ('{"choice": "tie"}', "tie"),
    ("Winner: A", "A"), ("The better image is B.", None), ("B", "B"), ("", None),
    ("```json\n{\"winner\": \"A\"}\n```", "A"), ('{"winner": "C"}', None),
])
def test_parse_answer(text, expected):
    assert parse_answer(text)[0] == expected


def test_combine_rules():
    a, b, tie = Verdict("model_a"), Verdict("model_b"), Verdict("tie")
    assert combine(a, b).winner == "model_a" and combine(a, b).raw["consistent"] is True
    assert combine(b, a).winner == "model_b"
    assert combine(b, b).winner == "tie" and combine(b, b).raw["bias"] == "second"
    assert combine(tie, tie).winner == "tie" and combine(tie, tie).raw["consistent"] is True
    partial = combine(a, tie)
    assert partial.winner == "tie" and partial.raw["bias"] == "partial"
    failed = combine(a, Verdict(None, failure=Failure("http_429", "x", True)))
    assert failed.winner is None and failed.failure.retryable
    assert failed.failure.message.startswith("b-first order")


@pytest.mark.slow
def test_full_run_never_writes_the_key(server, compose, tmp_path, monkeypatch):
    """pipeline.run with judge=[vlm] + W&B offline: the key is used, and written nowhere."""
    from autojudge.experiment import pipeline

    monkeypatch.setenv("WANDB_MODE", "offline")
    store_root, run_dir = tmp_path / "store", tmp_path / "run"
    cfg = compose(["model=[typeset,blank]", "judge=[vlm]", "logger=wandb", "suite.limit=3",
                   f"store.root={store_root}", "progress=false", "ratings.bootstrap_rounds=20",
                   f"judge.vlm.base_url={server.base_url}", "judge.vlm.model=prefer-brighter",
                   f"judge.vlm.api_key_env={KEY_ENV}", "judge.vlm.backoff_s=0"])
    start = len(server.requests)
    document = pipeline.run(cfg, run_dir)
    assert any(r["auth"] == f"Bearer {SECRET}" for r in server.requests[start:])
    assert len(server.requests) - start == 2 * 3  # 3 prompts x 1 pair x both orders
    stats = document["run"]["judge_stats"]["vlm"]
    assert stats["pairs"] == 3 and stats["position_bias_rate"] == 0.0
    assert (run_dir / "wandb").is_dir()
    leaked = [str(p) for root in (run_dir, store_root) for p in Path(root).rglob("*")
              if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaked == []
    battles = [json.loads(line) for line in (run_dir / "battles.jsonl").read_text().splitlines()]
    assert len(battles) == 3 and all(b["judge"] == "vlm" for b in battles)
    # a rerun judges nothing new and still reports the position-bias rate from the store
    again = pipeline.run(cfg, tmp_path / "run2")
    assert len(server.requests) - start == 6
    assert again["run"]["judge_stats"]["vlm"]["pairs"] == 3
