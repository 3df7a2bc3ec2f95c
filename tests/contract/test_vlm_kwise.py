"""The VLM judge's K-wise mode (`judge.vlm.k`): one call ranks k images, a second call in
another slot order, strict parsing, the runner's cache and slot-bias report, and a whole
run whose board agrees with the pairwise board of the same scripted judge. Against the
scripted OpenAI-compatible server on 127.0.0.1 (tests/vlm_server.py)."""
from __future__ import annotations

import json

import pytest
from test_vlm import KEY_ENV, P, SECRET, gray, make
from vlm_server import ScriptedVLM

from autojudge.judges.vlm_rank import parse_ranking
from autojudge.stages.kwise import KwiseRunner, plan_groups, slot_orders
from autojudge.stages.runner import JudgeRunner, RunnerSettings
from autojudge.store.index import Store
from autojudge.types import RankItem


@pytest.fixture(scope="module")
def server():
    with ScriptedVLM() as srv:
        yield srv


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)


@pytest.mark.parametrize("text, mode, ranks, kind", [
    ('{"order": [2, 3, 1, 4]}', "order", (3, 1, 2, 4), None),
    ('```json\n{"rationale": "x", "order": ["Image 4", [1, 2], 3]}\n```', "order",
     (2, 2, 4, 1), None),
    ('{"best": "3"}', "best", (None, None, 1, None), None),
    ('{"winner": 2}', "best", (None, 1, None, None), None),  # a local model's choice answer
    ('{"order": [1, 2, 3]}', "order", None, "partial_order"),
    ('{"order": [1, 2, 2, 4]}', "order", None, "malformed_order"),
    ('{"order": [1, 2, 3, 5]}', "order", None, "malformed_order"),
    ('{"order": "1 > 2 > 3 > 4"}', "order", None, "malformed_order"),
    ('{"best": 7}', "best", None, "malformed_order"),
    ("I'm sorry, I can't rank these.", "order", None, "refusal"),
    ("Image 2 looks best to me.", "order", None, "unparseable"),
    ('{"winner": "A"}', "order", None, "unparseable"),
])
def test_parsing_is_strict(text, mode, ranks, kind) -> None:
    got, _, failure = parse_ranking(text, 4, mode)
    assert got == ranks and (failure is None if kind is None else failure.kind == kind)


def _group(*values: int) -> RankItem:
    return RankItem(P, tuple(gray(v) for v in values))


def test_one_call_ranks_the_images_as_shown(server) -> None:
    judge = make(server)
    order, best, tied = judge.rank([_group(60, 200, 120, 20), _group(60, 200, 120, 20),
                                    _group(90, 90, 30)])[:3]
    assert order.ranks == (3, 1, 2, 4) and order.failure is None
    assert tied.ranks == (1, 1, 3)  # equal images: one tie group
    texts = [r["text"] for r in server.requests[-3:]]  # sent concurrently: any order
    assert any("Rank Images 1 to 3" in t and "Image 3:" in t for t in texts)
    best_judge = make(server, rank_answer="best")
    (answer,) = best_judge.rank([_group(60, 200, 120, 20)])
    assert answer.ranks == (None, 1, None, None)
    assert answer.raw["usage"]["prompt_tokens"] == 1000 and best.ranks == order.ranks


@pytest.mark.parametrize("model, kind", [("garbage", "unparseable"), ("refuse", "refusal"),
                                         ("partial-order", "partial_order")])
def test_bad_answers_are_typed_failures_never_rankings(server, model, kind) -> None:
    (answer,) = make(server, model=model, max_retries=1).rank([_group(60, 200, 120)])
    assert answer.ranks is None and answer.failure.kind == kind
    assert answer.raw["attempts"] == 2  # retried once, then failed


def test_groups_and_slot_orders_are_drawn_from_the_prompt_not_the_config() -> None:
    models = [f"m{i}" for i in range(7)]
    groups = plan_groups(models, 4, "p1", 0)
    assert all(len(g) == 4 for g in groups) and set().union(*groups) == set(models)
    assert plan_groups(models, 4, "p1", 0) == groups  # a re-run draws the same
    assert plan_groups(models[::-1], 4, "p1", 0) == groups  # config order does not matter
    assert plan_groups(models[:3], 4, "p1", 0) == [("m0", "m1", "m2")]
    first, second = slot_orders("p1", 0, ["a", "b", "c", "d"])
    assert sorted(first) == [0, 1, 2, 3]
    assert all(f != s for f, s in zip(first, second))  # every image changes slot
    where = [{m: slot for slot, m in enumerate(order)} for order in (first, second)]
    assert all((where[0][a] < where[0][b]) != (where[1][a] < where[1][b])
               for a in range(4) for b in range(a + 1, 4))  # and every pair flips


def test_the_runner_asks_two_orders_caches_and_reports_slot_bias(server, tmp_path) -> None:
    store = Store(tmp_path / "store")
    runner = JudgeRunner("vlm", make(server, model="always-first"), store,
                         RunnerSettings(swap=True, k=4))
    kwise = KwiseRunner(runner, 4)
    groups = [(P, list(_group(60, 200, 120, 20).items))]
    start = len(server.requests)
    (result,) = kwise.rank(groups)
    assert len(server.requests) - start == 2  # both slot orders, one plugin call
    first, second = result.ranks
    assert first == (1, 2, 3, 4) and second == (4, 3, 2, 1)  # always slot 1 in both calls
    summary = kwise.summary()
    assert summary["best_share_by_slot"] == [1.0, 0.0, 0.0, 0.0]
    assert summary["reorder_flip_rate"] == 1.0  # reversed: no pair keeps its order
    again = KwiseRunner(runner, 4).rank(groups)
    assert len(server.requests) - start == 2 and again[0].ranks == result.ranks  # the store


def _board(document: dict, judge: str) -> dict:
    board = next(b for b in document["boards"] if b["judge"] == judge and b["tag"] is None)
    return {row["model"]: row for row in board["models"]}


@pytest.mark.slow
def test_a_k4_run_logs_rankings_and_agrees_with_the_pairwise_board(server, compose,
                                                                   tmp_path) -> None:
    """One run, the same scripted judge twice: `vlm` ranks the 4 images of a prompt in
    one call (two slot orders), `pairs` compares them two at a time. The K-wise judge
    logs rankings and its slot bias; both boards find the true order with overlapping
    CIs, and the run's agreement table measures how often their verdicts agree."""
    from autojudge.experiment import pipeline

    endpoint = (f"base_url: '{server.base_url}', model: noisy-brighter, "
                f"api_key_env: {KEY_ENV}, backoff_s: 0")
    overrides = ["model=[blank,noise]", "+model.light={kind: blank, color: '#b0b0b0'}",
                 "+model.dark={kind: blank, color: '#303030'}", "judge=[vlm]",
                 f"judge.vlm.base_url={server.base_url}", "judge.vlm.model=noisy-brighter",
                 f"judge.vlm.api_key_env={KEY_ENV}", "judge.vlm.backoff_s=0",
                 "judge.vlm.k=4", "+judge.pairs={kind: vlm, " + endpoint + "}",
                 "suite.limit=30", f"store.root={tmp_path / 'store'}", "progress=false",
                 "ratings.bootstrap_rounds=200", "logger=none", "report.min_battles=1",
                 "ratings.control=[brightness]"]
    start = len(server.requests)
    document = pipeline.run(compose(overrides), tmp_path / "run")
    # per prompt: one group of 4 in two slot orders, and 6 pairs in both orders
    assert len(server.requests) - start == 30 * (2 + 12)
    rows = [json.loads(line) for line in (tmp_path / "run" / "battles.jsonl").read_text()
            .splitlines()]
    ranked = [r for r in rows if r["judge"] == "vlm"]
    assert len(ranked) == 30 and all(len(r["models"]) == 4 and len(r["ranks"]) == 2
                                     for r in ranked)
    # each model's image features ride on its K-wise row (rate/gate --control read them)
    assert all(set(r["features"]) == set(r["models"]) for r in ranked)
    stats = document["run"]["judge_stats"]["vlm"]["kwise"]
    assert stats["k"] == 4 and len(stats["best_share_by_slot"]) == 4
    k4, k2 = _board(document, "vlm"), _board(document, "pairs")
    order = lambda board: sorted(board, key=lambda m: -board[m]["rating"])  # noqa: E731
    assert order(k4) == order(k2) == ["blank", "light", "noise", "dark"]  # the truth
    for model in k4:
        assert k4[model]["ci_low"] <= k2[model]["ci_high"]
        assert k2[model]["ci_low"] <= k4[model]["ci_high"]
    (agree,) = [a for a in document["agreement"] if {a["judge_a"], a["judge_b"]} ==
                {"vlm", "pairs"}]
    assert agree["n_shared"] == 30 * 6 and 0.5 < agree["agreement"] < 1.0
    from autojudge.cli.rate import main  # the log rates with `rate`, as the run rated it

    assert main([str(tmp_path / "run" / "battles.jsonl"), "--judge", "vlm",
                 "--bootstrap", "200"]) == 0


@pytest.mark.slow
def test_the_adaptive_schedule_picks_groups_of_k(server, compose, tmp_path) -> None:
    """`battles.schedule=adaptive` with k = 4 over 5 models: the scheduler picks groups
    of 4 (a battle is one ranking, so the budget counts rankings), never asks a pair
    twice on one prompt, logs rankings, records why it stopped; a re-run asks nothing."""
    from autojudge.experiment import pipeline

    overrides = ["model=[blank,noise]", "+model.light={kind: blank, color: '#b0b0b0'}",
                 "+model.dark={kind: blank, color: '#303030'}",
                 "+model.mid={kind: blank, color: '#707070'}", "judge=[vlm]",
                 f"judge.vlm.base_url={server.base_url}", "judge.vlm.model=noisy-brighter",
                 f"judge.vlm.api_key_env={KEY_ENV}", "judge.vlm.backoff_s=0", "judge.vlm.k=4",
                 "battles.schedule=adaptive", "battles.batch=6", "battles.max_battles=24",
                 "battles.bootstrap_rounds=30", "suite.limit=30",
                 f"store.root={tmp_path / 'store'}", "progress=false", "logger=none",
                 "ratings.bootstrap_rounds=100", "report.html=false"]
    start = len(server.requests)
    document = pipeline.run(compose(overrides), tmp_path / "run")
    assert len(server.requests) - start == 24 * 2  # two slot orders per ranking
    schedule = document["run"]["schedules"]["vlm"]
    assert schedule["k"] == 4 and schedule["stop_reason"] == "max_battles"
    assert schedule["n_scheduled"] == schedule["n_battles"] == 24
    rows = [json.loads(line) for line in (tmp_path / "run" / "battles.jsonl").read_text()
            .splitlines()]
    assert len(rows) == 24 and all(len(r["models"]) == 4 for r in rows)
    pairs = [(r["prompt_id"], r["seed"], *sorted((a, b))) for r in rows
             for i, a in enumerate(r["models"]) for b in r["models"][i + 1:]]
    assert len(pairs) == len(set(pairs))
    assert {m for r in rows[:6] for m in r["models"]} == {"blank", "noise", "light",
                                                           "dark", "mid"}
    assert document["run"]["judge_stats"]["vlm"]["kwise"]["ranking_calls_with_one_best"] \
        == 48
    again = len(server.requests)
    pipeline.run(compose(overrides), tmp_path / "run2")
    assert len(server.requests) == again  # the same groups, from the store


class Misbehaving:
    """A ranking plugin that raises on 3-image groups and answers a 2-image group with
    ranks of the wrong length: each breach fails only the groups it touched."""

    name, batch_size = "bad", 8

    def fingerprint(self):
        return {"name": "bad", "version": "1", "params": {}}

    def check(self):
        pass

    def applies(self, prompt):
        return True

    def compare(self, pairs):
        raise NotImplementedError

    def rank(self, groups):
        if any(len(g.items) == 3 for g in groups):
            raise RuntimeError("boom")
        from autojudge.types import RankVerdict

        return [RankVerdict((1,) if len(g.items) == 2 else tuple(range(1, len(g.items) + 1)))
                for g in groups]


def test_a_misbehaving_ranker_fails_only_the_groups_it_touched(tmp_path) -> None:
    runner = JudgeRunner("bad", Misbehaving(), Store(tmp_path / "store"),
                         RunnerSettings(swap=False, k=4))
    groups = [(P, list(_group(1, 2, 3, 4).items)), (P, list(_group(5, 6, 7).items)),
              (P, list(_group(8, 9).items))]
    good, raised, short = KwiseRunner(runner, 4).rank(groups)
    assert good.ranks == ((1, 2, 3, 4),) and good.failure is None
    assert raised.failure.kind == "judge_error" and "boom" in raised.failure.message
    assert short.failure.kind == "judge_bad_output" and "one rank per image" in \
        short.failure.message
    assert runner.failure_note() is not None  # counted for the run's notes
