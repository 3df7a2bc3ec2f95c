"""How the VLM judge uses an endpoint, as a run drives it (JudgeRunner, swap on), against
the fixed-service-time server benchmarks/bench_vlm.py measures with
(autojudge.testing.fake_openai): `concurrency` requests really are in flight at once,
each image is encoded once however many requests show it, and a 429's Retry-After is
waited out before the request is asked again, with no decision lost."""
from __future__ import annotations

import hashlib
from itertools import combinations

import pytest
from PIL import Image

from autojudge.judges.vlm_preference import VLMPreferenceJudge
from autojudge.stages.runner import JudgeRunner, RunnerSettings
from autojudge.store.index import Store
from autojudge.testing.fake_openai import FakeOpenAI
from autojudge.types import JudgeItem, PairItem, Prompt


def pairs_of(models: int, prompts: int = 1) -> list[PairItem]:
    """Every pair of `models` images per prompt (each image in models - 1 pairs)."""
    out = []
    for p in range(prompts):
        prompt = Prompt(id=f"p{p}", text=f"object {p}")
        items = []
        for m in range(models):
            im = Image.new("RGB", (24, 24), (10 * m + p, 40, 90))
            items.append(JudgeItem(prompt, im, hashlib.sha256(im.tobytes()).hexdigest()))
        out += [PairItem(prompt, items[a], items[b]) for a, b in combinations(range(models), 2)]
    return out


def run(server: FakeOpenAI, pairs: list[PairItem], tmp_path, **config):
    params = {"base_url": server.base_url, "model": "fake", "api_key_env": "",
              "max_retries": 2, "timeout_s": 30.0, **config}
    judge = VLMPreferenceJudge("vlm", VLMPreferenceJudge.Config(**params))
    runner = JudgeRunner("vlm", judge, Store(tmp_path / "store"),
                         RunnerSettings(swap=True, orient=False))
    return judge, [tv.verdict for tv in runner.verdicts(pairs)]


@pytest.mark.parametrize("concurrency", [4, 16])
def test_concurrency_requests_are_in_flight_at_once(tmp_path, concurrency):
    with FakeOpenAI(service_s=0.3) as server:
        _, verdicts = run(server, pairs_of(5, prompts=2), tmp_path, concurrency=concurrency,
                          batch_size=20)
        stats = server.stats()
    assert stats["answered"] == 40 and stats["peak_in_flight"] == concurrency
    # the server's two orders always agree: every pair decided, none a tie
    assert all(v.failure is None and v.winner in ("model_a", "model_b") for v in verdicts)


def test_overlapping_calls_share_the_concurrency_and_lose_nothing(tmp_path):
    """The runner runs two calls at once (the judge's `concurrent_calls`) so the next
    call's requests fill the slots the last one's slowest leave; both share the judge's
    `concurrency` threads, so the endpoint never sees more."""
    with FakeOpenAI(service_s=0.05) as server:
        judge, verdicts = run(server, pairs_of(5, prompts=4), tmp_path, concurrency=4,
                              batch_size=8)  # 40 pairs: 5 calls of 8
        stats = server.stats()
    assert judge.concurrent_calls == 2
    assert stats["answered"] == 80 and stats["peak_in_flight"] == 4
    assert all(v.failure is None and v.winner in ("model_a", "model_b") for v in verdicts)


def test_each_image_is_encoded_once_across_orders_and_pairs(tmp_path):
    pairs = pairs_of(5, prompts=2)  # 10 images, each shown in 4 pairs x 2 orders
    with FakeOpenAI(service_s=0.0) as server:
        judge, verdicts = run(server, pairs, tmp_path, concurrency=8, batch_size=4)
        assert server.stats()["answered"] == 2 * len(pairs)
    assert judge._images.encoded == 10
    assert all(v.failure is None for v in verdicts)


def test_rate_limited_requests_wait_for_retry_after_and_none_is_lost(tmp_path):
    pairs = pairs_of(4)
    with FakeOpenAI(service_s=0.0, rate_limit_share=1.0, retry_after_s=0.4) as server:
        # backoff_s alone would retry after 1 ms: the wait seen is the server's Retry-After
        judge, verdicts = run(server, pairs, tmp_path, concurrency=16, backoff_s=0.001)
        stats = server.stats()
    requests = 2 * len(pairs)
    assert stats["rate_limited"] == requests and stats["answered"] == requests
    assert stats["retry_gap_min_s"] >= 0.4
    assert judge.run_stats()["retries"] == requests
    assert all(v.failure is None and v.winner in ("model_a", "model_b") for v in verdicts)


def test_a_call_holds_at_least_two_pairs_per_slot():
    """A call with fewer requests than slots leaves slots idle until it ends."""
    def judge(concurrency: int, batch_size: int) -> VLMPreferenceJudge:
        return VLMPreferenceJudge("vlm", VLMPreferenceJudge.Config(
            api_key_env="", concurrency=concurrency, batch_size=batch_size))

    assert judge(16, 8).batch_size == 32
    assert judge(4, 8).batch_size == 8 and judge(2, 50).batch_size == 50
