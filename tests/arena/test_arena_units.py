"""The arena's parts on their own: tokens and rate limits, the pair sampler, image
cleaning, the live Elo, the SSE fan-out, the votes writer."""
from __future__ import annotations

import asyncio
import io
import random

import numpy as np
import pytest
from arena_helpers import Clock, png

from autojudge.arena.images import ImageCache, ImageUnavailable, clean, strip_jpeg, strip_png
from autojudge.arena.live import Broadcaster, LiveRatings, WorkerOutOfStep, refit
from autojudge.arena.pairs import Sampler, adaptive_picks
from autojudge.arena.runs import ImageRef, Pair
from autojudge.arena.tokens import Bucket, Keys, Refusal, TokenBook
from autojudge.arena.votes import Vote, VoteStore, VoteWriter
from autojudge.ratings import online_elo


def test_tokens_are_single_use_session_bound_and_expire() -> None:
    clock = Clock()
    pending = {}
    book = TokenBook(Keys(), ttl_s=10, clock=clock,
                     on_pending=lambda p, d: pending.__setitem__(p, pending.get(p, 0) + d))
    keys = book.keys
    sid = keys.session_id(keys.new_session_cookie())
    other = keys.session_id(keys.new_session_cookie())
    token = book.issue(sid, pair=4, swapped=True)
    assert pending == {4: 1}
    with pytest.raises(Refusal) as refused:
        book.redeem(token, other)
    assert refused.value.status == 403
    issue = book.redeem(token, sid)
    assert (issue.pair, issue.swapped) == (4, True) and pending == {4: 0}
    with pytest.raises(Refusal) as refused:
        book.redeem(token, sid)
    assert refused.value.status == 409
    late = book.issue(sid, pair=5, swapped=False)
    clock.now += 11
    with pytest.raises(Refusal) as refused:
        book.redeem(late, sid)
    assert refused.value.status == 410
    book.issue(sid, pair=6, swapped=False)  # issuing purges expired tokens
    assert pending[5] == 0 and pending[6] == 1


def test_session_cookies_are_signed() -> None:
    keys = Keys(b"s" * 32)
    cookie = keys.new_session_cookie()
    assert keys.session_id(cookie) == cookie.split(".")[0]
    assert keys.session_id(cookie[:-1] + ("A" if cookie[-1] != "A" else "B")) is None
    assert keys.session_id("no-dot") is None and keys.session_id(None) is None
    assert Keys(b"t" * 32).session_id(cookie) is None  # another server's cookie


def test_a_session_holds_a_bounded_number_of_tokens() -> None:
    book = TokenBook(Keys(), max_outstanding=2, clock=Clock())
    sid = "s"
    first, second, third = (book.issue(sid, pair=k, swapped=False) for k in range(3))
    with pytest.raises(Refusal) as refused:
        book.redeem(first, sid)  # dropped for the newer ones
    assert refused.value.status == 410
    assert book.redeem(second, sid).pair == 1 and book.redeem(third, sid).pair == 2


def test_bucket_rate_and_burst() -> None:
    bucket = Bucket(rate=1.0, burst=2)
    assert [bucket.allow(0.0) for _ in range(3)] == [True, True, False]
    assert bucket.allow(1.0) and not bucket.allow(1.0)
    assert all(Bucket(rate=0, burst=0).allow(0.0) for _ in range(100))


def _pairs(models, prompts, seeds=(0,)):
    img = ImageRef(None, "0" * 64)
    out = []
    for p in prompts:
        for s in seeds:
            for i in range(len(models)):
                for j in range(i + 1, len(models)):
                    out.append(Pair(p, s, models[i], models[j], img, img))
    return out


def test_undervoted_sampling_balances_model_pairs_and_prompts() -> None:
    models = ["a", "b", "c", "d"]
    prompts = [f"p{k}" for k in range(5)]
    sampler = Sampler(_pairs(models, prompts), {p: () for p in prompts}, models, seed=1)
    for _ in range(3):  # a lopsided history: a-b on p0 voted three times
        sampler.record_vote(0)
    for _ in range(27):
        sampler.record_vote(sampler.choose(set(), None))
    per_model_pair = np.bincount(sampler.model_pair, weights=sampler.votes)
    assert per_model_pair.max() - per_model_pair.min() <= 1
    assert sampler.votes[0] == 3 and sampler.votes[1:].max() == 1  # spread over prompts


def test_sampler_skips_pairs_a_session_has_seen_and_counts_pending() -> None:
    models = ["a", "b"]
    sampler = Sampler(_pairs(models, ["p0", "p1"]), {"p0": ("x",), "p1": ("y",)}, models,
                      seed=0)
    first = sampler.choose(set(), None)
    assert sampler.choose({first}, None) != first
    assert sampler.choose({0, 1}, None) in (0, 1)  # all seen: repeats are fine
    sampler.on_pending(0, 1)
    assert sampler.choose(set(), None) == 1  # a pair on screen counts as voted
    assert sampler.choose(set(), "y") == 1 and sampler.choose(set(), "zzz") is None


def test_adaptive_picks_aim_at_the_widest_ci() -> None:
    models = ["a", "b", "c"]
    prompts = [f"p{k}" for k in range(12)]
    sampler = Sampler(_pairs(models, prompts), {p: () for p in prompts}, models,
                      mode="adaptive", seed=0)
    # a-b decided on many prompts; c has one vote: the picks should involve c
    rng = random.Random(0)
    a, b, w, pid = [], [], [], []
    for p in prompts:
        a.append("a"); b.append("b"); w.append(rng.choice(["model_a", "model_b", "tie"]))
        pid.append(p)
    a.append("a"); b.append("c"); w.append("tie"); pid.append("p0")
    picks = adaptive_picks(sampler.adaptive_pool(batch=8), a, b, w, pid)
    assert len(picks) == 8
    assert all("c" in (sampler.pairs[k].model_x, sampler.pairs[k].model_y) for k in picks)
    sampler.set_queue(picks)
    assert sampler.choose(set(), None) == picks[0]


def test_images_lose_their_metadata_not_their_pixels(tmp_path) -> None:
    from PIL import Image

    data = png((10, 20, 30), note="made by secret_model")
    assert b"secret_model" in data
    stripped = strip_png(data)
    assert b"secret_model" not in stripped
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(stripped))),
                          np.asarray(Image.open(io.BytesIO(data))))
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x010E] = "made by secret_model"  # ImageDescription
    Image.new("RGB", (16, 16), (200, 0, 0)).save(buffer, format="JPEG", exif=exif,
                                                 comment=b"secret_model")
    jpeg = buffer.getvalue()
    assert jpeg.count(b"secret_model") == 2
    clean_jpeg = strip_jpeg(jpeg)
    assert b"secret_model" not in clean_jpeg and clean(jpeg) == clean_jpeg
    Image.open(io.BytesIO(clean_jpeg)).load()
    assert strip_png(b"not a png") == b"not a png" and strip_jpeg(b"\xff\xd8\xff") == b"\xff\xd8\xff"


def test_image_cache_checks_hashes(tmp_path) -> None:
    import hashlib

    data = png((1, 2, 3))
    path = tmp_path / "x.png"
    path.write_bytes(data)
    cache = ImageCache(max_bytes=1)
    good = ImageRef(path, hashlib.sha256(data).hexdigest())
    assert cache.get(good)[1] == "image/png"
    with pytest.raises(ImageUnavailable):
        cache.get(ImageRef(path, "f" * 64))
    assert cache.get(ImageRef(tmp_path / "gone.png", good.sha))[0]  # content-addressed
    with pytest.raises(ImageUnavailable):
        ImageCache().get(ImageRef(tmp_path / "gone.png", good.sha))


def test_live_elo_is_the_online_elo_of_the_votes() -> None:
    rng = random.Random(3)
    models = ["a", "b", "c"]
    live = LiveRatings({"models": models, "rating": {"bootstrap_rounds": 20}, "judges": {}},
                       workers="thread")
    a, b, w = [], [], []
    for _ in range(200):
        x, y = rng.sample(models, 2)
        winner = rng.choice(["model_a", "model_b", "tie", "tie (bothbad)"])
        live.add(x, y, winner, f"p{rng.randrange(9)}", 0)
        a.append(x); b.append(y); w.append(winner)
    expected = online_elo(a, b, w)
    assert live.elo == pytest.approx(expected)
    rows = {r["model"]: r for r in live.rows()}
    assert sum(r["battles"] for r in rows.values()) == 400
    live.refit_now()
    assert all(r["rating"] is not None for r in live.rows())
    assert {r["model"]: r["elo"] for r in live.board["models"]} == pytest.approx(expected)


def test_the_worker_gets_only_new_votes_and_recovers_when_out_of_step() -> None:
    live = LiveRatings({"models": ["a", "b"], "rating": {"bootstrap_rounds": 10},
                        "judges": {}}, workers="thread")
    live.add("a", "b", "model_a", "p1", 0)
    first = live._job()
    assert first["constants"] is not None and first["start"] == 0
    assert refit(first)["n_votes"] == 1
    live._sent = 1
    live.add("b", "a", "tie", "p2", 0)
    second = live._job()
    assert second["constants"] is None and second["append"]["winner"] == ["tie"]
    assert refit(second)["board"]["n_battles"] == 2
    with pytest.raises(WorkerOutOfStep):
        refit({**second, "key": "a new worker knows nothing"})


def test_broadcaster_keeps_the_newest_message_for_slow_pages() -> None:
    async def scenario() -> list[str]:
        hub = Broadcaster(depth=2)
        queue = hub.subscribe()
        for k in range(5):
            hub.publish(str(k))
        got = [queue.get_nowait() for _ in range(queue.qsize())]
        hub.unsubscribe(queue)
        hub.publish("after")
        return got + [str(queue.qsize())]

    assert asyncio.run(scenario()) == ["3", "4", "0"]


def test_writer_groups_votes_and_refuses_a_duplicate(tmp_path) -> None:
    store = VoteStore(tmp_path / "v.sqlite")

    def vote(token: str) -> Vote:
        return Vote(1.0, "s", token, 0.0, "p", "prompt", 0, ("t",), "x", "y", "1", "2", "tie")

    async def scenario() -> list:
        writer = VoteWriter(store)
        settled = []
        results = await asyncio.gather(*(writer.append(vote(f"t{k}"), settled.append)
                                         for k in range(20)),
                                       writer.append(vote("t0"), settled.append),
                                       return_exceptions=True)
        writer.close()
        return results, settled

    results, settled = asyncio.run(scenario())
    assert sorted(r for r in results if isinstance(r, int)) == list(range(1, 21))
    assert type(results[-1]).__name__ == "IntegrityError" and len(settled) == 21
    assert store.count() == 20
    assert [r["token"] for r in store.rows()][:3] == ["t0", "t1", "t2"]
