"""Cached images, scores and verdicts are keyed by the hash of their plugin's fingerprint:
moving the built-in plugins onto the SDK bases (autojudge.sdk) must not change one, or
every store would silently recompute (and re-pay for) everything. These hashes were
computed before the move; a change here is a cache invalidation and needs a `version`
bump on purpose, never by accident."""
from __future__ import annotations

import pytest

from autojudge.experiment import build
from autojudge.sdk.registry import GENERATORS, JUDGES
from autojudge.stages.cache import fingerprint_hash

# (config group, kind, params, fingerprint hash before the SDK); params are chosen so the
# fingerprint does not depend on this machine (no local paths that exist, no host env)
PINNED = [
    ("model", "blank", {},
     "70790efd6940bc8bd108b605e44e2b2d720ab2d53d226bd5fd4c9b64f2ef08b8"),
    ("model", "noise", {},
     "33f6f2f89ad10098bf1d160c81d6f7bbe4ce1ec89242dd933c78cd250efb403e"),
    ("model", "typeset", {},
     "7d98f66c87bf27a68027885e4564b3935c70769c43d3fa157bf7545a37f690cd"),
    ("model", "typeset", {'width': 256, 'max_font_size': 40, 'no_text': 'blank'},
     "e96c255b6cd56ec4393396a7822b4542d8940ea8f5dd7daae9bd5e049a6bad77"),
    ("model", "folder", {},
     "8625979f608ca59d86845eb19997dedc3051d2fcc86a0d0b1b9a748e9654833f"),
    ("model", "folder", {'path': '/data/imports/flux', 'extensions': ['png']},
     "50cde2d8f13ef105d5ef6c37114205e970280205cc3eec1b1ebf984aaebca1af"),
    ("model", "fal", {},
     "9fa076b43c42d3339cb3204a49a38814fc3493010d05cb1a0b08dc83c0509fbe"),
    ("model", "fal", {'endpoint': 'fal-ai/flux/dev', 'concurrency': 4, 'batch_size': 8, 'num_inference_steps': 20},
     "b6f9a2bc7a2268b6359731f9bd91f400c0876a48a3ecc21803330d798160d5bb"),
    ("model", "diffusers", {},
     "fb8a7a07c9869c170c5707f0ebbab2bde401a8212da1b9d875416a4a840716a9"),
    ("model", "diffusers", {'model': 'stabilityai/sdxl-turbo', 'num_inference_steps': 4, 'batch_size': 2, 'device': 'cpu'},
     "ebb93588ccc6e03f71b7f3d98cc702c9c02b67f67ccd790b5a7c562546a58837"),
    ("judge", "ocr", {},
     "dea2a936ad5c674577bb339902dc2fe02082f2e82039c7c86c2f00a4fdd527a7"),
    ("judge", "ocr", {'min_confidence': 0.5, 'batch_size': 2},
     "83deb859ade04e5e1f905c08d64ebfce40a6addb8c6c06f250131bc9895c9edd"),
    ("judge", "clip", {},
     "26c0636766680989761dc7240a936adcaea3067a1cdc9787664e8eb3855b057d"),
    ("judge", "clip", {'arch': 'ViT-L-14', 'batch_size': 4, 'device': 'cpu'},
     "bbaf3f6329d65d31dda55fc017eb21684c5183af11c475397f31f70860cf9d05"),
    ("judge", "aesthetic", {},
     "cff4b9a3e588c607d0e8ddd8495ec2329fb5efc46872400ba8856bc3ea3b80cc"),
    ("judge", "vlm", {},
     "43a68c8611d40ad0f5325f24ba2156cab28f516cc2c6f7818614fad0ac7dfc96"),
    ("judge", "vlm", {'criterion': 'text_rendering', 'model': 'qwen', 'base_url': 'http://localhost:8000/v1/', 'concurrency': 2},
     "7ce581921ce174c0d1de7dd77044dba78a966f1d455a2bd107cab36a9e130cf2"),
    ("judge", "vlm", {'backend': 'transformers', 'model': 'Qwen/Qwen2-VL-2B-Instruct', 'device': 'cpu'},
     "88304e65deb8df33d808d4df330876e4b7d93565673c330ae60f96da3bc32324"),
    ("model", "diffusers", {'model': 'org/base', 'lora': ['org/lora-a', 'org/lora-b'], 'lora_scales': [0.5]},
     "c4c63377653f53c60c0b1dded91d9a9042f658f311fd5d9a150c2a98e7dc27b9"),
    ("model", "fal", {'arguments': {'acceleration': 'high'}, 'width': 640, 'height': 480},
     "8c0c44eb97d62e3f7c9ad6a2b1e792b7784e137f36f3ba65d2a43b5a676ee1a5"),
    ("judge", "preservation", {},
     "6d3da80eacb948f98cb0ff56810f0f63771c1fabc88657a5c3e3498a580994b4"),
    ("judge", "preservation", {'metric': 'psnr', 'batch_size': 3},
     "70f1ee488f4fc3b69961f51428ff12f6542273fe28a9342d7a5bdaf0c2bce0d5"),
    # added after the SDK move: pinned at their introduction
    ("judge", "pickscore", {},
     "59419f16bfab9741d4a73191683a06072b5b83d958eaadc6c86a7a7f1211f0a7"),
    ("judge", "hpsv21", {},
     "5c6081b1eeb636fc0df42fd5edcb24e19492dfa19bf988431780d39af4b4e1d2"),
    ("judge", "hpsv21", {'revision': 'abc123'},
     "493bc29ebd6d682c34c75e741f06a5a41984a81766ae4ba275086a608e9e7f4b"),
    ("judge", "imagereward", {},
     "d2f7aab7982b5ba04eeedd6d470ba78d37f30a2032e9f4d2e05d1211c56ed2be"),
    ("judge", "vqascore", {},
     "3d6ac27dae8618dfa6e4fee94dab6760390dd26bb59836197d4100c66e6dea49"),
    ("judge", "vqascore", {'backend': 'transformers', 'model': 'Qwen/Qwen2-VL-2B-Instruct', 'device': 'cpu'},
     "8e55ce35fbe920f0aeb5ff1f8a9e815164faacb3a99e52f4350781bcccf0a92d"),
    ("judge", "dsg", {},
     "4b8fa1893e4caf508f1722326f8c5fc15abb7bf922ba4cd4b2ab43f9b9958a6e"),
    ("judge", "hpsv3", {},
     "18f29f7754285673525526cd6965adc4409cd721f73cf9c1e1eeb8a28dc7b554"),
    ("judge", "hpsv3", {'revision': 'abc123'},
     "c1c5c360b060fcc937622767bba3e689a877a526563e335b68494070273e6d39"),
    ("judge", "mps", {},
     "9364557e847bd4004c3ee2d13f80c90338e70fadefcc9f450fbf477a6389acff"),
    ("judge", "mps", {'revision': 'abc123'},
     "d763245127d08e96a4b24fcf0e397d80dedd897e1d6e62de94a956e07812494c"),
]


@pytest.fixture(autouse=True)
def default_fal_host(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("FAL_RUN_HOST", "FAL_QUEUE_RUN_HOST"):  # the queue host enters fal's
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize("group, kind, params, expected", PINNED,
                         ids=[f"{k}-{i}" for i, (_, k, _, _) in enumerate(PINNED)])
def test_builtin_fingerprint_is_unchanged(group: str, kind: str, params: dict,
                                          expected: str) -> None:
    registry = GENERATORS if group == "model" else JUDGES
    plugin = build.build_plugin(registry, group, kind, {"kind": kind, **params})
    assert fingerprint_hash(plugin.fingerprint()) == expected


def test_every_builtin_kind_is_pinned() -> None:
    pinned = {(group, kind) for group, kind, _, _ in PINNED}
    for group, registry in (("model", GENERATORS), ("judge", JUDGES)):
        for kind in registry.builtin_names():
            assert (group, kind) in pinned, f"pin the default fingerprint of {group} {kind}"
