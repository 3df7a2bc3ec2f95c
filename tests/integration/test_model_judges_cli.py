"""`python -m autojudge judge=[clip,aesthetic,ocr]` end to end with weights from local paths,
and the offline no-weights failure (one line, before any generation, no hub retry)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from helpers import assert_one_line_error, run_cli
from tiny_clip import TINY_ARCH, make_aesthetic_head, make_open_clip

pytestmark = pytest.mark.slow


class _HubSpy(BaseHTTPRequestHandler):
    """A stand-in model hub on 127.0.0.1 that records every request made to it."""

    requests: list[str] = []

    def _answer(self) -> None:
        self.requests.append(f"{self.command} {self.path}")
        self.send_response(503)
        self.end_headers()

    do_GET = do_HEAD = do_POST = _answer

    def log_message(self, *args) -> None:  # keep the test output clean
        pass


def test_clip_without_weights_offline_fails_before_generation(tmp_path):
    store = tmp_path / "store"
    _HubSpy.requests = []
    hub = ThreadingHTTPServer(("127.0.0.1", 0), _HubSpy)
    threading.Thread(target=hub.serve_forever, daemon=True).start()
    try:
        proc = run_cli(["autojudge", "model=[typeset,blank]", "judge=[clip,ocr]",
                        "suite.limit=2", "logger=none", f"store.root={store}",
                        f"hydra.run.dir={tmp_path / 'run'}"],
                       env={"HF_HUB_OFFLINE": "1",
                            "HF_ENDPOINT": f"http://127.0.0.1:{hub.server_port}"},
                       timeout=120)
    finally:
        hub.shutdown()
    assert_one_line_error(proc, "judge 'clip'", "judge.clip.pretrained=/path/to/")
    # refused from the settings alone: not one request to the hub, so no retry loop
    assert _HubSpy.requests == []
    assert "retry" not in proc.stderr.lower() and "Retrying" not in proc.stdout
    assert not any((store / "blobs").rglob("*.png")), "no image may be generated"


def test_clip_aesthetic_ocr_run_from_local_weights(tmp_path):
    from autojudge.judges.aesthetic import file_sha256

    config, weights = make_open_clip(tmp_path / "w")
    head = make_aesthetic_head(tmp_path / "w" / "head.pth", in_dim=16)
    backbone = [f"arch={TINY_ARCH}", f"model_config={config}", f"pretrained={weights}"]
    args = ["autojudge", "model=[typeset,blank,noise]", "judge=[clip,aesthetic,ocr]",
            "suite.limit=3", "logger=none", f"store.root={tmp_path / 'store'}",
            f"hydra.run.dir={tmp_path / 'run'}", "ratings.bootstrap_rounds=20", "progress=false",
            *[f"judge.clip.{b}" for b in backbone], *[f"judge.aesthetic.{b}" for b in backbone],
            f"judge.aesthetic.head={head}", f"judge.aesthetic.sha256={file_sha256(head)}"]
    proc = run_cli(args, env={"HF_HUB_OFFLINE": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((tmp_path / "run" / "leaderboard.json").read_text())
    judges = {b["judge"] for b in doc["boards"]}
    assert {"clip", "aesthetic", "ocr", "all"} <= judges
    stats = doc["run"]["judge_stats"]
    distinct = len({json.loads(line)["image_sha256"] for line in
                    (tmp_path / "run" / "generations.jsonl").read_text().splitlines()})
    # clip + aesthetic on one backbone: every distinct image through the image tower once
    assert stats["clip"]["backbone_images_encoded"] == distinct
    assert stats["aesthetic"]["backbone_images_encoded"] == distinct
    assert "images encoded" in proc.stdout
    scores = [json.loads(line) for line in (tmp_path / "run" / "scores.jsonl").read_text().splitlines()]
    clip_scores = [s for s in scores if s["judge"] == "clip"]
    assert len(clip_scores) == 9 and all(0 <= s["score"] <= 100 for s in clip_scores)
    assert all("truncated" in s["raw"] for s in clip_scores)
