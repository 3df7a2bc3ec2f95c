"""Contract + specifics of the VLM judge's `transformers` backend, against a tiny random
LLaVA written to a temporary folder (tests/tiny_vlm.py; no hub, no real weights)."""
from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from helpers import record_connections, run_cli
from judge_contract import PairwiseJudgeContract
from PIL import Image
from tiny_vlm import make_tiny_vlm

from autojudge.errors import AutojudgeError
from autojudge.judges.vlm_preference import VLMPreferenceJudge
from autojudge.stages.runner import JudgeRunner, RunnerSettings
from autojudge.store.index import Store
from autojudge.types import JudgeItem, PairItem, Prompt

P = Prompt(id="p", text="a bright grey square")


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory) -> Path:
    return make_tiny_vlm(tmp_path_factory.mktemp("vlm") / "tiny-llava")


def gray(value: int, size: int = 24) -> JudgeItem:
    im = Image.new("RGB", (size, size), (value, value, value))
    return JudgeItem(P, im, hashlib.sha256(im.tobytes()).hexdigest())


def noise(seed: int, size: int = 24) -> JudgeItem:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    im = Image.fromarray(pixels)
    return JudgeItem(P, im, hashlib.sha256(im.tobytes()).hexdigest())


# With make_tiny_vlm's defaults the first two pairs get the same winner in both orders
# (each answer by a margin of over 2 nats), the third a tie (both orders answer "B").
PAIRS = [PairItem(P, noise(3), gray(128)), PairItem(P, gray(255), noise(13)),
         PairItem(P, gray(200), gray(60))]


def make(folder: Path, **overrides) -> VLMPreferenceJudge:
    params = {"backend": "transformers", "model": str(folder), "api_key_env": "",
              "backoff_s": 0.0, **overrides}
    return VLMPreferenceJudge("vlm", VLMPreferenceJudge.Config(**params))


def both_orders(judge: VLMPreferenceJudge, pairs, tmp_path: Path):
    """Verdicts as a run gets them: through the runner, swap-debiased."""
    runner = JudgeRunner("vlm", judge, Store(tmp_path), RunnerSettings(orient=False))
    return [tv.verdict for tv in runner.verdicts(pairs)]


class TestLocalVLMContract(PairwiseJudgeContract):
    plugin_cls = VLMPreferenceJudge
    plugin_name = "vlm"
    import_module = "autojudge.judges.vlm_local"
    fingerprint_changes = [{"local_answer": "generate"}, {"dtype": "float16"},
                           {"model": "Qwen/Qwen2-VL-2B-Instruct"}, {"criterion": "visual_quality"},
                           {"image_max_side": 256}, {"max_tokens": 10}]
    fingerprint_invariant = [{"device": "cpu"}, {"device": "cuda"}, {"concurrency": 1},
                             {"batch_size": 1}, {"local_files_only": True},
                             {"api_key_env": "OPENAI_API_KEY"},
                             {"base_url": "http://127.0.0.1:1/v1"}, {"max_retries": 0}]

    @pytest.fixture
    def plugin_params(self, tiny_vlm):
        return {"backend": "transformers", "model": str(tiny_vlm), "api_key_env": "",
                "backoff_s": 0.0, "local_answer": "choice"}

    def sample_pairs(self):
        return list(PAIRS)


def test_raw_keeps_the_answer_and_the_three_logprobs(tiny_vlm, tmp_path):
    verdict = both_orders(make(tiny_vlm), PAIRS[:1], tmp_path)[0]
    assert verdict.failure is None and verdict.winner in ("model_a", "model_b")
    assert verdict.raw["consistent"] is True
    for order in verdict.raw["orders"].values():
        answer = json.loads(order["answer"])
        logprobs = {k: answer[f"logprob_{k}"] for k in ("A", "B", "tie")}
        assert all(v < 0 for v in logprobs.values())
        assert answer["winner"] == order["choice"] == max(logprobs, key=logprobs.get)
        assert "log-likelihood" in order["rationale"] and order["attempts"] == 1
        assert order["usage"]["prompt_tokens"] > 32  # text plus 2 x 16 image tokens
    json.dumps(dict(verdict.raw))


def test_unlisted_model_costs_nothing_unless_priced(tiny_vlm, tmp_path):
    free = both_orders(make(tiny_vlm), PAIRS[:1], tmp_path / "free")[0]
    assert "cost_usd" not in free.raw
    priced = both_orders(make(tiny_vlm, price_input_per_mtok=1.0), PAIRS[:1],
                         tmp_path / "priced")[0]
    tokens = sum(o["usage"]["prompt_tokens"] for o in priced.raw["orders"].values())
    assert priced.raw["cost_usd"] == pytest.approx(tokens / 1e6)


def test_generate_mode_gives_a_verdict_or_a_typed_failure(tiny_vlm):
    judge = make(tiny_vlm, local_answer="generate", max_tokens=6, max_retries=1)
    for verdict in judge.compare(PAIRS[:2]):
        assert (verdict.winner is None) == (verdict.failure is not None)
        if verdict.failure is not None:
            assert verdict.failure.kind in ("unparseable", "refusal")
            assert "\n" not in verdict.failure.message
        json.dumps(dict(verdict.raw))
    # 2 pairs, one order each; a greedy answer would repeat itself, so never re-asked
    assert judge.stats["requests"] == 2 and judge.stats["retries"] == 0


def test_sampling_is_seeded(tiny_vlm):
    def answers(seed):
        judge = make(tiny_vlm, local_answer="generate", temperature=1.0, seed=seed,
                     max_tokens=6, max_retries=0)
        return judge.compare(PAIRS[:1])[0].raw.get("answer")

    assert answers(1) == answers(1)


def test_missing_folder_fails_check_in_one_line(tmp_path):
    judge = make(tmp_path / "no-such-model")
    with pytest.raises(AutojudgeError) as info:
        judge.check()
    message = str(info.value)
    assert "\n" not in message and "does not exist" in message and "judge.vlm.model" in message
    (tmp_path / "empty").mkdir()
    with pytest.raises(AutojudgeError, match="has no config.json"):
        make(tmp_path / "empty").check()


def test_offline_hub_id_not_cached_fails_check_at_once(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    attempts = record_connections(monkeypatch)
    with pytest.raises(AutojudgeError) as info:
        make(Path("someorg/not-a-cached-vlm")).check()
    assert attempts == []  # answered from the cache alone: no hub lookup to retry
    message = str(info.value)
    assert "\n" not in message and "not in the Hugging Face cache" in message
    assert "judge.vlm.model=/path/to/the/folder" in message


def test_check_needs_no_api_key(tiny_vlm, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert make(tiny_vlm, api_key_env="OPENAI_API_KEY").check() is None


def test_unloadable_folder_is_one_line_error(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{}")
    judge = make(tmp_path / "bad")
    judge.check()  # the folder looks right; loading finds out
    with pytest.raises(AutojudgeError, match="judge 'vlm': could not load the VLM") as info:
        judge.compare(PAIRS[:1])
    assert "\n" not in str(info.value)


def test_a_model_error_on_one_input_is_a_typed_failure(tiny_vlm, monkeypatch):
    judge = make(tiny_vlm, max_retries=2)
    chat = judge.client

    def out_of_memory(inputs):
        raise RuntimeError("CUDA out of memory.\nTried to allocate 2 GiB")

    monkeypatch.setattr(chat, "_choose", out_of_memory)
    verdict = judge.compare(PAIRS[:1])[0]
    assert verdict.winner is None and verdict.failure.kind == "local_error"
    assert verdict.failure.retryable and "\n" not in verdict.failure.message
    assert "out of memory" in verdict.failure.message
    assert verdict.raw["attempts"] == 1  # not retried


def test_bad_settings_are_rejected(tiny_vlm):
    with pytest.raises(AutojudgeError, match="local_answer must be one of"):
        make(tiny_vlm, local_answer="vote")
    with pytest.raises(AutojudgeError, match="dtype must be one of"):
        make(tiny_vlm, dtype="float8")
    with pytest.raises(AutojudgeError, match="device="):
        make(tiny_vlm, device="tpu").check()
    with pytest.raises(AutojudgeError, match="backend 'llamacpp' is not available"):
        make(tiny_vlm, backend="llamacpp")


def test_fingerprint_follows_folder_content_not_device(tiny_vlm, tmp_path):
    copy = Path(shutil.copytree(tiny_vlm, tmp_path / "copy"))
    before = make(copy).fingerprint()
    assert make(copy, device="cpu").fingerprint() == before
    assert make(copy, device="cuda:1").fingerprint() == before
    params = before["params"]
    assert params["backend"] == "transformers" and "base_url" not in params
    assert params["model"]["path"] == str(copy.resolve())
    (copy / "generation_config.json").write_text("{}")
    assert make(copy).fingerprint() != before


@pytest.mark.slow
def test_cli_run_with_the_local_backend(tiny_vlm, tmp_path):
    store, run = tmp_path / "store", tmp_path / "run"
    proc = run_cli(["autojudge", "judge=[vlm]", "judge.vlm.backend=transformers",
                    f"judge.vlm.model={tiny_vlm}", "judge.vlm.api_key_env=''",
                    "model=[typeset,blank]", "suite.limit=3", "logger=none", "progress=false",
                    f"store.root={store}", f"hydra.run.dir={run}"],
                   env={"HF_HUB_OFFLINE": "1"}, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    battles = [json.loads(line) for line in (run / "battles.jsonl").read_text().splitlines()]
    assert len(battles) == 3 and all(b["judge"] == "vlm" for b in battles)
    with sqlite3.connect(store / "index.sqlite") as db:
        rows = db.execute("SELECT winner, raw FROM verdicts").fetchall()
    assert len(rows) == 3
    for winner, raw in rows:
        orders = json.loads(raw)["orders"]
        assert set(orders) == {"ab", "ba"}
        assert all("logprob_A" in json.loads(o["answer"]) for o in orders.values())
    doc = json.loads((run / "leaderboard.json").read_text())
    assert doc["run"]["judge_stats"]["vlm"]["pairs"] == 3
