"""The plugin SDK: what a generator or judge plugin is, on one page.

A plugin is a class with a `kind` (the name it is registered under), a `version` and a
`Config` dataclass (its parameters, every field with a default). autojudge builds it as
`cls(label, config)` (`cls(label)` when it has no `Config`): `label` is the key in the
run's config (`model.<label>` / `judge.<label>`), `config` an instance of `Config`,
already type-checked by OmegaConf, so a misspelled key fails before any work.

Subclass one of the bases below and write only what is yours:

    Generator        generate(requests) -> [GenOutput]          one output per request
    PointwiseJudge   score(items) -> [Score]      + score_range  one score per image
    PairwiseJudge    compare(pairs) -> [Verdict]                 one verdict per pair

What the base gives every plugin (`Plugin`):

    fingerprint()    {"kind", "version", "params"}: `params` is the `Config` as a dict
                     minus the fields named in `non_semantic` (batch sizes, concurrency,
                     prices, devices: what never changes an output). Cached images,
                     scores and verdicts are keyed by its hash, so bump `version` when
                     the same params start giving other outputs. Override
                     `fingerprint_params()` when identity is more than the params (a
                     local file's digest, a resolved path, a prompt template's hash).
    batch_size       from `Config.batch_size` when there is one (refused unless >= 1),
                     else the class attribute; how many inputs one call prefers.
    where            "model 'label'" / "judge 'label'": how error messages start.
    check()          no-op; override to raise AutojudgeError (one line: what, where,
                     what to do) when the plugin cannot work at all (missing weights,
                     no API key), so the run fails before any work.
    repr             `Name(name='label', config=Config(...))`.

Hooks, each declared here with its default (override what applies):

    placement        "pool" (default: with executor=ray, batches run in a worker pool)
                     or "driver" (always in this process, e.g. files on this disk).
    pool_resources   default worker resources in a pool (num_cpus, num_gpus, actors,
                     max_in_flight); `executor.resources.<label>` overrides them. An API
                     client keeping its own concurrency says {"actors": 1}.
    concurrent_calls how many calls the local executor may run at once on threads
                     (default 1: one after another). More only for a plugin whose calls
                     wait on a network and share one bounded pool of requests, so the
                     next call's requests fill the slots the last one's tail leaves.
    Generator.cacheable         False when outputs depend on more than the request.
    Generator.cheap_to_remake   True when making an image again is free and gives the
                                same bytes (compare re-makes a damaged stored image).
    Generator.matching_requests(requests)   the cheap pre-flight hint: a RequestMatch
                     (how many requests can be served, one summary line); by default
                     every request. A run with none refuses; some gives a note.
    Judge.applies(prompt)       whether it has anything to say (default: True).
    Judge.needs                 `applies` in words, for the pre-flight refusal.
    Judge.validation_families   which controlled-pair families `autojudge.validate`
                                runs (text, alignment, quality); None = every family.
    Judge.card                  path of the judge card (what it measures, its biases).
    Judge.attach_cache(cache)   a `PluginCache`: vectors shared between judges by
                                (namespace, image sha); never the whole store.
    Judge.run_stats             None, or a method returning run-level numbers.
    pointwise        decided once by the base class (`is_pointwise`); the runner turns
                     scores into battles (`tie_margin`), pairwise verdicts are
                     swap-debiased (`swap`). A pairwise verdict may carry
                     raw["cost_usd"]: the runner meters it.

Rules the runners rely on: return exactly one output per input, in order; one bad input
is a typed `Failure` in its output, never an exception (raise only for what spoils every
input); outputs are deterministic for the same inputs and fingerprint.

Registration: `JUDGES.register("kind")(cls)` / `GENERATORS.register("kind")(cls)`, or an
entry point in the group `autojudge.judges` / `autojudge.generators`. A name already taken
(a built-in, another entry point, another class) is refused in one line.

Testing: `autojudge.testing` ships the contract mixins every built-in plugin passes
(`GeneratorContract`, `PointwiseJudgeContract`, `PairwiseJudgeContract`).

A plugin that does not subclass these bases but has the same attributes and methods (the
Protocols in `autojudge.judges.base` / `autojudge.generators.base`) works too: every
hook has the default given here. docs/sdk.md has a worked example.

Example:
    >>> from dataclasses import dataclass
    >>> class Gray(PointwiseJudge):
    ...     kind = "gray"
    ...     score_range = (0.0, 1.0)
    ...     non_semantic = ("batch_size",)
    ...     @dataclass
    ...     class Config:
    ...         gamma: float = 1.0
    ...         batch_size: int = 8
    ...     def score(self, items):
    ...         return []
    >>> judge = Gray("g")
    >>> judge.fingerprint()
    {'kind': 'gray', 'version': 1, 'params': {'gamma': 1.0}}
    >>> judge.batch_size, is_pointwise(judge), placement_of(judge)
    (8, True, 'pool')
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal, Mapping, Optional, Sequence

from autojudge.errors import AutojudgeError
from autojudge.sdk.registry import GENERATORS, JUDGES, Registry
from autojudge.types import GenOutput, GenRequest, JudgeItem, PairItem, Prompt, Score, Verdict

__all__ = ["Plugin", "Generator", "Judge", "PointwiseJudge", "PairwiseJudge", "PluginCache",
           "RequestMatch", "Placement", "PLACEMENTS", "is_pointwise", "placement_of",
           "pool_resources_of", "concurrent_calls_of", "judge_card", "validation_families_of",
           "cheap_to_remake", "GENERATORS", "JUDGES", "Registry"]

Placement = Literal["driver", "pool"]
PLACEMENTS = ("driver", "pool")
_RESOURCE_KEYS = ("num_cpus", "num_gpus", "actors", "max_in_flight")


class Plugin:
    """What every plugin shares: construction, fingerprint, common checks, repr."""

    #: the name it is registered under; it enters the fingerprint
    kind: ClassVar[str] = ""
    #: bump when the same params start giving other outputs (invalidates the cache)
    version: ClassVar[int] = 1
    #: the parameters: a dataclass, every field with a default (None: no parameters)
    Config: ClassVar[Optional[type]] = None
    #: Config fields that never change an output, left out of the fingerprint
    non_semantic: ClassVar[tuple[str, ...]] = ()
    #: how many inputs one call prefers, when Config has no `batch_size`
    batch_size: int = 1
    #: "pool": batches may run in an executor's worker pool; "driver": always here
    placement: ClassVar[str] = "pool"
    #: default worker resources in a pool (executor.resources.<label> overrides them)
    pool_resources: ClassVar[Mapping[str, Any]] = {}
    #: calls the local executor may run at once (threads); >1 only for plugins whose
    #: calls wait on a network and share one bounded request pool
    concurrent_calls: int = 1
    #: the config group, as error messages name it
    role: ClassVar[str] = "plugin"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        config = cls.__dict__.get("Config")
        if config is not None and dataclasses.is_dataclass(config):
            names = {f.name for f in dataclasses.fields(config)}
            unknown = [n for n in cls.non_semantic if n not in names]
            if unknown:  # a typo here would silently put a field into the fingerprint
                raise TypeError(f"{cls.__name__}.non_semantic names {unknown}, which are not "
                                f"fields of {cls.__name__}.Config")
        if cls.placement not in PLACEMENTS:
            raise TypeError(f"{cls.__name__}.placement={cls.placement!r}: use "
                            f"{' or '.join(PLACEMENTS)}")
        unknown = sorted(set(cls.pool_resources) - set(_RESOURCE_KEYS))
        if unknown:
            raise TypeError(f"{cls.__name__}.pool_resources: unknown key {unknown[0]!r}; "
                            f"known: {', '.join(_RESOURCE_KEYS)}")

    def __init__(self, name: str, config: Any = None):
        self.name = name
        config_cls = type(self).Config
        self.config = config if config is not None or config_cls is None else config_cls()
        if self.config is not None and hasattr(self.config, "batch_size"):
            size = self.config.batch_size
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise AutojudgeError(f"{self.where}: batch_size must be >= 1, got {size!r}")
            self.batch_size = int(size)

    @property
    def where(self) -> str:
        """How this plugin's error messages start, e.g. "judge 'ocr'"."""
        return f"{self.role} '{self.name}'"

    def fingerprint_params(self) -> dict[str, Any]:
        """The params that change outputs: the Config minus `non_semantic` fields."""
        if self.config is None:
            return {}
        params = dataclasses.asdict(self.config)
        for key in self.non_semantic:
            params.pop(key, None)
        return params

    def fingerprint(self) -> Mapping[str, Any]:
        """Name, version and output-changing params; its hash keys every cached output."""
        return {"kind": self.kind, "version": self.version, "params": self.fingerprint_params()}

    def check(self) -> None:
        """Raise AutojudgeError (one line) if the plugin cannot work at all; no-op here."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, config={self.config!r})"


@dataclass(frozen=True)
class RequestMatch:
    """A generator's cheap pre-flight answer: how many of a run's requests it can serve.

    Attributes:
        requests: requests asked about.
        matched: how many it can serve (0 refuses the run before any work).
        detail: what is missing and how to fix it, for the summary line.
    """

    requests: int
    matched: int
    detail: str = ""

    def summary(self, label: str) -> str:
        line = f"model.{label}: {self.matched} of {self.requests} requests can be served"
        return f"{line} ({self.detail})" if self.detail else line


class Generator(Plugin):
    """Base of generator plugins: implement `generate`."""

    role: ClassVar[str] = "model"
    #: False when outputs depend on more than the request (files on disk): never cached
    cacheable: ClassVar[bool] = True
    #: True when making an image again costs nothing and gives the same bytes
    cheap_to_remake: ClassVar[bool] = False

    def generate(self, requests: Sequence[GenRequest]) -> list[GenOutput]:
        """One GenOutput per request, in order; a failed request gets a typed Failure."""
        raise NotImplementedError(f"{type(self).__name__}.generate")

    def matching_requests(self, requests: Sequence[GenRequest]) -> Any:
        """Pre-flight hint, cheap and side-effect free: which requests can be served.
        A RequestMatch-like object (requests, matched, summary(label)); by default all."""
        return RequestMatch(len(requests), len(requests))


class PluginCache:
    """The narrow view of the store a plugin may use: vectors by (namespace, image sha).

    A namespace is the hash of whatever made the vectors (e.g. a CLIP backbone's
    fingerprint), so judges on one backbone share them and no other plugin's data is
    reachable. First write wins.
    """

    def __init__(self, store: Any):
        self._store = store

    def get_embeddings(self, namespace: str, image_shas: Sequence[str]) -> dict[str, Any]:
        """sha -> float32 vector for the shas stored under `namespace`."""
        return self._store.get_embeddings(namespace, image_shas)

    def put_embeddings(self, namespace: str, vectors: Mapping[str, Any]) -> None:
        self._store.put_embeddings(namespace, vectors)

    def get_questions(self, key: str) -> Optional[str]:
        """Text a judge derived once and keeps across runs (e.g. the questions an LLM
        wrote for a prompt), by a key the judge makes from what decided it."""
        return self._store.get_questions(key)

    def put_questions(self, key: str, payload: str) -> None:
        self._store.put_questions(key, payload)


class Judge(Plugin):
    """What pointwise and pairwise judges share; subclass one of them."""

    role: ClassVar[str] = "judge"
    #: decided by the base class (PointwiseJudge / PairwiseJudge), once
    pointwise: ClassVar[bool] = True
    #: what `applies` needs, in words, for the pre-flight refusal
    needs: Any = "prompts its applies() accepts"
    #: controlled-pair families `autojudge.validate` runs; None = every family
    validation_families: Any = None
    #: the judge card (a Markdown file), or None
    card: ClassVar[Optional[Path]] = None
    #: None, or a method returning run-level numbers for the report
    run_stats: Optional[Callable[[], Mapping[str, Any]]] = None
    #: the cache view given by `attach_cache` (None until the runner attaches one)
    cache: Optional[PluginCache] = None

    def applies(self, prompt: Prompt) -> bool:
        """Whether this judge has anything to say about images of `prompt`."""
        return True

    def attach_cache(self, cache: PluginCache) -> None:
        """Receive the run's cache view (vectors shared between judges)."""
        self.cache = cache

    def attach_store(self, store: Any) -> None:
        """What the runner calls today: hands the plugin the narrow view only."""
        self.attach_cache(store if isinstance(store, PluginCache) else PluginCache(store))


class PointwiseJudge(Judge):
    """Scores images one at a time (batched); higher is better. Implement `score`."""

    pointwise: ClassVar[bool] = True
    #: (low, high) bounds every score lies in; two images at `low` tie as "bothbad"
    score_range: ClassVar[tuple[float, float]] = (0.0, 1.0)

    def score(self, items: Sequence[JudgeItem]) -> list[Score]:
        """One Score per item, in order; a failed item gets Score(None, failure=...)."""
        raise NotImplementedError(f"{type(self).__name__}.score")


class PairwiseJudge(Judge):
    """Decides which of two images of one prompt is better. Implement `compare`."""

    pointwise: ClassVar[bool] = False

    def compare(self, pairs: Sequence[PairItem]) -> list[Verdict]:
        """One Verdict per pair (A = pair.a), in order; a failed pair gets a Failure."""
        raise NotImplementedError(f"{type(self).__name__}.compare")


# -- the hooks as the core reads them (SDK plugins and protocol-only plugins alike) ------

def _cls(plugin: Any) -> type:
    return plugin if isinstance(plugin, type) else type(plugin)


def is_pointwise(plugin: Any) -> bool:
    """Whether a judge (instance or class) scores images rather than comparing pairs."""
    if issubclass(_cls(plugin), Judge):
        return bool(_cls(plugin).pointwise)
    return callable(getattr(plugin, "score", None))


def placement_of(plugin: Any) -> str:
    """"driver" or "pool" (instance or class); a bad value is one line."""
    placement = getattr(plugin, "placement", "pool")
    if placement not in PLACEMENTS:
        raise AutojudgeError(f"plugin {_cls(plugin).__name__}: placement={placement!r}; use "
                             f"{' or '.join(PLACEMENTS)}")
    return str(placement)


def pool_resources_of(plugin: Any) -> dict[str, Any]:
    """The plugin's default worker resources in a pool (instance or class)."""
    return dict(getattr(plugin, "pool_resources", None) or {})


def concurrent_calls_of(plugin: Any) -> int:
    """How many calls of `plugin` may run at once in one process (>= 1); a bad value is
    one line."""
    calls = getattr(plugin, "concurrent_calls", 1)
    if isinstance(calls, bool) or not isinstance(calls, int) or calls < 1:
        raise AutojudgeError(f"plugin {_cls(plugin).__name__}: concurrent_calls={calls!r}; "
                             "use an int >= 1")
    return calls


def cheap_to_remake(plugin: Any) -> bool:
    """Whether a generator makes an image again for nothing, with the same bytes."""
    return bool(getattr(plugin, "cheap_to_remake", False))


def validation_families_of(plugin: Any, every: Sequence[str]) -> tuple[str, ...]:
    """The validation families a judge (instance) names, or `every` when it names none."""
    families = getattr(plugin, "validation_families", None)
    return tuple(families) if families else tuple(every)


def judge_card(plugin: Any) -> Path | None:
    """The judge card of a judge (instance or class), when it names one."""
    card = getattr(plugin, "card", None)
    return Path(card) if card else None
