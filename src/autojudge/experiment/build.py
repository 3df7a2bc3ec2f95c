"""The one place that turns config into objects: suites, generators, judges, store.

Plugins are looked up by `kind` in the registries and validated against their own
`Config` dataclass, so `model.typeset.font_sise=3` fails before any work with a line that
names the label, the bad key and the keys that exist. The constructor convention
(`cls(label, config)`, or `cls(label)` without a `Config`) is the SDK's (`autojudge.sdk`).
"""
from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any, Callable, Mapping

from autojudge.errors import AutojudgeError
from autojudge.sdk.registry import GENERATORS, JUDGES, Registry
from autojudge.runtime.resources import SUITES_DIR, shipped
from autojudge.sdk import is_pointwise


def resolve_path(path: str | Path, what: str) -> Path:
    """A user path: as given (relative to the working directory), else a shipped resource
    (`prompt_suites/starter.yaml` is found inside an installed autojudge too)."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute() or candidate.exists():
        return candidate
    found = shipped(candidate)
    if found is not None:
        return found
    raise AutojudgeError(f"{what}: file not found: {path} (looked in {Path.cwd()} and among "
                         f"the shipped suites in {SUITES_DIR}); give an existing path")


def validate_params(cls: Any, params: Mapping[str, Any], where: str) -> Any:
    """Build `cls.Config` from `params`; unknown keys and wrong types are one-line errors."""
    config_cls = getattr(cls, "Config", None)
    if config_cls is None:
        if params:
            raise AutojudgeError(f"{where}: this plugin takes no parameters, got "
                                 f"{', '.join(sorted(params))}")
        return None
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    for key in params:
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise AutojudgeError(f"{where}: unknown key '{key}'{hint}; known keys: "
                                 f"{', '.join(fields) or 'none'}")
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        merged = OmegaConf.merge(OmegaConf.structured(config_cls), dict(params))
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        message = str(exc).splitlines()[0]
        raise AutojudgeError(f"{where}: {message}") from exc


def _plugin_node(group: str, label: str, node: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(node, Mapping):
        raise AutojudgeError(f"{group}.{label}: expected a mapping with a 'kind', got {node!r}; "
                             f"see conf/{group}/ for examples")
    params = dict(node)
    kind = params.pop("kind", None)
    if not kind:
        raise AutojudgeError(f"{group}.{label}: missing 'kind' (e.g. kind: typeset)")
    return str(kind), params


def build_plugin(registry: Registry, group: str, label: str, node: Any) -> Any:
    kind, params = _plugin_node(group, label, node)
    # a Ray worker's one-class table reads no entry points
    check = getattr(registry, "check_entry_points", None)
    if callable(check):
        check()  # a package reusing a taken name is refused here, in one line
    cls = registry.get(kind)
    config = validate_params(cls, params, f"{group}.{label} (kind {kind})")
    return cls(label, config) if config is not None else cls(label)


def expand_model_variants(config: Mapping[str, Any]) -> dict[str, Any]:
    """The run's `model` map with sweep variants expanded: a model whose node has a
    `sweep` key (or that `sweep.variants` names) becomes one model per combination of
    values, e.g. `sd15[guidance_scale=5]` (autojudge.sweeps.variants)."""
    from autojudge.sweeps.variants import expand_variants

    return expand_variants(config.get("model") or {},
                           (config.get("sweep") or {}).get("variants"))


def build_generators(models: Mapping[str, Any]) -> dict[str, Any]:
    """label -> generator, in config order."""
    if not models:
        raise AutojudgeError("no models chosen; pick some, e.g. model=[typeset,blank]")
    return {label: build_plugin(GENERATORS, "model", label, node) for label, node in models.items()}


def build_judges(judges: Mapping[str, Any], store: Any,
                 compute_for: Callable[[str, Any], Any] | None = None) -> dict[str, Any]:
    """label -> `stages.runner.JudgeRunner` around the plugin, in config order.

    The runner keys of a judge's config (`tie_margin` for pointwise judges, `swap` for
    pairwise ones, `call_timeout_s` for any) configure the runner; the rest is the
    plugin's own `Config`. `compute_for(label, plugin, timeout_s)`: where the plugin's batches run (an executor's
    `judge_compute`), handed to each runner as it is built; None: here."""
    from autojudge.stages.runner import RUNNER_KEYS, JudgeRunner

    if not judges:
        raise AutojudgeError("no judges chosen; pick some, e.g. judge=[ocr]")
    built = {}
    for label, node in judges.items():
        node = dict(node) if isinstance(node, Mapping) else node
        runner_keys = {k: node.pop(k) for k in RUNNER_KEYS
                       if isinstance(node, dict) and k in node}
        judge = build_plugin(JUDGES, "judge", label, node)
        settings = runner_settings(label, runner_keys, is_pointwise(judge))
        built[label] = JudgeRunner(label, judge, store, settings,
                                   compute_for(label, judge, settings.timeout_s)
                                   if compute_for else None)
        if settings.k > 2:
            _check_kwise(label, judge, built[label].compute)
    return built


def _check_kwise(label: str, judge: Any, compute: Any) -> None:
    """`judge.<label>.k` > 2 needs a plugin that ranks and a compute that can ask it."""
    if not callable(getattr(judge, "rank", None)):
        raise AutojudgeError(f"judge.{label}.k: {type(judge).__name__} cannot rank k images "
                             "in one call (no rank method); use k=2, or a judge that ranks "
                             "(vlm)")
    if not callable(getattr(compute, "map_rank", None)):
        raise AutojudgeError(f"judge.{label}.k > 2: this executor's compute "
                             f"({type(compute).__name__}) cannot send rankings (no map_rank); "
                             f"use executor=local or executor=ray, or judge.{label}.k=2")


def runner_settings(label: str, keys: Mapping[str, Any], pointwise: bool) -> Any:
    """RunnerSettings from a judge's runner keys; a wrong key or value is one line."""
    from autojudge.stages.runner import RunnerSettings

    wrong = "swap" if pointwise and "swap" in keys else \
        "tie_margin" if not pointwise and "tie_margin" in keys else None
    if wrong:
        kind = "pointwise" if pointwise else "pairwise"
        raise AutojudgeError(f"judge.{label}.{wrong}: does not apply to a {kind} judge; "
                             "remove it (tie_margin is for pointwise judges, swap for "
                             "pairwise ones)")
    margin = keys.get("tie_margin", 0.0)
    try:
        margin = float(margin)
    except (TypeError, ValueError):
        raise AutojudgeError(f"judge.{label}.tie_margin: {margin!r} is not a number; give a "
                             f"score difference >= 0, e.g. judge.{label}.tie_margin=0.02"
                             ) from None
    if not margin >= 0 or margin != margin or margin == float("inf"):
        raise AutojudgeError(f"judge.{label}.tie_margin: must be a finite number >= 0, got "
                             f"{margin:g}; e.g. judge.{label}.tie_margin=0.02")
    swap = keys.get("swap", True)
    if not isinstance(swap, bool):
        raise AutojudgeError(f"judge.{label}.swap: must be true or false, got {swap!r}")
    k = keys.get("k", 2)
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= 8:
        raise AutojudgeError(f"judge.{label}.k: must be an integer from 2 to 8 (images per "
                             f"call), got {k!r}")
    if pointwise and k != 2:
        raise AutojudgeError(f"judge.{label}.k: a pointwise judge scores one image at a time; "
                             "k applies to judges that rank images (e.g. vlm)")
    return RunnerSettings(tie_margin=margin, swap=swap, k=k,
                          timeout_s=call_timeout(label, keys.get("call_timeout_s")))


def call_timeout(label: str, value: Any) -> float | None:
    """`judge.<label>.call_timeout_s`: seconds one call of the plugin (one batch) may take
    before its items fail as `judge_timeout`; null waits as long as it takes."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if isinstance(value, bool) or not 0 < seconds < float("inf"):
        raise AutojudgeError(f"judge.{label}.call_timeout_s: must be a number of seconds > 0 "
                             f"(or null: no limit), got {value!r}; e.g. "
                             f"judge.{label}.call_timeout_s=120")
    return seconds


def load_suite_from_config(suite_cfg: Any, judges: Any = None) -> Any:
    """The suite `suite_cfg` selects; `judges` (a suites.JudgeScope) narrows it to the
    prompts they apply to."""
    from omegaconf import OmegaConf
    from omegaconf.errors import MissingMandatoryValue

    from autojudge.suites.load import load_suite

    try:
        path = suite_cfg.path
    except MissingMandatoryValue:
        raise AutojudgeError(f"suite '{OmegaConf.select(suite_cfg, 'name')}' needs a path: add "
                             f"suite.path=/path/to/file") from None
    return load_suite(resolve_path(path, f"suite '{suite_cfg.name}'"), fmt=suite_cfg.format,
                      name=suite_cfg.name, tags=list(suite_cfg.tags),
                      exclude_tags=list(suite_cfg.exclude_tags), limit=suite_cfg.limit,
                      seeds=None if suite_cfg.seeds is None else list(suite_cfg.seeds),
                      judges=judges)


def rating_config(ratings_cfg: Any) -> Any:
    from autojudge.ratings import RatingConfig

    values = {"bootstrap_rounds": int(ratings_cfg.bootstrap_rounds),
              "seed": int(ratings_cfg.seed), "confidence": float(ratings_cfg.confidence),
              "anchor": ratings_cfg.anchor}
    if ratings_cfg.prior is not None:
        values["prior"] = float(ratings_cfg.prior)
    return RatingConfig(**values)
