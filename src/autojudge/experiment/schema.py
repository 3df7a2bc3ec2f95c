"""Typed schemas for the Hydra config, registered once in Hydra's ConfigStore.

The top level and the fixed sections (suite, battles, ratings, store, report, logger) are
structured configs, so a misspelled key fails at composition with Hydra's own message.
`model` and `judge` are maps of label -> plugin params; each plugin validates its own
params against its `Config` dataclass in `autojudge.experiment.build`.

Each setting's type, default and range rule live together here (`ranged(default, Range)`,
cross-field rules as a section's `RULES`; `autojudge.experiment.rules`): pre-flight checks
them all (`rule_problems`), and the run reads the typed tree (`typed_settings`),
never a second copy of a default.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar, Dict, List, Mapping, Optional

from omegaconf import MISSING

from autojudge.experiment.rules import Distinct, OneOf, Range, SubsetOf, When, check_rules, ranged
from autojudge.runtime import resources
from autojudge.style import FEATURES


class FailedImage(Enum):
    skip = "skip"
    loss = "loss"


class Schedule(Enum):
    all_pairs = "all_pairs"
    adaptive = "adaptive"


class OverallWeighting(Enum):
    equal = "equal"  # every judge weighs the same on the overall board
    battles = "battles"  # raw pooling: a judge weighs as much as the battles it made


class Correction(Enum):
    holm = "holm"
    none = "none"


class Images(Enum):
    link = "link"  # images/<model>/<prompt>_s<seed>.png link into the store
    copy = "copy"  # copies: the run folder outlives the store
    none = "none"


class Preference(Enum):
    imgsys = "imgsys"  # imgsys' calculate_elo.py: 0 = model_a won, 1 = model_b, else tie
    a_score = "a_score"  # the number is model_a's score: 1 won, 0 lost, 0.5 tie


def enum_value(value: Any) -> Any:
    """An Enum member's value (what YAML and the command line say), anything else as is."""
    return value.value if isinstance(value, Enum) else value


@dataclass
class SuiteConfig:
    """Which prompts to run: a suite file plus filters."""

    name: str = "starter"
    path: str = MISSING  # each suite's file sets it; partiprompts/geneval need suite.path
    format: str = "auto"  # auto | autojudge | parti | geneval
    tags: List[str] = field(default_factory=list)
    exclude_tags: List[str] = field(default_factory=list)
    limit: Optional[int] = ranged(None, Range(low=1))
    # None: the suite file's seeds (default [0])
    seeds: Optional[List[int]] = ranged(None, Distinct("[0,1,2]"))
    # generate only for prompts some selected judge applies to (limit counts those);
    # false: every selected prompt, also those no judge looks at
    only_judged: bool = True


@dataclass
class BattlesConfig:
    """How generations become battles.

    failed_image: what a battle does when one side's image failed: "skip" leaves the
    battle out (failures show as the model's failure rate), "loss" counts it as a loss
    for the failed side. Both failed is always skipped: nobody gets a free win.

    schedule: "all_pairs" (default: every pair on every prompt) or "adaptive" (judge in
    batches where rating uncertainty shrinks most, stop at target_ci_width or a budget;
    see autojudge.ratings.scheduling and docs/statistics.md).
    """

    failed_image: FailedImage = FailedImage.skip
    schedule: Schedule = Schedule.all_pairs
    # adaptive: stop when every CI is this narrow (Elo)
    target_ci_width: float = ranged(100.0, Range(low=0, open_low=True,
                                                 what="a width in Elo points"))
    max_battles: Optional[int] = ranged(None, Range(low=1))  # adaptive: budget per judge
    # adaptive: cost budget per judge
    max_cost_usd: Optional[float] = ranged(None, Range(low=0, what="a dollar amount"))
    # None: the judge's own, else 0
    cost_per_battle_usd: Optional[float] = ranged(None, Range(low=0, what="a dollar amount"))
    batch: int = ranged(32, Range(low=1))  # adaptive: battles judged between refits
    # adaptive: bootstrap rounds of each in-loop refit
    bootstrap_rounds: int = ranged(100, Range(low=1))

    # a few-round bootstrap has no spread to steer by (autojudge.ratings.scheduling)
    RULES: ClassVar[tuple[When, ...]] = (
        When("bootstrap_rounds", Range(low=10), "schedule", Schedule.adaptive,
             "adaptive scheduling"),)


@dataclass
class RatingsConfig:
    """How boards are rated (docs/statistics.md): BT + prompt-clustered bootstrap."""

    bootstrap_rounds: int = ranged(1000, Range(low=0))
    seed: int = 0
    # the CI level of every board, interval and schedule of the run
    confidence: float = ranged(0.95, Range(low=0, high=1, open_low=True, open_high=True))
    # None: the ratings module's documented default
    prior: Optional[float] = ranged(None, Range(low=1e-6, high=1e6,
                                                null="the ratings module's default 0.1"))
    anchor: Optional[str] = None
    overall_weighting: OverallWeighting = OverallWeighting.equal  # the "all" board
    overall_includes_human: bool = False  # human votes pooled into the "all" board too
    # per-image style features held fixed in a second, "style-controlled" board per judge
    # (docs/statistics.md, "Style control"); [] = none
    # (text_area needs an ocr judge: the share of the image its boxes cover)
    control: List[str] = field(default_factory=list,
                               metadata={"rule": SubsetOf(FEATURES)})


@dataclass
class StoreConfig:
    root: str = "~/.cache/autojudge"
    # where the images live: None = <root>/blobs (or what the store's index recorded);
    # a shared path or fsspec URL (s3://bucket/prefix) lets Ray workers read/write them
    blobs: Optional[str] = None


@dataclass
class ReportConfig:
    # per-tag boards only for tags with this many prompts
    per_tag_min_prompts: int = ranged(5, Range(low=1))
    terminal_tags: bool = True  # print the per-tag rating matrix
    # fewer battles: the model is flagged "provisional"
    min_battles: int = ranged(20, Range(low=0))
    write_scores: bool = True
    images: Images = Images.link  # the run's images, browsable from the run folder
    html: bool = True  # report.html + plots/*.png at the end of every run
    thumbnail_px: int = 160  # longest side of the images embedded in report.html
    max_prompts: int = 100  # per-prompt image grids shown (bounds the file's size)


@dataclass
class LoggerConfig:
    kind: str = "none"  # none | wandb
    project: str = "autojudge"
    entity: Optional[str] = None
    mode: str = "offline"  # offline | online | disabled | auto (online when logged in)
    tags: List[str] = field(default_factory=list)
    group: Optional[str] = None  # None: a multirun groups its jobs under the sweep folder
    max_images: int = 200  # distinct images logged (battle table + prompt grids)
    image_px: int = 256  # longest side of a logged image (0: as generated)
    max_battle_rows: int = 2000  # rows of the battle table
    artifact: bool = True  # the run folder's outputs as a versioned artifact


@dataclass
class GateConfig:
    """In-run release gate: with baseline and candidate set, `python -m autojudge` exits 1
    on a regression (after writing every output), like `python -m autojudge.gate`."""

    baseline: Optional[str] = None
    candidate: Optional[str] = None
    judges: List[str] = field(default_factory=list)  # empty: every judge of the run
    tags: List[str] = field(default_factory=list)
    confidence: float = ranged(0.95, Range(low=0, high=1, open_low=True, open_high=True))
    # tolerated regression, Elo points (non-inferiority margin)
    margin: float = ranged(25.0, Range(low=0, what="a number of Elo points"))
    allow_inconclusive: bool = False
    min_prompts: int = ranged(10, Range(low=1))
    correction: Correction = Correction.holm  # family-wise error of REGRESSION claims
    # fewer rounds make the tails that decide too coarse
    bootstrap_rounds: Optional[int] = ranged(None, Range(
        low=200, null="ratings.bootstrap_rounds (at least 200)"))
    # style features held fixed in the gate's comparison (each must be in ratings.control,
    # which writes them into the battle log); [] = plain ratings
    control: List[str] = field(default_factory=list, metadata={"rule": SubsetOf(FEATURES)})


@dataclass
class SweepConfig:
    """The objective a sweep optimises (autojudge.sweeps.variants, docs/sweeps.md): off unless
    `reference` names a model; higher is better."""

    # model label -> {param: [values]}: the model becomes one variant per combination
    # (also written as a `sweep` key inside the model's own node)
    variants: Dict[str, Any] = field(default_factory=dict)
    reference: Optional[str] = None  # fixed model every job is measured against
    target: Optional[str] = None  # the tuned model (None: the one model besides reference)
    objective: str = "rating"  # rating (Elo diff) | win_rate (head-to-head) | score
    judge: str = "all"  # whose board or battles
    tag: Optional[str] = None  # a per-tag board / battles with this tag only
    cost_weight: float = 0.0  # objective -= cost_weight x $/image of the target
    max_cost_per_image_usd: Optional[float] = None  # above it: -inf (out of budget)


@dataclass
class HumanVotesConfig:
    """Human votes imported as judge "human" (Arena log or imgsys export)."""

    path: Optional[str] = None
    preference: Preference = Preference.imgsys  # how numeric `preference` values read
    models: Dict[str, str] = field(default_factory=dict)  # vote name -> run model label


@dataclass
class ExecutorConfig:
    """Where generation and judging run (conf/executor/*.yaml, autojudge.executors):
    "local" (this process) or "ray" (actor pools; the driver alone writes the store).
    Every key but `kind` is read by the Ray executor only."""

    kind: str = "local"
    address: Optional[str] = None  # null: start a local Ray; auto; host:6379; ray://host:10001
    num_cpus: Optional[int] = ranged(None, Range(low=1, what=""))  # local Ray's (null: all)
    num_gpus: Optional[int] = ranged(None, Range(low=0, what=""))  # local Ray's (null: all)
    # label -> {num_cpus, num_gpus, actors, max_in_flight} per worker
    resources: Dict[str, Any] = field(default_factory=dict)
    # plugin kind -> the same, over the plugin's own `pool_resources` (autojudge.sdk);
    # where a plugin runs (driver or pool) is its `placement`, not a setting
    kind_resources: Dict[str, Any] = field(default_factory=dict)
    # per worker, for labels not in `resources`
    default_num_cpus: float = ranged(1.0, Range(low=0, what=""))
    default_num_gpus: float = ranged(0.0, Range(low=0, what=""))
    # batches queued per worker (backpressure)
    max_in_flight: int = ranged(2, Range(low=1, what=""))
    window: int = ranged(64, Range(low=1, what=""))  # judge batches per runner call
    # Ray restarts of a dead worker, and retries of its batches (-1: Ray's "forever")
    max_restarts: int = ranged(3, Range(low=-1, what=""))
    max_task_retries: int = ranged(3, Range(low=-1, what=""))
    # auto | bytes (object store) | shared (store.blobs)
    transfer: str = ranged("auto", OneOf(("auto", "bytes", "shared")))
    runtime_env: Dict[str, Any] = field(default_factory=dict)  # passed to ray.init
    start_timeout_s: float = ranged(600.0, Range(low=1, what=""))
    log_to_driver: bool = False  # workers' stdout/stderr on this console


@dataclass
class AutojudgeConfig:
    name: str = "run"
    model: Dict[str, Any] = field(default_factory=dict)
    judge: Dict[str, Any] = field(default_factory=dict)
    suite: SuiteConfig = field(default_factory=SuiteConfig)
    battles: BattlesConfig = field(default_factory=BattlesConfig)
    ratings: RatingsConfig = field(default_factory=RatingsConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    human_votes: HumanVotesConfig = field(default_factory=HumanVotesConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    progress: bool = True


def rule_problems(settings: Any) -> list[str]:
    """Every declared rule `settings` breaks (the typed tree or the composed OmegaConf
    node), one line each: what pre-flight refuses."""
    return check_rules(settings, AutojudgeConfig)


def rule_of(section: type, name: str) -> Any:
    """The rule declared on `section.name` (e.g. the gate's minimum bootstrap rounds)."""
    import dataclasses

    return next(f.metadata["rule"] for f in dataclasses.fields(section) if f.name == name)


def typed_settings(config: Any) -> AutojudgeConfig:
    """The run's typed settings tree from the composed config (an OmegaConf node or its
    plain, resolved dict): every section an instance of its dataclass, so readers get
    the schema's types and defaults; `model` and `judge` stay maps of plain params."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from autojudge.errors import AutojudgeError
    from autojudge.experiment.preflight import unknown_keys

    plain = OmegaConf.to_container(config, resolve=True) if OmegaConf.is_config(config) \
        else dict(config)
    if not isinstance(plain, Mapping):
        raise TypeError(f"a config mapping is needed, got {type(plain).__name__}")
    problems = unknown_keys(plain)
    if problems:
        raise AutojudgeError(f"{problems[0]}; remove it or fix its spelling")
    try:
        settings = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(AutojudgeConfig),
                                                       plain))
    except OmegaConfBaseException as exc:  # a value of the wrong type, set from Python
        key = getattr(exc, "full_key", "") or "config"
        raise AutojudgeError(f"{key}: {str(exc).splitlines()[0]}") from None
    assert isinstance(settings, AutojudgeConfig)
    return settings


def stored_section(config: Mapping[str, Any] | None, name: str) -> Any:
    """Section `name` of a stored run config (config.json, a sweep job's .hydra) as its
    typed dataclass: keys this version does not know are left out and absent ones take
    the schema's defaults, so an older run folder reads with today's meaning."""
    import dataclasses
    import typing

    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from autojudge.errors import AutojudgeError

    cls = typing.get_type_hints(AutojudgeConfig)[name]
    known = {f.name for f in dataclasses.fields(cls)}
    given = {k: v for k, v in dict((config or {}).get(name) or {}).items() if k in known}
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), given))
    except OmegaConfBaseException as exc:
        raise AutojudgeError(f"stored config, {name}: {str(exc).splitlines()[0]}") from None


def register_configs() -> None:
    """Make the schemas available to the defaults list: `- base_config`, and one schema
    per built-in plugin kind (`- /schema/model/fal@flux_schnell` in a model file), so a
    config file holds only what differs from its plugin's `Config` defaults and every
    value is type-checked when Hydra composes."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    if _REGISTERED and store.repo.get("base_config.yaml") is _REGISTERED[0]:
        return  # once per process: building every schema costs a second
    store.store(name="base_config", node=AutojudgeConfig)
    from autojudge.sdk.registry import GENERATORS, JUDGES

    for group, registry in (("model", GENERATORS), ("judge", JUDGES)):
        for kind in registry.builtin_names():
            schema = plugin_schema(kind, registry.get(kind), judge=group == "judge")
            if schema is not None:
                store.store(group=f"schema/{group}", name=kind, node=schema)
    _REGISTERED[:] = [store.repo.get("base_config.yaml")]


_REGISTERED: list[Any] = []  # the stored base config node, while it is still the store's


def register_plugin_schemas() -> None:
    """Schemas for the installed plugins' kinds too (entry points), so a third-party
    plugin's YAML can say `- /schema/judge/KIND@LABEL` and its params are type-checked when
    Hydra composes, as a built-in's are. Called before an experiment is composed, not at
    import: reading entry points imports the plugins' modules, which `--help` must not.
    A name taken twice is one AutojudgeError line; a plugin whose package cannot be imported
    is left out here and named in its own line when a run uses it."""
    from hydra.core.config_store import ConfigStore

    from autojudge.errors import AutojudgeError
    from autojudge.sdk.registry import GENERATORS, JUDGES

    store = ConfigStore.instance()
    for group, registry in (("model", GENERATORS), ("judge", JUDGES)):
        registry.check_entry_points()
        for kind in sorted(set(registry.names()) - set(registry.builtin_names())):
            try:
                cls = registry.get(kind)
            except AutojudgeError:
                continue
            schema = plugin_schema(kind, cls, judge=group == "judge")
            if schema is not None:
                store.store(group=f"schema/{group}", name=kind, node=schema)


def plugin_schema(kind: str, cls: Any, judge: bool = False) -> Any:
    """A structured config for one plugin kind: `kind`, every `Config` field with its
    default, and for judges the runner's keys (`tie_margin` for pointwise judges, `swap`
    for pairwise ones). None for a plugin without a `Config` dataclass."""
    import dataclasses
    import typing

    config_cls = getattr(cls, "Config", None)
    if config_cls is None or not dataclasses.is_dataclass(config_cls):
        return None
    hints = typing.get_type_hints(config_cls)
    fields: list[tuple[str, Any, Any]] = [("kind", str, field(default=kind))]
    for f in dataclasses.fields(config_cls):
        if f.default is not dataclasses.MISSING:
            default = field(default=f.default)
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = field(default_factory=f.default_factory)  # type: ignore[misc]
        else:
            default = field(default=MISSING)
        fields.append((f.name, hints[f.name], default))
    from autojudge.sdk import is_pointwise

    if judge and is_pointwise(cls):
        fields.append(("tie_margin", float, field(default=0.0)))
    elif judge:
        fields.append(("swap", bool, field(default=True)))
        if callable(getattr(cls, "rank", None)):  # images per call (stages.kwise)
            fields.append(("k", int, field(default=2)))
    if judge:  # the runner's limit on one call of the plugin (None: no limit)
        fields.append(("call_timeout_s", Optional[float], field(default=None)))
    return dataclasses.make_dataclass(f"{cls.__name__}Schema", fields)


# The shipped Hydra config folder (inside the installed package, or the checkout's conf/).
CONF_DIR = resources.CONF_DIR


def compose(overrides: list[str] | tuple[str, ...] = ()) -> Any:
    """The experiment config for `overrides`, exactly as `python -m autojudge` composes it
    (for notebooks and tests; `hydra:` keys are left out).

    Example:
        >>> cfg = compose(["model=[typeset,blank]", "logger=none"])
        >>> sorted(cfg.model)
        ['blank', 'typeset']
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides))
