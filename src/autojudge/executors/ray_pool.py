"""A pool of long-lived Ray actors of one resource shape, fed with bounded batches.

- one actor per GPU (or CPU slot); each hosts one plugin at a time (`PluginWorker`), built
  on its first batch, so weights load once per plugin per worker and the process (with
  torch and friends imported) serves the next plugin of the same shape without a restart;
- backpressure: at most `max_in_flight` batches are queued per actor, and a batch's
  payload (e.g. its image bytes) is built only when it is sent, so the driver's memory
  and the object store hold a bounded window of the run;
- results come back in completion order; the caller commits each batch as it arrives;
- a worker process that dies is restarted by Ray (`max_restarts`) and its queued batches
  are sent again (`max_task_retries`); each batch names its plugin, so the restarted
  process builds the right one. If the actor is gone for good, its batches go to the
  pool's other actors (at most `resend` times each): a lost worker costs time, never
  results.

Example:
    >>> pool = ActorPool(PoolShape(num_gpus=1), name_prefix="autojudge:1a2b")  # doctest: +SKIP
    >>> for number, result in pool.imap(spec, 8, "generate", payloads):      # doctest: +SKIP
    ...     ...
"""
from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

from autojudge.errors import AutojudgeError
from autojudge.executors.ray_worker import ERROR, PluginSpec, PluginWorker

log = logging.getLogger(__name__)

#: builds one batch's call arguments (after the plugin spec) when the batch is sent
PayloadMaker = Callable[[], tuple[Any, ...]]


@dataclass(frozen=True)
class PoolShape:
    """What each actor of a pool holds, and how Ray keeps it alive.

    Attributes:
        num_cpus, num_gpus: Ray resources per actor.
        max_restarts, max_task_retries: Ray's actor fault tolerance.
        resend: how often a batch whose actor is gone for good goes to another actor.
        start_timeout_s: how long workers may take to start (resources, weights).
        options: any other `ray.remote` actor options.
    """

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    max_restarts: int = 3
    max_task_retries: int = 3
    resend: int = 2
    start_timeout_s: float = 600.0
    options: Mapping[str, Any] = field(default_factory=dict)


class ActorPool:
    """Actors of one shape, named `<prefix>:<i>` (see the module docstring)."""

    def __init__(self, shape: PoolShape, name_prefix: str = "autojudge"):
        self.shape = shape
        self.prefix = f"{name_prefix}:cpu{shape.num_cpus:g}-gpu{shape.num_gpus:g}"
        self.actors: list[Any] = []
        self.alive: list[bool] = []
        self._ready: set[tuple[int, tuple[str, str]]] = set()  # (actor, plugin) built
        self._specs: dict[tuple[str, str], Any] = {}  # plugin -> its spec in the store

    def grow(self, size: int) -> None:
        """Start actors until the pool has `size` (never shrinks: idle ones cost nothing
        but their slot, and the next plugin of this shape reuses them)."""
        s = self.shape
        remote = _remote_worker()
        while len(self.actors) < size:
            self.actors.append(remote.options(
                name=f"{self.prefix}:{len(self.actors)}", num_cpus=s.num_cpus,
                num_gpus=s.num_gpus, max_restarts=s.max_restarts,
                max_task_retries=s.max_task_retries, max_concurrency=1,
                **dict(s.options)).remote())
            self.alive.append(True)

    def imap(self, spec: PluginSpec, size: int, method: str, payloads: Sequence[PayloadMaker],
             max_in_flight: int = 2) -> Iterator[tuple[int, Any]]:
        """(batch number, result) for every batch, in completion order, on the first
        `size` live actors, each building `spec`'s plugin first if it must."""
        import ray

        self.grow(size)
        if spec.key not in self._specs:
            self._specs[spec.key] = ray.put(spec)  # sent once, not with every batch
        ref_spec = self._specs[spec.key]
        use = [i for i, ok in enumerate(self.alive) if ok][:max(1, size)]
        self._check_ready(spec, ref_spec, use)
        queue: deque[tuple[int, int]] = deque((n, 0) for n in range(len(payloads)))
        in_flight = {i: 0 for i in use}
        pending: dict[Any, tuple[int, int, int]] = {}  # ref -> (batch, actor, tries)
        args: dict[int, tuple[Any, ...]] = {}
        while queue or pending:
            while queue:
                actor = self._least_busy(in_flight, max_in_flight)
                if actor is None:
                    break
                number, tries = queue.popleft()
                if number not in args:
                    args[number] = payloads[number]()
                ref = getattr(self.actors[actor], method).remote(ref_spec, *args[number])
                pending[ref] = (number, actor, tries)
                in_flight[actor] += 1
            if not pending:
                raise self._all_dead(spec)
            done, _ = ray.wait(list(pending), num_returns=1)
            number, actor, tries = pending.pop(done[0])
            in_flight[actor] -= 1
            result = self._result(done[0], actor, spec)
            if result is _LOST:
                if tries >= self.shape.resend:
                    raise self._lost(spec, number)
                queue.append((number, tries + 1))
                continue
            args.pop(number, None)
            yield number, result

    def _least_busy(self, in_flight: dict[int, int], limit: int) -> int | None:
        """The live actor with the fewest queued batches, if it has room for one more."""
        live = [i for i in in_flight if self.alive[i]]
        if not live:
            return None
        best = min(live, key=lambda i: in_flight[i])
        return best if in_flight[best] < max(1, limit) else None

    def _check_ready(self, spec: PluginSpec, ref_spec: Any, use: list[int]) -> None:
        """Build the plugin on each actor about to get its batches, and raise one line if
        one cannot (e.g. missing weights on that machine) or never starts (no free
        resources), rather than fail every batch with the same message or wait forever."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        todo = [i for i in use if (i, spec.key) not in self._ready]
        if not todo:
            return
        what = f"{spec.group} '{spec.label}'"
        try:
            answers = ray.get([self.actors[i].ready.remote(ref_spec) for i in todo],
                              timeout=self.shape.start_timeout_s)
        except GetTimeoutError:
            raise AutojudgeError(
                f"executor=ray: the {len(todo)} worker(s) of {what} did not start within "
                f"{self.shape.start_timeout_s:g} s (each needs {self.shape.num_cpus:g} CPU, "
                f"{self.shape.num_gpus:g} GPU); free resources, lower "
                f"executor.resources.{spec.label}, or raise executor.start_timeout_s"
                ) from None
        except RayActorError as exc:
            raise AutojudgeError(f"executor=ray: a worker of {what} could not start: "
                                 f"{' '.join(str(exc).split())[:300]}") from None
        for answer in answers:
            if answer is not None:
                raise AutojudgeError(f"executor=ray: {answer[1]}")
        self._ready.update((i, spec.key) for i in todo)

    def _result(self, ref: Any, actor: int, spec: PluginSpec) -> Any:
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        try:
            result = ray.get(ref)
        except RayActorError as exc:  # restarts and task retries used up: gone for good
            self.alive[actor] = False
            log.warning("executor=ray: worker %s:%d is gone (%s); sending its batches of "
                        "%s %s to the others", self.prefix, actor,
                        " ".join(str(exc).split())[:200], spec.group, spec.label)
            return _LOST
        except RayTaskError as exc:  # a bug in a plugin: one line, as a local run says
            cause = getattr(exc, "cause", None) or exc
            raise AutojudgeError(f"executor=ray: {spec.group} '{spec.label}' failed in a "
                                 f"worker: {type(cause).__name__}: "
                                 f"{' '.join(str(cause).split())[:300]}") from None
        if isinstance(result, tuple) and len(result) == 2 and result[0] == ERROR:
            raise AutojudgeError(f"executor=ray: {result[1]}")
        return result

    def _all_dead(self, spec: PluginSpec) -> AutojudgeError:
        return AutojudgeError(
            f"executor=ray: every worker of {spec.group} '{spec.label}' died; run again "
            f"to redo only the missing work (see the Ray logs under "
            f"/tmp/ray/session_latest/logs, or raise executor.max_restarts)")

    def _lost(self, spec: PluginSpec, number: int) -> AutojudgeError:
        return AutojudgeError(
            f"executor=ray: batch {number} of {spec.group} '{spec.label}' was lost with "
            f"{self.shape.resend + 1} workers; run again to redo only the missing work")

    def unload(self) -> None:
        """Every actor drops its plugin (frees its GPU memory for the next plugin)."""
        import ray

        refs = [a.unload.remote() for a, ok in zip(self.actors, self.alive) if ok]
        try:
            ray.get(refs, timeout=60)
        except Exception:  # noqa: BLE001  a dead or stuck worker frees nothing anyway
            pass
        self._ready.clear()

    def pids(self) -> list[int]:
        """The live actors' process ids (for tests and debugging)."""
        import ray

        return ray.get([a.pid.remote() for a, ok in zip(self.actors, self.alive) if ok])

    def shutdown(self) -> None:
        """Kill the actors now (frees their slots for a pool of another shape)."""
        import ray

        for actor in self.actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001  already gone: nothing to free
                pass
        self.actors, self.alive, self._ready, self._specs = [], [], set(), {}


_LOST = object()


_REMOTE: list[Any] = []  # the actor class, made once per driver process


def _remote_worker() -> Any:
    """PluginWorker as a Ray actor class: its batches run one at a time (one plugin per
    process, never two batches at once on one GPU), while `pid` answers from a separate
    concurrency group, so a busy worker can still say who it is."""
    if _REMOTE:
        return _REMOTE[0]
    import ray

    class Worker(PluginWorker):
        @ray.method(concurrency_group="control")
        def pid(self) -> int:
            return super().pid()

    Worker.__name__ = Worker.__qualname__ = "PluginWorker"
    _REMOTE.append(ray.remote(concurrency_groups={"control": 1})(Worker))
    return _REMOTE[0]
