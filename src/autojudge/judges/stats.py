"""Run-level numbers a judge reports beside its board (leaderboard.json `run.judge_stats`).

- pairwise judges whose plugin has `summarize_verdicts(verdicts)` (the VLM judge): computed
  over every verdict of the run, cached ones included: position-bias rate, failures, cost.
- pointwise judges whose plugin has `summarize()` (the CLIP judges): truncated prompts and
  the shared backbone's encode counts (images encoded vs served from the embedding cache).
"""
from __future__ import annotations

from typing import Any


def judge_run_stats(judge: Any) -> dict[str, Any] | None:
    """Stats of one built (wrapped) judge, or None when it has none to report."""
    inner = getattr(judge, "inner", None)
    summarize_verdicts = getattr(inner, "summarize_verdicts", None)
    if callable(summarize_verdicts):
        seen = getattr(judge, "seen", {}) or {}
        return summarize_verdicts([tv.verdict for tv in seen.values()])
    scorer = getattr(judge, "scorer", None)
    plugin = getattr(scorer, "inner", None)
    summarize = getattr(plugin, "summarize", None)
    if callable(summarize):
        return summarize()
    return None
