"""Every range rule declared in the settings schema is enforced by pre-flight: a value just
outside each bound is refused in one line before any image is made, a value on the
bound passes, and what pre-flight accepts is accepted by the code that reads it later.

The rules are enumerated from the dataclasses
(`autojudge.experiment.rules.declared_rules`), so a rule added to the schema is walked
here without touching this file."""
from __future__ import annotations

import math

import pytest
from helpers import assert_one_line_error, never_generates, run_cli

from autojudge.cli.checks import check_composition
from autojudge.errors import AutojudgeError
from autojudge.experiment import pipeline
from autojudge.experiment.rules import (Declared, Distinct, OneOf, Range, SubsetOf,
                                       declared_rules)
from autojudge.experiment.schema import (AutojudgeConfig, BattlesConfig, rule_problems,
                                         typed_settings)

RULES = list(declared_rules(AutojudgeConfig))


NeverGenerates = never_generates()


def _literal(value) -> str:
    if isinstance(value, list):
        return "[" + ",".join(_literal(v) for v in value) + "]"
    return repr(value) if isinstance(value, float) else str(value)


def _outside(rule: Declared) -> list:
    """Values just outside each bound of `rule` (what pre-flight must refuse)."""
    r = rule.rule
    if isinstance(r, Range):
        values = []
        if r.low is not None:
            below = math.nextafter(r.low, -math.inf) if not rule.integer else r.low - 1
            values.append(int(r.low) if r.open_low and rule.integer else
                          r.low if r.open_low else below)
        if r.high is not None:
            above = math.nextafter(r.high, math.inf) if not rule.integer else r.high + 1
            values.append(r.high if r.open_high else above)
        return values
    if isinstance(r, OneOf):
        return ["no_such_" + r.values[0]]
    if isinstance(r, Distinct):
        return [[], [0, 0]]
    if isinstance(r, SubsetOf):
        return [["no_such_" + r.values[0]], [r.values[0], r.values[0]]]
    raise AssertionError(f"{rule.path}: a rule kind this test does not walk: {r!r}")


def _inside(rule: Declared) -> list:
    """Values on (or, for an open bound, just inside) each bound: accepted."""
    r = rule.rule
    if isinstance(r, Range):
        values = []
        if r.low is not None:
            values.append(math.nextafter(r.low, math.inf) if r.open_low else r.low)
        if r.high is not None:
            values.append(math.nextafter(r.high, -math.inf) if r.open_high else r.high)
        return [int(v) if rule.integer else float(v) for v in values]
    if isinstance(r, OneOf):
        return list(r.values)
    if isinstance(r, SubsetOf):
        return [[], list(r.values)]
    return [[0], [0, 1]]


def _overrides(rule: Declared, value) -> list[str]:
    if rule.when is None:
        return [f"{rule.path}={_literal(value)}"]
    other = getattr(rule.when.value, "value", rule.when.value)
    section = rule.path.rsplit(".", 1)[0]
    return [f"{section}.{rule.when.other}={other}", f"{rule.path}={_literal(value)}"]


CASES = [pytest.param(rule, value, id=f"{rule.path}{'|' + rule.when.reason if rule.when else ''}"
                      f"={_literal(value)}")
         for rule in RULES for value in _outside(rule)]


def test_the_schema_declares_the_rules_that_used_to_live_elsewhere() -> None:
    paths = {r.path for r in RULES}
    assert {"battles.bootstrap_rounds", "ratings.confidence", "gate.confidence",
            "gate.bootstrap_rounds", "report.min_battles", "executor.max_in_flight",
            "suite.seeds"} <= paths
    adaptive = [r for r in RULES if r.when is not None]
    assert [(r.path, r.rule.low) for r in adaptive] == [("battles.bootstrap_rounds", 10)]


@pytest.mark.parametrize("rule, value", CASES)
def test_preflight_refuses_a_value_just_outside_each_bound(compose, tmp_path, rule,
                                                           value) -> None:
    overrides = _overrides(rule, value)
    # the command line's pre-flight: this one line is printed with exit 2, no folder made
    problem = check_composition(overrides)
    assert problem is not None and problem.startswith(f"{rule.path}="), problem
    assert "\n" not in problem
    # the run's own pre-flight (multirun jobs, API callers): the same line, nothing made
    NeverGenerates.calls = 0
    base = ["logger=none", "progress=false", f"store.root={tmp_path / 'store'}",
            "model=[typeset]", f"+model.never={{kind: {NeverGenerates.kind}}}"]
    with pytest.raises(AutojudgeError) as info:
        pipeline.run(compose([*base, *overrides]), tmp_path / "run")
    assert str(info.value) == problem
    assert NeverGenerates.calls == 0
    assert not (tmp_path / "run").exists()
    assert not list((tmp_path / "store").rglob("*.png"))


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.path + ("|when" if r.when else ""))
def test_a_value_on_each_bound_is_accepted(compose, rule) -> None:
    for value in _inside(rule):
        assert rule_problems(compose(_overrides(rule, value))) == [], (rule.path, value)


def test_what_preflight_accepts_the_adaptive_scheduler_accepts(compose) -> None:
    """Pre-flight and the scheduler read one set of rules: the smallest accepted value
    builds a schedule, the largest refused one is refused by both with the same words."""
    from autojudge.experiment import build
    from autojudge.stages.adaptive import schedule_config

    cfg = compose(["battles.schedule=adaptive", "battles.bootstrap_rounds=10",
                   "battles.batch=1", "battles.max_battles=1", "battles.max_cost_usd=0"])
    settings = typed_settings(cfg)
    assert rule_problems(settings) == []
    schedule_config(settings.battles, None, build.rating_config(settings.ratings)).validate()
    settings.battles.bootstrap_rounds = 9
    problem = rule_problems(settings)
    assert problem == ["battles.bootstrap_rounds=9: adaptive scheduling needs >= 10 (set "
                       "battles.bootstrap_rounds=10 or more)"]
    with pytest.raises(AutojudgeError) as info:
        schedule_config(settings.battles, None, build.rating_config(settings.ratings)).validate()
    assert problem[0] in str(info.value)


def test_all_pairs_leaves_the_adaptive_rule_alone(compose) -> None:
    assert rule_problems(compose(["battles.bootstrap_rounds=5"])) == []
    assert BattlesConfig().bootstrap_rounds >= 10  # the default works with adaptive too


def test_adaptive_with_too_few_bootstrap_rounds_stops_before_any_image(tmp_path) -> None:
    store = tmp_path / "store"
    proc = run_cli(["autojudge", "battles.schedule=adaptive", "battles.bootstrap_rounds=5",
                    "logger=none"], cwd=tmp_path, env={"AUTOJUDGE_STORE": str(store)})
    assert proc.returncode == 2, proc.stderr
    assert_one_line_error(proc, "error: battles.bootstrap_rounds=5: adaptive scheduling "
                                "needs >= 10 (set battles.bootstrap_rounds=10 or more)")
    assert not list(store.rglob("*.png"))
    assert not (tmp_path / "runs").exists()
