"""autojudge.sweeps.pool_jobs.check_images: a damaged stored image is made again only by
a model that does it for nothing and byte for byte; any other is reported with why (real blobs, really
damaged on disk)."""
from __future__ import annotations

from pathlib import Path

from autojudge.generators.baselines import TypesetGenerator
from autojudge.store.index import Store
from autojudge.sweeps.pool_jobs import check_images
from autojudge.types import Generation, GenRequest, Prompt

PROMPT = Prompt(id="sign", text='A sign that reads "OPEN"', expected_text="OPEN")


def stored(root: Path, model: str, data: bytes) -> Generation:
    with Store(root) as store:
        sha, ext = store.put_blob(data)
        path = store.blob_path(sha, ext)
    return Generation(model, PROMPT, 0, sha, str(path), 0.1, 0.0)


def typeset_png() -> bytes:
    return TypesetGenerator("typeset", TypesetGenerator.Config()).generate(
        [GenRequest(PROMPT, 0)])[0].image


def test_a_baselines_damaged_image_is_made_again_with_the_same_bytes(tmp_path: Path) -> None:
    data = typeset_png()
    gen = stored(tmp_path, "typeset", data)
    Path(gen.image_path).write_bytes(data[:30])
    with Store(tmp_path) as store:
        check = check_images([gen], {"typeset": {"kind": "typeset"}}, store)
    assert check.remade == [gen] and check.damaged == []
    assert Path(gen.image_path).read_bytes() == data


def test_a_paid_models_damaged_image_is_reported_not_made_again(tmp_path: Path) -> None:
    data = typeset_png()
    gen = stored(tmp_path, "flux", data)
    Path(gen.image_path).write_bytes(b"\x89PNG cut")
    intact = stored(tmp_path, "typeset", data[:-1] + b"\x00")  # another, undamaged blob
    nodes = {"flux": {"kind": "fal", "endpoint": "fal-ai/flux/dev"},
             "typeset": {"kind": "typeset"}}
    with Store(tmp_path) as store:
        check = check_images([gen, intact], nodes, store)
    assert check.remade == [] and len(check.damaged) == 1
    damaged, why = check.damaged[0]
    assert damaged is gen and "fal" in why and "cost money" in why
    assert Path(gen.image_path).read_bytes() == b"\x89PNG cut"  # nothing was sent anywhere


def test_a_model_that_now_makes_other_bytes_is_not_used(tmp_path: Path) -> None:
    data = typeset_png()
    gen = stored(tmp_path, "typeset", data)
    Path(gen.image_path).write_bytes(data[:30])
    other = {"kind": "typeset", "width": 300}  # not the settings that made the image
    with Store(tmp_path) as store:
        check = check_images([gen], {"typeset": other}, store)
    assert check.remade == [] and "different image" in check.damaged[0][1]
    assert Path(gen.image_path).read_bytes() == data[:30]
