"""A whole experiment through a local fal-compatible server: faults, resume, columns, and
the key never written anywhere."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from fal_fixtures import fake_fal
from PIL import Image

from autojudge.experiment import pipeline

FAULTS = {"ok-url": "a red house", "ok-data": "a red house image:data",
          "r429": "a red house fault:429x2", "r500": "a red house fault:500x1",
          "badresult": "a red house fault:badresultx1", "slow": "a red house fault:slow",
          "nsfw": "a red house fault:nsfw", "bad422": "a red house fault:422"}


def write_suite(folder: Path) -> Path:
    Image.new("RGB", (64, 64), (200, 40, 40)).save(folder / "init.png")
    lines = ["name: fal_faults", "seeds: [0]", "prompts:"]
    for pid, text in FAULTS.items():
        lines += [f"  - id: {pid}", f"    text: '{text}'", "    category: edit",
                  "    init_image: init.png", "    strength: 0.5"]
    path = folder / "suite.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def overrides(tmp: Path, suite: Path, logger: str) -> list[str]:
    m = "model.flux_dev"
    return ["model=[flux_dev,blank]", "judge=[preservation]", f"suite.path={suite}",
            "suite.name=fal_faults", f"store.root={tmp / 'store'}", f"logger={logger}",
            "progress=false", "ratings.bootstrap_rounds=50", "model.blank.width=64",
            "model.blank.height=64", f"{m}.timeout_s=3", f"{m}.backoff_s=0.01",
            f"{m}.poll_interval_s=0.01", f"{m}.price_per_image_usd=0.01",
            f"{m}.price_per_megapixel_usd=0.0", f"{m}.max_retries=2"]


def test_fal_experiment_faults_resume_and_no_key_leak(tmp_path, compose, monkeypatch, capfd):
    from fal_fixtures import KEY

    suite = write_suite(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    with fake_fal(tmp_path / "tls", monkeypatch, service_s=0.02, slow_s=30) as server:
        doc = pipeline.run(compose(overrides(tmp_path, suite, "wandb")), tmp_path / "run1")
        first = dict(server.submits)
        stats = {m["model"]: m for m in doc["models"]}["flux_dev"]
        assert stats["images"] == 5 and stats["failed"] == 3
        assert stats["failure_rate"] == pytest.approx(3 / 8)
        assert stats["failures"] == {"http_422": 1, "nsfw": 1, "timeout": 1}
        assert stats["cost_usd"] == pytest.approx(0.06)  # 5 images + the NSFW-flagged one
        assert stats["cost_per_image_usd"] == pytest.approx(0.012)
        assert stats["nsfw"] == 1
        assert stats["inference_p50_s"] == pytest.approx(0.02)
        assert stats["queue_wait_p50_s"] is not None
        assert 0 < stats["latency_p50_s"] <= stats["latency_p95_s"] < 3
        assert stats["model"] in doc["run"]["models"]
        rows = [json.loads(line) for line in
                (tmp_path / "run1" / "generations.jsonl").read_text().splitlines()]
        fal_rows = {r["prompt_id"]: r for r in rows if r["model"] == "flux_dev"}
        assert len(fal_rows) == 8  # failures are rows too, never dropped
        assert fal_rows["slow"]["failure_kind"] == "timeout"
        assert fal_rows["ok-url"]["image_path"] and Path(fal_rows["ok-url"]["image_path"]).exists()
        assert fal_rows["ok-url"]["meta"]["image_source"] == "url"
        assert fal_rows["ok-data"]["meta"]["image_source"] == "data_uri"
        assert server.cancelled  # the slow request was cancelled
        board = next(b for b in doc["boards"] if b["judge"] == "preservation" and b["tag"] is None)
        assert {r["model"] for r in board["models"]} == {"flux_dev", "blank"}
        assert board["n_battles"] == 5  # one per prompt where both sides have an image

        # resume: only the retryable failure (the timeout) is asked again
        again = pipeline.run(compose(overrides(tmp_path, suite, "none")), tmp_path / "run2")
        second = {k: v - first.get(k, 0) for k, v in server.submits.items()}
        assert {k for k, v in second.items() if v} == {FAULTS["slow"]}
        assert again["run"]["cache"]["generation"]["computed"] == 1
        assert server.seen_auth == {f"Key {KEY}"}

    secret = "SECRET-XYZ"
    out, err = capfd.readouterr()
    assert secret not in out + err
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".pem"
              and secret.encode() in p.read_bytes()]
    assert not leaked, leaked
    assert (tmp_path / "run1" / "wandb").is_dir()
