"""Where generation and judging run: `executor=local` (default) or `executor=ray`.

An executor never writes the store: it turns batches into results (images, scores,
verdicts) and the driver commits them, batch by batch, with the same code either way
(`stages.generate.commit_outputs`, `stages.runner.JudgeRunner`). So resume, no
duplicates and nothing lost hold whatever runs the batches, and the leaderboard is the
same.

An executor offers:
    generation_dispatch(label, generator): None (run here) or a `stages.generate.Dispatch`.
    judge_compute(label, plugin, timeout_s): a compute for `JudgeRunner`
        (`executors.local.LocalCompute`; `timeout_s`: the limit on one call, or None).
    release(group, label): free that plugin's workers (its stage is done).
    close(): shut down whatever the executor started.

Example:
    >>> build_executor({"executor": {"kind": "local"}}, store=None).name
    'local'
"""
from __future__ import annotations

import difflib
from typing import Any, Mapping

from autojudge.errors import AutojudgeError

#: executor kind -> "module:attr" (imported only when chosen: ray is an extra)
EXECUTORS = {
    "local": "autojudge.executors.local:LocalExecutor",
    "ray": "autojudge.executors.ray:RayExecutor",
}


def build_executor(config: Mapping[str, Any], store: Any) -> Any:
    """The executor `config["executor"]` names (local when there is no such section).

    Args:
        config: the whole resolved run config (workers rebuild plugins from its nodes).
        store: the run's store (the Ray executor reads its blobs location).
    """
    import importlib

    section = dict(config.get("executor") or {})
    kind = str(section.get("kind") or "local")
    if kind not in EXECUTORS:
        close = difflib.get_close_matches(kind, list(EXECUTORS), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise AutojudgeError(f"executor.kind={kind!r} is unknown{hint}; choose "
                             f"{' or '.join(EXECUTORS)}, e.g. executor=ray")
    module, attr = EXECUTORS[kind].split(":")
    cls = getattr(importlib.import_module(module), attr)
    return cls() if kind == "local" else cls(config, store)
