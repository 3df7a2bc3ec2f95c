"""The OCR judge writes nothing under the home folder: onnxruntime's telemetry would put a
device id and an event database under ~/.cache/Microsoft/DeveloperTools on import."""
from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import io
from PIL import Image
from autojudge.generators.baselines import TypesetGenerator
from autojudge.judges.ocr import OCRJudge
from autojudge.types import GenRequest, Prompt

sign = Prompt(id="sign", text="a sign", expected_text="FRESH BREAD")
gen = TypesetGenerator("typeset", TypesetGenerator.Config(width=256, height=128, margin=16))
image = Image.open(io.BytesIO(gen.generate([GenRequest(sign, 0)])[0].image))
print(OCRJudge().read(image)[0])
"""


def _fresh_env(home) -> dict:
    """The caller's environment with a fresh HOME, and none of the variables that would
    move a HOME-derived folder elsewhere (so a write under home is not hidden)."""
    hidden = ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME",
              "ORT_DISABLE_TELEMETRY", "MPLCONFIGDIR")
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    return {**env, "HOME": str(home)}


def test_ocr_judge_writes_nothing_under_home(tmp_path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=_fresh_env(home),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "FRESH BREAD"  # the engine really ran
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*")) == []


def test_a_users_own_telemetry_setting_wins(monkeypatch) -> None:
    from autojudge.judges.ocr import no_onnxruntime_telemetry

    monkeypatch.setenv("ORT_DISABLE_TELEMETRY", "0")
    no_onnxruntime_telemetry()
    assert os.environ["ORT_DISABLE_TELEMETRY"] == "0"
    monkeypatch.delenv("ORT_DISABLE_TELEMETRY")
    no_onnxruntime_telemetry()
    assert os.environ["ORT_DISABLE_TELEMETRY"] == "1"
