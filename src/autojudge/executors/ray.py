"""executor=ray: generation and judging in Ray actors, one per GPU (or CPU slot).

    python -m autojudge executor=ray                                  # a local Ray
    python -m autojudge executor=ray executor.address=auto            # this machine's cluster
    python -m autojudge executor=ray executor.address=ray://head:10001 \\
        executor.resources.sd15.num_gpus=1 store.blobs=s3://bucket/autojudge

What stays on the driver (this process): the store and its index, the cache lookups
(only missing work is sent out), the judge runner (orientation, swap-debias, cost
metering, caching) and every write, committed batch by batch as results arrive. What
runs in the actors: the plugins' `generate`, `score` and `compare`, each actor holding
one plugin built from the same config node (weights load once per actor). See
`executors.ray_pool` for backpressure and worker loss, `executors.ray_worker` for how
images travel (object store bytes, or shared storage with `store.blobs`).
"""
from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

from autojudge.errors import AutojudgeError
from autojudge.executors.local import LocalCompute
from autojudge.runtime.extras import install_hint, missing_modules
from autojudge.types import JudgeItem, PairItem, RankItem

log = logging.getLogger(__name__)

_RESOURCE_KEYS = ("num_cpus", "num_gpus", "actors", "max_in_flight")


@dataclass(frozen=True)
class RaySettings:
    """The `executor` config section for kind `ray` (conf/executor/ray.yaml explains
    each key)."""

    # No defaults here: every value comes from the `executor` section, whose schema
    # (config.ExecutorConfig) holds each key's one default and range rule.
    address: str | None
    num_cpus: int | None
    num_gpus: int | None
    resources: Mapping[str, Mapping[str, Any]]
    kind_resources: Mapping[str, Mapping[str, Any]]
    default_num_cpus: float
    default_num_gpus: float
    max_in_flight: int
    window: int
    max_restarts: int
    max_task_retries: int
    transfer: str
    runtime_env: Mapping[str, Any]
    start_timeout_s: float
    log_to_driver: bool

    @classmethod
    def from_config(cls, section: Any) -> "RaySettings":
        """From the `executor` section: the typed `config.ExecutorConfig`, or a plain
        mapping of it. Absent keys take the schema's defaults, and each number is checked
        against the rule declared beside it there (their one home)."""
        import dataclasses

        from autojudge.experiment.rules import Range, declared_rules
        from autojudge.experiment.schema import ExecutorConfig

        given = dict(section) if isinstance(section, Mapping) else {
            f.name: getattr(section, f.name) for f in dataclasses.fields(section)}
        s = {**dataclasses.asdict(ExecutorConfig()), **given}
        for rule in declared_rules(ExecutorConfig):
            if isinstance(rule.rule, Range) and rule.rule.low is not None:
                s[rule.path] = _number(rule.path, s.get(rule.path), rule.rule.low,
                                       int if rule.integer else float, optional=rule.optional)
            else:  # e.g. transfer: one of a fixed set
                problem = rule.rule.problem(f"executor.{rule.path}", s.get(rule.path),
                                            rule.integer, rule.optional)
                if problem:
                    raise AutojudgeError(problem)
        for key in ("resources", "kind_resources", "runtime_env"):
            s[key] = dict(s.get(key) or {})
        s["address"] = s.get("address") or None
        s["log_to_driver"] = bool(s.get("log_to_driver"))
        names = {f.name for f in dataclasses.fields(cls)}
        settings = cls(**{k: v for k, v in s.items() if k in names})
        settings.validate()
        return settings

    def validate(self) -> None:
        for section, table in (("resources", self.resources),
                               ("kind_resources", self.kind_resources)):
            for name, res in table.items():
                res = dict(res or {})
                unknown = sorted(set(res) - set(_RESOURCE_KEYS))
                if unknown:
                    raise AutojudgeError(f"executor.{section}.{name}: unknown key "
                                         f"'{unknown[0]}'; known keys: "
                                         f"{', '.join(_RESOURCE_KEYS)}")
                for key, low, kind in (("num_cpus", 0, float), ("num_gpus", 0, float),
                                       ("actors", 1, int), ("max_in_flight", 1, int)):
                    if key in res:
                        _number(f"{section}.{name}.{key}", res[key], low, kind,
                                optional=key == "actors")

    def for_label(self, label: str, kind: str = "",
                  plugin_defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """num_cpus, num_gpus, actors (None: as many as fit), max_in_flight of a plugin:
        its label's `resources`, else its kind's `kind_resources`, else the plugin's own
        `pool_resources` (autojudge.sdk), else the defaults."""
        res = {**dict(plugin_defaults or {}), **dict(self.kind_resources.get(kind) or {}),
               **dict(self.resources.get(label) or {})}
        return {"num_cpus": float(res.get("num_cpus", self.default_num_cpus)),
                "num_gpus": float(res.get("num_gpus", self.default_num_gpus)),
                "actors": res.get("actors"),
                "max_in_flight": int(res.get("max_in_flight", self.max_in_flight))}


def _number(key: str, value: Any, low: float, kind: type = float,
            optional: bool = False) -> Any:
    """`value` as `kind` (int or float), at least `low`; else one line naming the key.
    (-1 is Ray's "forever" for restarts and retries, hence low=-1 there.)"""
    if value is None and optional:
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        number = kind(value)
        if kind is int and number != float(value):
            raise ValueError  # 2.5 workers
    except (TypeError, ValueError):
        kind_name = "a whole number" if kind is int else "a number"
        raise AutojudgeError(f"executor.{key}={value!r}: expected {kind_name} >= {low:g}"
                             + (" or null" if optional else "")) from None
    if number < low:
        raise AutojudgeError(f"executor.{key}={value!r}: must be >= {low:g}")
    return number


def require_ray() -> None:
    """One line naming the install command when Ray is not installed."""
    if missing_modules(("ray",)):
        raise AutojudgeError(f"executor=ray needs the [ray] extra: {install_hint('ray')} "
                             f"(not installed: ray)")


class RayExecutor:
    """Runs plugins' batches in Ray actor pools; the driver keeps the store (see module)."""

    name = "ray"

    def __init__(self, config: Mapping[str, Any], store: Any):
        require_ray()
        self.settings = RaySettings.from_config(config.get("executor") or {})
        self.config = config
        self.store = store
        self.transfer = self._resolve_transfer(store)
        for label in self.settings.resources:
            if label not in config.get("model", {}) and label not in config.get("judge", {}):
                raise AutojudgeError(f"executor.resources.{label}: no model or judge is "
                                     f"labelled '{label}'; use a label of this run")
        if self.settings.address:  # before any work; Ray retries an absent GCS for minutes
            check_reachable(self.settings.address)
        self._pools: dict[tuple[float, float], Any] = {}  # (cpus, gpus) per actor -> pool
        self._prefix = f"autojudge:{uuid.uuid4().hex[:8]}"
        self._made = 0  # pools started (their actors' names must never clash)
        self._told: set[tuple[str, str]] = set()
        # (group, label) -> the runner's limit on one plugin call, enforced in the worker
        self._call_timeouts: dict[tuple[str, str], float | None] = {}
        self._connected = self._started = self._lost = False
        self._watch: Any = None  # RayletWatch while connected

    def _resolve_transfer(self, store: Any) -> str:
        """auto: "shared" when the blobs live outside store.root (store.blobs was set),
        else "bytes"; a process-local memory:// store cannot be shared."""
        location = str(getattr(store, "blobs_location", "") or "")
        inside = store is None or location == str(store.root / "blobs")
        wanted = self.settings.transfer
        if wanted == "auto":
            wanted = "bytes" if inside or location.startswith("memory://") else "shared"
        if wanted == "shared" and (inside and store is not None
                                   or location.startswith("memory://")):
            raise AutojudgeError(f"executor.transfer=shared needs the images on storage "
                                 f"every worker reaches; set store.blobs to a shared path "
                                 f"or an s3:// / gs:// URL (now: {location})")
        return wanted

    # -- the executor protocol -----------------------------------------------------------

    def generation_dispatch(self, label: str, generator: Any) -> Any:
        """A `stages.generate.Dispatch` that runs the model's batches in its actor pool."""
        if self._runs_here("model", label):
            return None

        def dispatch(batches: list[list[Any]]) -> Iterator[tuple[int, Any]]:
            if not batches:  # all from the store: Ray is never started
                return
            makers = [lambda b=b: (b,) for b in batches]
            yield from self.imap("model", label, "generate", makers)

        return dispatch

    def judge_compute(self, label: str, plugin: Any, timeout_s: float | None = None) -> Any:
        """A judge's batches: here when it runs on the driver, else its worker pool; either
        way a call past `timeout_s` fails only its items (`stages.isolation`)."""
        if self._runs_here("judge", label):
            return LocalCompute(plugin, timeout_s)
        self._call_timeouts[("judge", label)] = timeout_s
        return RayCompute(self, label)

    def release(self, group: str, label: str) -> None:
        """The plugin's stage is done: its workers drop it (and its GPU memory), and
        stay up for the next plugin of the same shape."""
        for pool in self._pools.values():
            pool.unload()

    def close(self) -> None:
        if self._watch is not None:  # Ray stopping its raylet now is no loss
            self._watch.stop()
            self._watch = None
        if not self._lost:  # a lost cluster's actors went with it
            for pool in self._pools.values():
                pool.shutdown()
        self._pools.clear()
        if self._started:
            import ray

            try:
                ray.shutdown()
            except Exception as exc:  # noqa: BLE001  the run's own error comes first
                log.warning("executor=ray: shutting Ray down: %s", exc)
        self._started = self._connected = False

    # -- pools ---------------------------------------------------------------------------

    def _node(self, group: str, label: str) -> dict[str, Any]:
        node = dict(self.config[group][label])
        if group == "judge":
            from autojudge.stages.runner import RUNNER_KEYS

            for key in RUNNER_KEYS:  # the runner's, on the driver
                node.pop(key, None)
        return node

    def _runs_here(self, group: str, label: str) -> bool:
        """A plugin placed on the driver (autojudge.sdk `placement`, e.g. files on this
        disk) never goes to a pool."""
        from autojudge.sdk import placement_of

        return placement_of(self._plugin_cls(group, label)) == "driver"

    def _plugin_cls(self, group: str, label: str) -> Any:
        from autojudge.sdk.registry import GENERATORS, JUDGES

        registry = GENERATORS if group == "model" else JUDGES
        return registry.get(str(self._node(group, label).get("kind")))

    def imap(self, group: str, label: str, method: str, payloads: Sequence[Any]
             ) -> Iterator[tuple[int, Any]]:
        """Run a plugin's batches on the pool of its shape: (batch number, result) in
        completion order. Every Ray call of a run passes here, so a lost cluster becomes
        one line (`ray_lost.ClusterLost`) here."""
        from autojudge.executors.ray_lost import lost_cluster

        try:
            yield from self._imap(group, label, method, payloads)
        except AutojudgeError:
            raise
        except Exception as exc:
            lost = lost_cluster(exc, via_client=str(self.settings.address or "")
                                .startswith("ray://"))
            if lost is None:
                raise
            self._lost = True
            raise lost from None

    def _imap(self, group: str, label: str, method: str, payloads: Sequence[Any]
              ) -> Iterator[tuple[int, Any]]:
        from autojudge.executors.ray_pool import ActorPool, PoolShape
        from autojudge.executors.ray_worker import PluginSpec
        from autojudge.sdk import pool_resources_of

        self.connect()
        node = self._node(group, label)
        cls = self._plugin_cls(group, label)
        res = self.settings.for_label(label, str(node["kind"]), pool_resources_of(cls))
        shape = (res["num_cpus"], res["num_gpus"])
        if shape not in self._pools:
            for other in self._pools.values():  # free the slots a new shape needs
                other.shutdown()
            self._pools.clear()
            self._made += 1
            self._pools[shape] = ActorPool(PoolShape(
                res["num_cpus"], res["num_gpus"], self.settings.max_restarts,
                self.settings.max_task_retries, start_timeout_s=self.settings.start_timeout_s),
                name_prefix=f"{self._prefix}:{self._made}")
        size = self._pool_size(label, res, len(payloads) if group == "model" else None)
        if (group, label) not in self._told:  # judges call once per chunk of battles
            self._told.add((group, label))
            log.info("executor=ray: %d worker(s) for %s %s (%g CPU, %g GPU each)", size,
                     group, label, res["num_cpus"], res["num_gpus"])
        spec = PluginSpec(group, label, cls, node, self.transfer, self.store.blobs_location,
                          self._call_timeouts.get((group, label)))
        yield from self._pools[shape].imap(spec, size, method, payloads, res["max_in_flight"])

    def _pool_size(self, label: str, res: Mapping[str, Any], batches: int | None) -> int:
        """`actors` if set, else as many as the cluster's CPUs/GPUs hold (never more
        than there are batches); a need the cluster can never meet is one line."""
        import ray

        total = ray.cluster_resources()
        fits = []
        for key, name in (("num_cpus", "CPU"), ("num_gpus", "GPU")):
            need = float(res[key])
            if need <= 0:
                continue
            have = float(total.get(name, 0.0))
            if have < need:
                raise AutojudgeError(
                    f"executor.resources.{label}: each worker needs {need:g} {name} but the "
                    f"Ray cluster has {have:g}; lower it or join a bigger cluster "
                    f"(executor.address=...)")
            fits.append(int(math.floor(have / need)))
        size = int(res["actors"]) if res["actors"] else (min(fits) if fits else 1)
        if batches is not None and not res["actors"]:
            size = min(size, batches)
        return max(1, size)

    def connect(self) -> None:
        """Join executor.address, or start a local Ray (reused if one is running)."""
        if self._connected:
            return
        import ray

        if ray.is_initialized():  # a Ray the caller started (a notebook, the tests)
            self._connected = True
            self._watch_raylet()
            return
        s = self.settings
        kwargs: dict[str, Any] = {"log_to_driver": s.log_to_driver}
        if s.runtime_env:
            kwargs["runtime_env"] = dict(s.runtime_env)
        if s.address:
            kwargs["address"] = s.address
        else:  # "local": a new instance, never a cluster someone else started here
            kwargs.update(address="local", num_cpus=s.num_cpus, num_gpus=s.num_gpus,
                          include_dashboard=False, logging_level=logging.WARNING)
        try:
            ray.init(**kwargs)
        except Exception as exc:  # noqa: BLE001  any failure to join is one line
            where = f"the Ray cluster at {s.address}" if s.address else "a local Ray"
            raise AutojudgeError(f"executor=ray: cannot start or join {where} "
                                 f"({' '.join(str(exc).split())[:300]}); check "
                                 f"executor.address (auto, host:6379 or ray://host:10001) "
                                 f"and that `ray status` works there") from None
        self._connected = self._started = True
        self._watch_raylet()

    def _watch_raylet(self) -> None:
        from autojudge.executors.ray_lost import RayletWatch

        self._watch = RayletWatch()
        if not self._watch.start():
            self._watch = None

    def pids(self) -> list[int]:
        """Process ids of the live workers (tests kill one)."""
        return [pid for pool in self._pools.values() for pid in pool.pids()]


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """One line, at once, when nothing listens at a host:port or ray://host:port
    address ("auto" is resolved, and reported, by Ray itself)."""
    import socket

    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise AutojudgeError(f"executor=ray: nothing answers at {address} "
                             f"({exc.strerror or exc}); start Ray there (`ray start --head`, "
                             f"with --ray-client-server-port=10001 for ray://) or fix "
                             f"executor.address") from None


class RayCompute:
    """A judge runner's compute (`executors.local.LocalCompute` protocol) on an actor
    pool: batches go out as they fit (backpressure), results come back in any order."""

    def __init__(self, executor: RayExecutor, label: str):
        self.executor, self.label = executor, label
        self.parallelism = executor.settings.window
        self._stats: dict[int, Mapping[str, Any]] = {}  # worker pid -> its last numbers

    def map_score(self, batches: Sequence[Sequence[JudgeItem]]
                  ) -> Iterator[tuple[int, list[Any]]]:
        from autojudge.executors.ray_worker import wire_item

        if not batches:
            return
        transfer = self.executor.transfer
        makers = [lambda b=b: ([wire_item(it, transfer) for it in b],) for b in batches]
        for number, (scores, stats) in self.executor.imap("judge", self.label, "score",
                                                          makers):
            self._remember(stats)
            yield number, scores

    def map_compare(self, batches: Sequence[Sequence[PairItem]]
                    ) -> Iterator[tuple[int, list[Any]]]:
        yield from self._map("compare", wire_pairs, batches)

    def map_rank(self, batches: Sequence[Sequence[RankItem]]
                 ) -> Iterator[tuple[int, list[Any]]]:
        yield from self._map("rank", wire_groups, batches)

    def _map(self, method: str, wire: Any, batches: Sequence[Any]
             ) -> Iterator[tuple[int, list[Any]]]:
        """Batches of pairs or groups to the workers' `method`, each image sent once."""
        if not batches:
            return
        makers = [lambda b=b: wire(b, self.executor.transfer) for b in batches]
        for number, (verdicts, stats) in self.executor.imap("judge", self.label, method,
                                                            makers):
            self._remember(stats)
            yield number, verdicts

    def _remember(self, stats: Any) -> None:
        if stats is not None:
            pid, numbers = stats
            self._stats[pid] = numbers

    def run_stats(self) -> Any:
        """The plugin's run stats, summed over every worker that ran (a restarted
        worker's counts up to its last batch are kept)."""
        if not self._stats:
            return None
        return sum_stats(list(self._stats.values()))


def wire_pairs(pairs: Sequence[PairItem], transfer: str) -> tuple[list[Any], list[Any]]:
    """(pairs as (prompt, item a, item b) indices, the distinct items)."""
    from autojudge.executors.ray_worker import wire_sets

    ends, items = wire_sets([(p.a, p.b) for p in pairs], transfer)
    return [(p.prompt, a, b) for p, (a, b) in zip(pairs, ends)], items


def wire_groups(groups: Sequence[RankItem], transfer: str) -> tuple[list[Any], list[Any]]:
    """(groups as (prompt, item indices in slot order), the distinct items)."""
    from autojudge.executors.ray_worker import wire_sets

    ends, items = wire_sets([g.items for g in groups], transfer)
    return [(g.prompt, e) for g, e in zip(groups, ends)], items


def sum_stats(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Numbers summed key by key (nested dicts too); anything else: the last value."""
    total: dict[str, Any] = {}
    for part in parts:
        for key, value in dict(part).items():
            old = total.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float, dict)):
                total[key] = value
            elif isinstance(value, dict):
                total[key] = sum_stats([old, value]) if isinstance(old, dict) else dict(value)
            else:
                total[key] = (old if isinstance(old, (int, float)) else 0) + value
    return total
