"""fal generator: the generator contract and every fault, against a local fal-compatible
queue server reached through fal-client itself (TLS, FAL_QUEUE_RUN_HOST, SSL_CERT_FILE)."""
from __future__ import annotations

import pytest
from fal_fixtures import KEY, fake_fal
from generator_contract import GeneratorContract

from autojudge.errors import AutojudgeError
from autojudge.generators.fal import FalGenerator
from autojudge.sdk.registry import GENERATORS
from autojudge.types import GenRequest, Prompt

FAST = {"endpoint": "fal-ai/flux/schnell", "width": 64, "height": 48, "timeout_s": 5.0,
        "backoff_s": 0.01, "poll_interval_s": 0.01, "price_per_megapixel_usd": 0.003,
        "max_retries": 2, "client_max_attempts": 3}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    with fake_fal(tmp_path_factory.mktemp("fal"), mp, service_s=0.02, slow_s=30) as s:
        yield s
    mp.undo()


class TestFalContract(GeneratorContract):
    plugin_cls = FalGenerator
    plugin_name = "fal"
    import_module = "autojudge.generators.fal"
    forbidden_imports = GeneratorContract.forbidden_imports + ("fal_client", "httpx", "aiohttp")
    fingerprint_changes = [{"endpoint": "fal-ai/flux/dev"}, {"num_inference_steps": 8},
                           {"guidance_scale": 2.0}, {"width": 128, "height": 128},
                           {"enable_safety_checker": False}, {"output_format": "png"},
                           {"negative_prompt": "blurry"}, {"arguments": {"acceleration": "high"}},
                           {"inpaint_endpoint": "fal-ai/fast-sdxl/inpainting"}]
    fingerprint_invariant = [{"concurrency": 2}, {"timeout_s": 9.0}, {"batch_size": 3},
                             {"max_retries": 0}, {"poll_interval_s": 0.5}]

    def default_params(self):
        return dict(FAST)

    @pytest.fixture
    def plugin_params(self, server):
        return dict(FAST)

    def sample_requests(self):
        return [GenRequest(Prompt(id="a", text="a cat"), 0),
                GenRequest(Prompt(id="b", text="a dog image:data"), 1),
                GenRequest(Prompt(id="c", text="a cat"), 2)]


def test_registered():
    assert GENERATORS.get("fal") is FalGenerator


def test_missing_key_fails_in_check_with_one_line(monkeypatch):
    for var in ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET"):
        monkeypatch.delenv(var, raising=False)
    gen = FalGenerator("flux", FalGenerator.Config())
    with pytest.raises(AutojudgeError) as info:
        gen.check()
    assert "FAL_KEY" in str(info.value) and "\n" not in str(info.value)
    monkeypatch.setenv("FAL_KEY_ID", "id")
    monkeypatch.setenv("FAL_KEY_SECRET", "secret")
    gen.check()  # the id + secret pair works too


def test_every_fault_is_typed_and_nothing_raises(server):
    gen = FalGenerator("f", FalGenerator.Config(**{**FAST, "timeout_s": 3.0}))
    texts = {"ok": "ok url", "data": "ok image:data", "r429": "t fault:429x2",
             "r500": "t fault:500x1", "slow": "t fault:slow", "badsubmit": "t fault:badsubmitx1",
             "badresult": "t fault:badresultx1", "nsfw": "t fault:nsfw", "bad422": "t fault:422",
             "r503": "t fault:503x9"}
    outs = dict(zip(texts, gen.generate([GenRequest(Prompt(id=k, text=t), 5)
                                         for k, t in texts.items()])))
    for key in ("ok", "data", "r429", "r500", "badsubmit", "badresult"):
        assert outs[key].ok, (key, outs[key].failure)
        assert outs[key].meta["seed"] == 5 and outs[key].meta["width"] == 64
        assert outs[key].cost_usd == pytest.approx(0.003 * 64 * 48 / 1e6)
        assert outs[key].meta["inference_time_s"] == pytest.approx(0.02)
        assert outs[key].meta["queue_wait_s"] >= 0
    assert outs["ok"].meta["image_source"] == "url"
    assert outs["data"].meta["image_source"] == "data_uri"
    assert outs["r500"].meta["attempts"] == 2 and outs["badresult"].meta["attempts"] == 2
    kinds = {k: (o.failure.kind, o.failure.retryable) for k, o in outs.items() if o.failure}
    assert kinds == {"slow": ("timeout", True), "nsfw": ("nsfw", False),
                     "bad422": ("http_422", False), "r503": ("http_503", True)}
    assert outs["nsfw"].cost_usd > 0 and outs["nsfw"].meta["nsfw"] is True
    assert outs["slow"].meta["request_id"] in server.cancelled  # timed out -> cancelled
    assert server.submits["t fault:503x9"] == 3  # 1 + max_retries, bounded
    assert all(KEY not in o.failure.message for o in outs.values() if o.failure)


def test_editing_prompts_send_data_uris(server, tmp_path):
    from PIL import Image

    init, mask = tmp_path / "init.png", tmp_path / "mask.png"
    Image.new("RGB", (32, 32), "red").save(init)
    Image.new("L", (32, 32), 0).save(mask)
    gen = FalGenerator("f", FalGenerator.Config(**{**FAST, "img2img_endpoint": "fal-ai/x/i2i"}))
    inpaint = Prompt(id="i", text="paint", task="inpaint", init_image=str(init), mask=str(mask),
                     strength=0.7)
    img2img = Prompt(id="s", text="style", task="img2img", init_image=str(init),
                     style_prompt="a charcoal sketch")
    args = gen.arguments(GenRequest(inpaint, 0))
    assert args["image_url"].startswith("data:image/png;base64,")
    assert args["mask_url"].startswith("data:image/png;base64,") and args["strength"] == 0.7
    assert "image_size" not in args
    assert gen.arguments(GenRequest(img2img, 0))["prompt"] == "style, a charcoal sketch"
    out_i2i, out_inpaint = gen.generate([GenRequest(img2img, 0), GenRequest(inpaint, 0)])
    assert out_i2i.ok and out_i2i.meta["endpoint"] == "fal-ai/x/i2i"
    assert out_inpaint.failure.kind == "unsupported_task" and not out_inpaint.failure.retryable


def test_no_more_requests_at_fal_than_the_concurrency_bound(tmp_path, monkeypatch):
    with fake_fal(tmp_path, monkeypatch, service_s=0.5) as srv:
        gen = FalGenerator("flux", FalGenerator.Config(**{**FAST, "concurrency": 3}))
        outs = gen.generate([GenRequest(Prompt(id=f"p{i}", text=f"bound {i}"), i)
                             for i in range(12)])
        assert all(o.ok for o in outs)
        # the bound is used (requests overlap) and never exceeded
        assert srv.peak_in_flight == 3


def requests_of(prefix, n):
    return [GenRequest(Prompt(id=f"{prefix}{i}", text=f"{prefix} {i}"), i) for i in range(n)]


def test_status_stream_kept_connections_and_the_key_only_at_the_queue(tmp_path, monkeypatch):
    with fake_fal(tmp_path, monkeypatch, service_s=0.05) as srv:
        gen = FalGenerator("flux", FalGenerator.Config(**{**FAST, "concurrency": 1}))
        first = gen.generate(requests_of("stream", 3))
        opened = srv.connections
        second = gen.generate(requests_of("stream", 3))
        assert all(o.ok for o in first + second)
        assert [o.image for o in first] == [o.image for o in second]
        # completion came from fal's status stream (one per request), never from polls
        assert (srv.status_streams, srv.status_polls, srv.result_gets) == (6, 0, 6)
        assert all(o.meta["inference_time_s"] == pytest.approx(0.05) for o in second)
        # the second batch used the first one's connections: no new TLS handshakes
        assert srv.connections == opened
        assert srv.seen_auth == {f"Key {KEY}"} and srv.seen_file_auth == {""}  # no key to CDN


def test_polls_where_the_server_has_no_status_stream(tmp_path, monkeypatch):
    with fake_fal(tmp_path, monkeypatch, service_s=0.05, status_stream=False) as srv:
        gen = FalGenerator("flux", FalGenerator.Config(**{**FAST, "concurrency": 2}))
        outs = gen.generate(requests_of("poll", 4))
        assert all(o.ok for o in outs), [o.failure for o in outs]
        assert srv.status_streams == 0 and srv.status_polls >= 4
        assert all(o.meta["queue_wait_s"] >= 0 and o.meta["inference_time_s"] == pytest.approx(0.05)
                   for o in outs)


def test_a_broken_status_stream_is_followed_again_never_resubmitted(server):
    gen = FalGenerator("f", FalGenerator.Config(**FAST))
    text = "cut fault:streamcutx1 service:0.5"  # still running when the stream breaks
    out, = gen.generate([GenRequest(Prompt(id="cut", text=text), 3)])
    assert out.ok and out.meta["attempts"] == 2, out.failure
    assert server.accepted[text] == 1 and server.submits[text] == 1


def test_generate_from_inside_a_running_event_loop(server):
    import asyncio

    gen = FalGenerator("f", FalGenerator.Config(**FAST))

    async def notebook_cell():
        return gen.generate(requests_of("loop", 2))

    assert all(o.ok for o in asyncio.run(notebook_cell()))


def test_a_status_stream_left_open_after_completed_is_not_waited_for(server):
    gen = FalGenerator("f", FalGenerator.Config(**{**FAST, "timeout_s": 3.0}))
    out, = gen.generate([GenRequest(Prompt(id="open", text="open fault:streamopen"), 4)])
    # done with one attempt: not timed out (then retried) waiting for the stream's end
    assert out.ok and out.meta["attempts"] == 1, out.failure
