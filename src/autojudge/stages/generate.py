"""Generate stage: (model, prompt, seed) -> a stored image, or a typed failure.

Each request is keyed by (generator fingerprint, prompt content, seed). A request whose
key is in the store is not sent again; new results are committed batch by batch, so a
killed run keeps every finished batch. A stored image is trusted only after the store has
hashed it: a missing or damaged one is generated again, and its row and file replaced.

The stage is three pieces so an executor (autojudge.executors) can run the middle one
elsewhere: `plan_generation` (which requests the store lacks), a dispatch that turns
batches of requests into outputs (here, in this process; on Ray, in workers), and
`commit_outputs` (blobs, then rows, on the driver only). `GeneratorRunner` drives the
three for one model; wherever a batch runs, the plugin is called through
`stages.isolation.guarded_generate`, so a misbehaving generator fails only the requests
it broke.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from autojudge.generators.base import Generator
from autojudge.stages.cache import Advance, Counts, fingerprint_hash, no_progress
from autojudge.stages.isolation import GENERATE, conform, guarded_generate
from autojudge.store.index import Store, failure_columns, now
from autojudge.types import Failure, Generation, GenOutput, GenRequest, Prompt, stable_hash

log = logging.getLogger(__name__)


def generation_key(fp_hash: str, request: GenRequest) -> str:
    return stable_hash([fp_hash, request.key_payload()])


@dataclass(frozen=True)
class StoredOutput:
    """A generator's output whose image a worker already wrote to shared storage: the
    driver adopts the blob (`Store.adopt_blob`) instead of receiving its bytes."""

    output: GenOutput  # its `image` is None: the bytes stayed on the worker's side
    sha: str
    ext: str
    size: int


#: batches of requests in, (batch number, one output per request) out, in any order
Dispatch = Callable[[list[list[GenRequest]]], Iterable[tuple[int, Sequence[Any]]]]


@dataclass
class GenerationPlan:
    """What one model's generation needs: keys, what the store already had, what is left.

    Attributes:
        missing: request indices still to generate, in request order.
        results: request index -> Generation (from the store, then as batches commit).
    """

    label: str
    requests: Sequence[GenRequest]
    keys: list[str]
    fp_hash: str
    cacheable: bool
    batch_size: int
    missing: list[int]
    results: dict[int, Generation] = field(default_factory=dict)
    counts: Counts = field(default_factory=Counts)

    def batches(self) -> list[list[int]]:
        """The missing request indices in generator-sized batches, in request order."""
        size = self.batch_size
        return [self.missing[i:i + size] for i in range(0, len(self.missing), size)]

    def generations(self) -> list[Generation]:
        return [self.results[i] for i in range(len(self.requests))]


def plan_generation(label: str, generator: Generator, requests: Sequence[GenRequest],
                    store: Store) -> GenerationPlan:
    """Ask the store first: every request whose image is stored (and hashes to its name)
    is answered from it; the rest are `missing`. Rows naming a missing or damaged image
    are forgotten, so the new image can take their place."""
    fingerprint = dict(generator.fingerprint())
    fp_hash = fingerprint_hash(fingerprint)
    store.remember_fingerprint(fp_hash, fingerprint)
    keys = [generation_key(fp_hash, r) for r in requests]
    found = store.get_many("generations", keys) if generator.cacheable else {}
    results: dict[int, Generation] = {}
    stale: list[str] = []
    for i, key in enumerate(keys):
        if key in found:
            generation = _from_row(label, requests[i], found[key].values, found[key].failure, store)
            if generation is not None:
                results[i] = generation
            else:
                stale.append(key)
    if stale:
        # Rows are first-answer-wins, so the row naming the bad image must go before the
        # new one can take its place (a generator need not repeat its bytes exactly).
        log.warning("%d stored image(s) of model %s were missing or damaged in %s; "
                    "generating them again", len(stale), label, store.root)
        store.forget("generations", stale)
    missing = [i for i in range(len(requests)) if i not in results]
    return GenerationPlan(label, requests, keys, fp_hash, bool(generator.cacheable),
                          max(1, int(getattr(generator, "batch_size", 1))), missing,
                          results, Counts(cached=len(results)))


def commit_outputs(plan: GenerationPlan, store: Store, indices: Sequence[int],
                   outputs: Sequence[GenOutput | StoredOutput]) -> None:
    """Store one batch's outputs: blobs first, then the batch's rows in one transaction
    (so a crash never leaves a row naming a missing image, nor half a batch)."""
    rows = []
    for i, output in zip(indices, outputs):
        generation, row = _store_output(plan.label, plan.requests[i], plan.keys[i],
                                        plan.fp_hash, output, store)
        plan.results[i] = generation
        plan.counts.computed += 1
        plan.counts.failed += not generation.ok
        if plan.cacheable:
            rows.append(row)
    store.put_many("generations", rows)


def local_dispatch(generator: Generator, timeout_s: float | None = None) -> Dispatch:
    """Batches generated one after another in this process (the local executor), each
    call isolated (`stages.isolation`)."""

    def dispatch(batches: list[list[GenRequest]]) -> Iterator[tuple[int, list[GenOutput]]]:
        for number, batch in enumerate(batches):
            yield number, guarded_generate(generator, batch, timeout_s)

    return dispatch


@dataclass(frozen=True)
class GeneratorSettings:
    """How the runner drives one generator.

    Attributes:
        timeout_s: seconds one `generate` call may take before its requests fail as
            "generator_timeout" (retried one by one); None waits as long as it takes.
            Enforced where the call runs in this process (the local executor).
    """

    timeout_s: float | None = None

    def __post_init__(self) -> None:
        if self.timeout_s is not None and not self.timeout_s > 0:
            raise ValueError("timeout_s must be > 0 (or None: no timeout)")


class GeneratorRunner:
    """Drives one generator plugin, as `stages.runner.JudgeRunner` drives a judge.

    It owns what every generator shares: the store asked first (`plan_generation`),
    batches dispatched (here, or by an executor's `dispatch`, handed over when the runner
    is built), every batch committed on this process as it comes back, and failure
    isolation: a plugin that raises, answers too few, answers the wrong type or hangs
    past `timeout_s` fails only the requests it broke, typed, and the run goes on.

    Example:
        >>> runner = GeneratorRunner("sd15", generator, store)          # doctest: +SKIP
        >>> generations, counts = runner.run(expand_requests(pairs))    # doctest: +SKIP
    """

    def __init__(self, label: str, plugin: Generator, store: Store,
                 settings: GeneratorSettings = GeneratorSettings(),
                 dispatch: Dispatch | None = None):
        self.name = label
        self.plugin = plugin
        self.store = store
        self.settings = settings
        self.dispatch = dispatch or local_dispatch(plugin, settings.timeout_s)
        self.counts = Counts()
        self.failures: Counter[str] = Counter()  # failure kind -> requests failed now

    def generate_batch(self, requests: Sequence[GenRequest]) -> list[GenOutput]:
        """One isolated call of the plugin: one output per request, whatever it does."""
        return guarded_generate(self.plugin, requests, self.settings.timeout_s)

    def run(self, requests: Sequence[GenRequest], advance: Advance = no_progress
            ) -> tuple[list[Generation], Counts]:
        """One generation per request, in request order (from the store where possible)."""
        plan = plan_generation(self.name, self.plugin, requests, self.store)
        advance(plan.counts.cached, from_store=plan.counts.cached)
        batches = plan.batches()
        for number, outputs in self.dispatch([[requests[i] for i in b] for b in batches]):
            indices = batches[number]  # batches may come back in any order
            commit_outputs(plan, self.store, indices, conform(outputs, len(indices), _SENT))
            self.failures.update(plan.results[i].failure.kind for i in indices
                                 if plan.results[i].failure is not None)
            advance(len(indices))
        self.counts = plan.counts
        return plan.generations(), plan.counts


def run_generation(
    label: str,
    generator: Generator,
    requests: Sequence[GenRequest],
    store: Store,
    advance: Advance = no_progress,
    dispatch: Dispatch | None = None,
) -> tuple[list[Generation], Counts]:
    """Generate (or fetch from the store) one image per request for model `label`.

    `dispatch` runs the missing batches (default: here, one after another); whatever
    runs them, each batch is committed on this process as it comes back
    (`GeneratorRunner`).

    Returns the generations in request order and counts of cached vs computed.
    """
    return GeneratorRunner(label, generator, store, dispatch=dispatch).run(requests, advance)


# What a dispatch may send back: outputs, or outputs whose image a worker already stored.
_SENT = replace(GENERATE, output=(GenOutput, StoredOutput))


def _store_output(label: str, request: GenRequest, key: str, fp_hash: str,
                  output: GenOutput | StoredOutput, store: Store
                  ) -> tuple[Generation, dict[str, Any]]:
    sha = ext = path = None
    written = output if isinstance(output, StoredOutput) else None
    output = written.output if written else output
    failure = output.failure
    if failure is None and output.image is None and written is None:
        failure = Failure("generator_error", "no image and no failure returned")
    if failure is None and written is not None:
        path = store.adopt_blob(written.sha, written.ext, written.size)
        if path is None:  # retryable: a later run asks again
            failure = Failure("worker_blob_missing", f"a worker wrote image {written.sha} "
                              f"to {store.blobs_location}, but it is not there", True)
        else:
            sha, ext = written.sha, written.ext
    elif failure is None:
        sha, ext = store.put_blob(output.image)
        path = store.blob_location(sha, ext)
    row = {"key": key, "fingerprint": fp_hash, "image_sha": sha, "image_ext": ext,
           "latency_s": float(output.latency_s), "cost_usd": float(output.cost_usd),
           **failure_columns(failure), "meta": json.dumps(dict(output.meta), default=str),
           "created": now()}
    generation = Generation(label, request.prompt, request.seed, sha, path,
                            float(output.latency_s), float(output.cost_usd), failure,
                            cached=False, meta=dict(output.meta))
    return generation, row


def _from_row(label: str, request: GenRequest, row: Mapping[str, Any],
              failure: Failure | None, store: Store) -> Generation | None:
    """A stored generation, or None when its blob is missing or does not hash to its name
    (then it is regenerated)."""
    sha, ext = row["image_sha"], row["image_ext"]
    path = None
    if failure is None:
        path = store.verified_blob(sha, ext)
        if path is None:
            return None
        path = str(path)
    return Generation(label, request.prompt, request.seed, sha, path, row["latency_s"],
                      row["cost_usd"], failure, cached=True, meta=json.loads(row["meta"]))


def expand_requests(pairs: Sequence[tuple[Prompt, int]]) -> list[GenRequest]:
    return [GenRequest(prompt, seed) for prompt, seed in pairs]
