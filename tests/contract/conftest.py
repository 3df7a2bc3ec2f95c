"""Contract tests: make the mixin modules importable and keep everything offline.

The mixins ship in `autojudge.testing` (for plugin authors outside this repository);
generator_contract.py and judge_contract.py here re-export them and are imported by plain
name, so this directory goes on sys.path whatever pytest's import mode.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# detailed assertion messages inside the shipped mixins too (before they are imported)
pytest.register_assert_rewrite("autojudge.testing.generator_contract",
                               "autojudge.testing.judge_contract")

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

# a failed hub lookup retries for ~47 s; contract tests never need the network
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def ocr_engine():
    """One RapidOCR engine per test module (loading it takes ~1 s on 2 cores)."""
    from autojudge.judges.ocr import OCRJudge

    return OCRJudge("ocr_engine_loader").engine
