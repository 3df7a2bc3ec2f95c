"""One judge card per built-in judge: the README sends users to judges/<kind>.md for what a
judge measures, its scale, its weights and its known biases, so a judge shipped without
one leaves them to read its source."""
from __future__ import annotations

import re

import pytest

from autojudge.runtime.resources import JUDGES_DIR
from autojudge.sdk.registry import JUDGES

#: the paragraphs every card opens (bold headings; vlm's is "Backend / weights")
SECTIONS = ("measures", "scale", "weights", "known biases")


def headings(text: str) -> list[str]:
    return [h.lower() for h in re.findall(r"^\*\*([^*]+)\*\*", text, flags=re.MULTILINE)]


def test_every_builtin_judge_kind_has_a_card() -> None:
    missing = [kind for kind in JUDGES.builtin_names()
               if not (JUDGES_DIR / f"{kind}.md").is_file()]
    assert not missing, f"no judge card judges/<kind>.md for {missing}"


@pytest.mark.parametrize("kind", JUDGES.builtin_names())
def test_card_names_its_kind_and_has_every_section(kind: str) -> None:
    text = (JUDGES_DIR / f"{kind}.md").read_text(encoding="utf-8")
    assert text.startswith(f"# Judge card: `{kind}`"), text.splitlines()[0]
    found = headings(text)
    for section in SECTIONS:
        assert any(section in h for h in found), (kind, section, found)
