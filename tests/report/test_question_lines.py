"""The report's prompt grid shows a question-based judge's questions and answers under
each image (the raw output of `dsg`, as scores.jsonl keeps it)."""
from __future__ import annotations

from autojudge.report.analysis import judge_cells


def test_each_question_and_its_answer_sit_under_the_image() -> None:
    raw = {"source": "geneval", "questions": [
        {"id": "1", "question": "Is there a cat?", "p_yes": 0.93, "gated": False,
         "score": 0.93},
        {"id": "2", "question": "Is the cat black?", "p_yes": 0.8, "gated": True,
         "score": 0.0},
        {"id": "3", "question": "Are there two dogs?", "p_yes": 0.12, "gated": False,
         "score": 0.12}]}
    scores = [{"judge": "dsg", "model": "m", "prompt_id": "p", "seed": 0, "score": 0.31,
               "raw": raw},
              {"judge": "clip", "model": "m", "prompt_id": "p", "seed": 0, "score": 0.25}]
    lines = judge_cells(["clip", "dsg"], scores, [])[("m", "p", 0)]
    assert lines == ["clip: 0.25", "dsg: 0.31", "  yes 0.93: Is there a cat?",
                     "  no (parent no) 0.80: Is the cat black?",
                     "  no 0.12: Are there two dogs?"]
