"""diffusers generator on tiny random pipelines built offline (txt2img, img2img, inpaint,
LoRA, fine-tuned checkpoints), plus a checkpoint sweep through the whole pipeline."""
from __future__ import annotations

import io

import numpy as np
import pytest
from generator_contract import GeneratorContract
from PIL import Image

from autojudge.errors import AutojudgeError
from autojudge.generators.diffusers_local import DiffusersGenerator
from autojudge.sdk.registry import GENERATORS
from autojudge.types import GenRequest, Prompt

CAT = Prompt(id="cat", text="a cat")
DOG = Prompt(id="dog", text="a dog")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """{sd, lora, ck1, ck2, init, mask} built once per module (~3 s)."""
    from tiny_diffusers import build_tiny_lora, build_tiny_sd, perturbed_unet

    root = tmp_path_factory.mktemp("tiny_sd")
    sd = build_tiny_sd(root / "sd")
    paths = {"sd": sd, "lora": build_tiny_lora(sd, root / "lora"),
             "ck1": perturbed_unet(sd, root / "ck1", seed=1),
             "ck2": perturbed_unet(sd, root / "ck2", seed=2)}
    x = np.linspace(0, 255, 64, dtype=np.uint8)
    Image.fromarray(np.stack([np.tile(x, (64, 1))] * 3, axis=-1)).save(root / "init.png")
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    mask.save(root / "mask.png")
    paths.update(init=root / "init.png", mask=root / "mask.png")
    return paths


def small(tiny, **extra):
    return {"model": str(tiny["sd"]), "num_inference_steps": 3, "width": 64, "height": 64,
            "batch_size": 2, **extra}


def px(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


@pytest.mark.slow  # a real (tiny) diffusers pipeline, run many times over
class TestDiffusersContract(GeneratorContract):
    plugin_cls = DiffusersGenerator
    plugin_name = "tiny_sd"
    import_module = "autojudge.generators.diffusers_local"
    fingerprint_changes = [{"num_inference_steps": 4}, {"guidance_scale": 3.0},
                           {"scheduler": "EulerDiscreteScheduler"}, {"negative_prompt": "ugly"},
                           {"width": 32, "height": 32}, {"strength": 0.5}]
    fingerprint_invariant = [{"batch_size": 1}, {"gpu_hour_usd": 2.0}, {"device": "cpu"}]

    @pytest.fixture
    def plugin_params(self, tiny):
        return small(tiny)

    @pytest.fixture
    def make_plugin(self, plugin_params):
        cache = {}

        def make(**overrides):
            key = tuple(sorted((k, str(v)) for k, v in overrides.items()))
            if key not in cache:  # share a loaded pipeline between identical instances
                cache[key] = DiffusersGenerator(self.plugin_name, DiffusersGenerator.Config(
                    **{**plugin_params, **overrides}))
            return cache[key] if not overrides else DiffusersGenerator(
                self.plugin_name, DiffusersGenerator.Config(**{**plugin_params, **overrides}))

        return make

    def sample_requests(self):
        return [GenRequest(CAT, 0), GenRequest(DOG, 1), GenRequest(CAT, 2)]

    def test_batch_equals_one_by_one(self, plugin, gen_requests):
        """Batched CPU matmuls round differently in the last bits: the same seed gives the
        same image up to +-2 levels whatever the batch (each image has its own generator)."""
        batched = plugin.generate(gen_requests)
        for request, out in zip(gen_requests, batched):
            single = plugin.generate([request])[0]
            assert np.abs(px(out.image) - px(single.image)).max() <= 2

    def test_outputs_follow_request_order(self, plugin, gen_requests):
        forward = plugin.generate(gen_requests)
        backward = plugin.generate(list(reversed(gen_requests)))
        for a, b in zip(forward, reversed(backward)):
            assert np.abs(px(a.image) - px(b.image)).max() <= 2


def test_registered():
    assert GENERATORS.get("diffusers") is DiffusersGenerator


def test_same_seed_same_image_other_seed_other_image(tiny):
    gen = DiffusersGenerator("sd", DiffusersGenerator.Config(**small(tiny, batch_size=1)))
    a, b, c = gen.generate([GenRequest(CAT, 7), GenRequest(CAT, 7), GenRequest(CAT, 8)])
    assert a.image == b.image and a.image != c.image
    again = DiffusersGenerator("sd", DiffusersGenerator.Config(**small(tiny, batch_size=1)))
    assert again.generate([GenRequest(CAT, 7)])[0].image == a.image  # a fresh load too
    assert Image.open(io.BytesIO(a.image)).size == (64, 64)
    assert a.meta["device"] == "cpu" and a.latency_s > 0


def test_cost_from_gpu_hour_price(tiny):
    gen = DiffusersGenerator("sd", DiffusersGenerator.Config(**small(tiny, gpu_hour_usd=3.6)))
    out = gen.generate([GenRequest(CAT, 0)])[0]
    assert out.cost_usd == pytest.approx(out.latency_s * 3.6 / 3600, rel=1e-3)


@pytest.mark.slow
def test_img2img_style_and_inpaint(tiny):
    gen = DiffusersGenerator("sd", DiffusersGenerator.Config(**small(tiny)))
    img2img = Prompt(id="i", text="a gradient", task="img2img", init_image=str(tiny["init"]),
                     strength=0.5, style_prompt="a charcoal sketch")
    inpaint = Prompt(id="p", text="a square", task="inpaint", init_image=str(tiny["init"]),
                     mask=str(tiny["mask"]), strength=1.0)
    outs = gen.generate([GenRequest(img2img, 0), GenRequest(inpaint, 0), GenRequest(CAT, 0)])
    assert all(o.ok for o in outs), [o.failure for o in outs]
    assert [o.meta["task"] for o in outs] == ["img2img", "inpaint", "txt2img"]
    assert type(gen.pipeline("img2img")).__name__ == "StableDiffusionImg2ImgPipeline"
    assert type(gen.pipeline("inpaint")).__name__ == "StableDiffusionInpaintPipeline"
    # the output has the init image's size (a random tiny VAE does not reconstruct the
    # init pixels, so how well the unmasked region is kept is left to the real models)
    assert all(Image.open(io.BytesIO(o.image)).size == (64, 64) for o in outs)


@pytest.mark.slow
def test_lora_adapter_changes_the_image_and_the_fingerprint(tiny):
    base = DiffusersGenerator("sd", DiffusersGenerator.Config(**small(tiny)))
    lora = DiffusersGenerator("sd", DiffusersGenerator.Config(
        **small(tiny, lora=[str(tiny["lora"])], lora_scales=[1.0])))
    zero = DiffusersGenerator("sd", DiffusersGenerator.Config(
        **small(tiny, lora=[str(tiny["lora"])], lora_scales=[0.0])))
    assert lora.fingerprint() != base.fingerprint() != zero.fingerprint()
    b, l, z = (g.generate([GenRequest(CAT, 0)])[0] for g in (base, lora, zero))
    assert l.ok and l.image != b.image
    assert np.abs(px(z.image) - px(b.image)).max() <= 2  # scale 0 = no adapter
    assert lora.pipeline().get_active_adapters() == ["lora0"]


def test_checkpoint_swaps_the_unet(tiny):
    outs = [DiffusersGenerator("sd", DiffusersGenerator.Config(**small(tiny, checkpoint=str(tiny[k]))))
            .generate([GenRequest(CAT, 0)])[0].image for k in ("ck1", "ck2")]
    assert outs[0] != outs[1]


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, offline: only what a test puts there is cached."""
    import huggingface_hub.constants

    cache = tmp_path / "hf_cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def cache_repo(cache, repo: str, source, files=None):
    """Put `source` (a pipeline folder) into `cache` as hub repo `repo` would be downloaded
    (models--org--name/snapshots/<commit>, refs/main naming the commit)."""
    import shutil

    entry = cache / ("models--" + repo.replace("/", "--"))
    snapshot = entry / "snapshots" / ("0" * 40)
    if files is None:
        shutil.copytree(source, snapshot)
    else:
        snapshot.mkdir(parents=True)
        for name in files:
            shutil.copy(source / name, snapshot / name)
    (entry / "refs").mkdir()
    (entry / "refs" / "main").write_text("0" * 40)


def refusal(gen) -> str:
    """check()'s one-line message; nothing was loaded on the way."""
    with pytest.raises(AutojudgeError) as info:
        gen.check()
    assert not gen._pipes
    assert "\n" not in str(info.value) and f"model '{gen.name}'" in str(info.value)
    return str(info.value)


def test_missing_weights_fail_check_with_one_line(tmp_path, hf_cache, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("check() reached for the network")

    monkeypatch.setattr("socket.create_connection", no_network)
    (tmp_path / "file.txt").write_text("x")
    for model, needle in [
            ("someone/not-downloaded-model", "needs weights for someone/not-downloaded-model: "
             "not in the Hugging Face cache and the hub is offline"),
            (str(tmp_path / "nope"), "does not exist; set model.sd.model"),
            (str(tmp_path / "file.txt"), "is a file, not a folder"),
            (str(tmp_path), "has no model_index.json")]:
        assert needle in refusal(DiffusersGenerator("sd", DiffusersGenerator.Config(model=model)))
    with pytest.raises(AutojudgeError, match="no model"):
        DiffusersGenerator("sd", DiffusersGenerator.Config()).check()


def test_hub_unreachable_counts_as_offline(hf_cache, monkeypatch):
    """No HF_HUB_OFFLINE, but the hub does not answer: refuse now rather than let every
    image wait through huggingface_hub's retries."""
    from autojudge.runtime import weights

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(weights, "_REACHABLE", None)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on port 9
    gen = DiffusersGenerator("sd15", DiffusersGenerator.Config(model="org/sd"))
    assert "not in the Hugging Face cache and the hub is offline" in refusal(gen)
    assert gen._offline()  # so a load would not try the hub either


def test_cached_hub_pipeline_passes_and_a_partial_download_is_refused(tiny, hf_cache):
    cache_repo(hf_cache, "org/whole", tiny["sd"])
    DiffusersGenerator("sd", DiffusersGenerator.Config(model="org/whole")).check()
    cache_repo(hf_cache, "org/half", tiny["sd"], files=["model_index.json"])
    message = refusal(DiffusersGenerator("sd", DiffusersGenerator.Config(model="org/half")))
    assert "only partly in the Hugging Face cache" in message and "unet" in message
    message = refusal(DiffusersGenerator("sd", DiffusersGenerator.Config(
        model="org/whole", revision="v2")))
    assert "not in the Hugging Face cache at revision v2" in message


def test_local_pipeline_checkpoint_and_lora_refs_are_checked(tiny, tmp_path, hf_cache):
    DiffusersGenerator("sd", DiffusersGenerator.Config(**small(
        tiny, checkpoint=str(tiny["ck1"]), lora=[str(tiny["lora"])]))).check()
    (tmp_path / "empty").mkdir()
    for extra, needle in [
            ({"checkpoint": str(tmp_path / "empty")}, "holds no denoiser"),
            ({"checkpoint": str(tmp_path / "gone")}, "checkpoint folder"),
            ({"lora": [str(tmp_path / "gone")]}, "LoRA"),
            ({"lora": ["org/lora-not-cached"]}, "set model.sd.lora=[/local/lora_folder]")]:
        gen = DiffusersGenerator("sd", DiffusersGenerator.Config(**small(tiny, **extra)))
        assert needle in refusal(gen)


@pytest.mark.slow
def test_checkpoint_sweep_ranks_checkpoints_in_one_run(tiny, tmp_path, compose):
    """Two labels = two checkpoints of one fine-tuning run, judged by preservation on an
    inpainting prompt, in one pipeline.run."""
    from omegaconf import OmegaConf, open_dict

    from autojudge.experiment import pipeline

    suite = tmp_path / "suite.yaml"
    lines = ["name: sweep", "seeds: [0, 1]", "prompts:"]
    for i in range(3):
        lines += [f"  - id: edit-{i}", f"    text: object number {i}", "    category: edit",
                  f"    init_image: {tiny['init']}", f"    mask: {tiny['mask']}"]
    suite.write_text("\n".join(lines) + "\n")
    cfg = compose(["model=[blank]", "judge=[preservation]", f"suite.path={suite}",
                   "suite.name=sweep", f"store.root={tmp_path / 'store'}", "logger=none",
                   "progress=false", "ratings.bootstrap_rounds=50"])
    with open_dict(cfg):
        del cfg.model["blank"]
        for label in ("ck1", "ck2"):
            cfg.model[label] = OmegaConf.create({"kind": "diffusers", **small(
                tiny, checkpoint=str(tiny[label]), num_inference_steps=2)})
    doc = pipeline.run(cfg, tmp_path / "run")
    board = next(b for b in doc["boards"] if b["judge"] == "preservation" and b["tag"] is None)
    assert {r["model"] for r in board["models"]} == {"ck1", "ck2"}
    assert board["n_battles"] == 6 and all(r["battles"] == 6 for r in board["models"])
    assert sorted(r["rank"] for r in board["models"])[0] == 1
    assert all(m["images"] == 6 and m["failed"] == 0 for m in doc["models"])
