"""W&B offline, read back from the run's own files: tables with images, histograms,
summary metrics, the run folder as an artifact whose staged files all exist (so `wandb
sync` can upload them), nothing under HOME, one W&B run per multirun job in one group,
and secrets redacted at any depth."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from wandb_records import item_key, records, run_file

from autojudge.report.redact import REDACTED, redact
from autojudge.report.wandb_log import init_settings, log_to_wandb

pytestmark = pytest.mark.slow


def _runs(job: Path) -> list[Path]:
    return sorted((job / "wandb").glob("offline-run-*"))


def _by_type(job: Path) -> dict[str, list]:
    out: dict[str, list] = {}
    for record in records(run_file(_runs(job)[0])):
        out.setdefault(record.WhichOneof("record_type"), []).append(record)
    return out


def _artifacts(job: Path) -> dict[str, dict[str, str]]:
    """artifact name -> {path in the artifact: local staged file}."""
    return {r.artifact.name: {c.path: c.local_path for c in r.artifact.manifest.contents}
            for r in _by_type(job).get("artifact", [])}


def test_multirun_gives_one_wandb_run_per_job_in_one_group(font_sweep: dict) -> None:
    groups, swept = set(), []
    for job in font_sweep["jobs"]:
        assert len(_runs(job)) == 1, "each job logs exactly one W&B run, in its own folder"
        run = _by_type(job)["run"][0].run
        groups.add(run.run_group)
        config = {u.key: json.loads(u.value_json) for u in run.config.update}
        swept.append(config["swept"]["model.typeset.max_font_size"])
        assert config["model"]["typeset"]["max_font_size"] == swept[-1]
        assert run.job_type == "sweep-job"
    assert groups == {font_sweep["sweep"].name}
    assert swept == [4, 6, 24]


def test_offline_run_holds_tables_images_and_an_artifact_that_syncs(font_sweep: dict) -> None:
    job = font_sweep["jobs"][2]
    artifacts = _artifacts(job)
    tables = {path for files in artifacts.values() for path in files if path.endswith(".table.json")}
    for name in ("boards/ocr.table.json", "battles.table.json", "prompt_grid.table.json",
                 "generations.table.json"):
        assert name in tables, (name, sorted(tables))
    battles = next(files for files in artifacts.values() if "battles.table.json" in files)
    table = json.loads(Path(battles["battles.table.json"]).read_text())
    columns = table["columns"]
    assert {"prompt", "tags", "image_a", "image_b", "ocr: winner", "ocr: score_a",
            "ocr: rationale"} <= set(columns)
    assert table["data"] and table["data"][0][columns.index("image_a")]["_type"] == "image-file"
    images = [p for p in battles if p.startswith("media/images/")]
    assert images and all(Path(battles[p]).read_bytes()[:4] == b"\x89PNG" for p in images)
    run_artifact = artifacts["autojudge-starter"]
    for name in ("leaderboard.json", "battles.jsonl", "report.html", "config.json"):
        assert name in run_artifact, sorted(run_artifact)
    assert any(p.startswith("plots/") for p in run_artifact)
    staged = [Path(p) for files in artifacts.values() for p in files.values()]
    assert all(p.is_file() and job in p.parents for p in staged), "sync needs every staged file"


def test_summary_histograms_and_image_budget(font_sweep: dict) -> None:
    by_type = _by_type(font_sweep["jobs"][0])
    summary = {u.key: json.loads(u.value_json) for r in by_type["summary"]
               for u in r.summary.update if u.key}
    logged = {item_key(u) for r in by_type["summary"] for u in r.summary.update}
    assert {"battles", "prompt_grid", "generations", "boards/ocr"} <= logged
    for key in ("rating/ocr/typeset", "rank/ocr/typeset", "cost_usd/typeset",
                "cost_per_image_usd/blank", "latency_p50_s/typeset", "failure_rate/blank"):
        assert key in summary, key
    assert summary["images_logged"] <= 5  # logger.max_images=5
    history = {item_key(u) for r in by_type["history"] for u in r.history.item}
    assert {"latency_s/typeset", "latency_s/blank"} <= history


def test_nothing_is_written_under_home(font_sweep: dict) -> None:
    assert list(font_sweep["home"].rglob("*")) == []


def test_secrets_are_redacted_at_any_depth_in_config_json_and_wandb(handmade_run: Path) -> None:
    secret = "sk-live-0123456789abcdefXYZ"
    config = {"name": "handmade", "store": {"root": "/tmp/s"},
              "judge": {"vlm": {"api_key": secret, "api_key_env": "OPENAI_API_KEY",
                                "max_tokens": 64, "endpoint": {"headers": {"x-auth-token":
                                                                           "tok-123456"}}}},
              "model": {"fal": {"credentials": {"key_secret": "abc"}, "note": secret}},
              "hooks": [{"password": "hunter2"}], "url": "https://user:pw123@host/x"}
    clean = redact(config)
    assert clean["judge"]["vlm"]["api_key"] == REDACTED
    assert clean["judge"]["vlm"]["api_key_env"] == "OPENAI_API_KEY"
    assert clean["judge"]["vlm"]["max_tokens"] == 64
    assert clean["judge"]["vlm"]["endpoint"]["headers"]["x-auth-token"] == REDACTED
    assert clean["model"]["fal"]["credentials"]["key_secret"] == REDACTED
    assert clean["model"]["fal"]["note"] == REDACTED  # looks like a key whatever its name
    assert clean["hooks"][0]["password"] == REDACTED and "pw123" not in clean["url"]
    assert init_settings({"kind": "wandb"}, handmade_run, config,
                         {"run": {"name": "x"}})["config"] == clean
    document = json.loads((handmade_run / "leaderboard.json").read_text())
    log_to_wandb({"kind": "wandb", "mode": "offline", "max_images": 2}, handmade_run, config,
                 document)
    raw = run_file(_runs(handmade_run)[0]).read_bytes()
    for leaked in (secret.encode(), b"tok-123456", b"hunter2", b"pw123"):
        assert leaked not in raw
    assert b"OPENAI_API_KEY" in raw  # a variable's name is not a secret


def test_a_wandb_session_logs_from_its_child_or_makes_no_run(handmade_run: Path) -> None:
    """W&B loads in a child process while a run works: logging through it makes the W&B
    run (and says how long the child took); a session closed before logging (the run
    failed) or bound to logger=none makes none."""
    from autojudge.report.wandb_session import WandbSession

    document = json.loads((handmade_run / "leaderboard.json").read_text())
    config = json.loads((handmade_run / "config.json").read_text())
    stopped = WandbSession()
    stopped.bind({"kind": "wandb", "mode": "offline"}, handmade_run)
    stopped.close()
    off = WandbSession({"kind": "none"}, handmade_run)
    assert off.proc is None and off.log(config, document) is None
    assert _runs(handmade_run) == []
    session = WandbSession({"kind": "wandb", "mode": "offline", "max_images": 2}, handmade_run)
    assert session.proc is not None
    logged = session.log(config, document)
    assert session.proc is None and set(session.timing) == {"warm-up", "set-up", "logging"}
    (run,) = _runs(handmade_run)
    assert Path(logged).resolve().is_relative_to(run.resolve())
    assert records(run_file(run))  # the child wrote the run's records
