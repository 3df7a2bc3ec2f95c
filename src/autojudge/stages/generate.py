"""Generate stage: (model, prompt, seed) -> a stored image, or a typed failure.

Each request is keyed by (generator fingerprint, prompt content, seed). A request whose
key is in the store is not sent again; new results are committed batch by batch, so a
killed run keeps every finished batch. A stored image is trusted only after the store has
hashed it: a missing or damaged one is generated again, and its row and file replaced.

The stage is three pieces so an executor (autojudge.executors) can run the middle one
elsewhere: `plan_generation` (which requests the store lacks), a dispatch that turns
batches of requests into outputs (here, in this process; on Ray, in workers), and
`commit_outputs` (blobs, then rows, on the driver only).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from autojudge.generators.base import Generator
from autojudge.stages.cache import Counts, fingerprint_hash
from autojudge.store import Store, failure_columns, now
from autojudge.types import Failure, GenOutput, GenRequest, Generation, Prompt, stable_hash

Advance = Callable[[int], None]
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


def local_dispatch(generator: Generator) -> Dispatch:
    """Batches generated one after another in this process (the local executor)."""

    def dispatch(batches: list[list[GenRequest]]) -> Iterator[tuple[int, list[GenOutput]]]:
        for number, batch in enumerate(batches):
            yield number, _generate_batch(generator, batch)

    return dispatch


def run_generation(
    label: str,
    generator: Generator,
    requests: Sequence[GenRequest],
    store: Store,
    advance: Advance = lambda n: None,
    dispatch: Dispatch | None = None,
) -> tuple[list[Generation], Counts]:
    """Generate (or fetch from the store) one image per request for model `label`.

    `dispatch` runs the missing batches (default: here, one after another); whatever
    runs them, each batch is committed on this process as it comes back.

    Returns the generations in request order and counts of cached vs computed.
    """
    plan = plan_generation(label, generator, requests, store)
    advance(plan.counts.cached)
    batches = plan.batches()
    run = dispatch or local_dispatch(generator)
    for number, outputs in run([[requests[i] for i in batch] for batch in batches]):
        commit_outputs(plan, store, batches[number], outputs)
        advance(len(batches[number]))
    return plan.generations(), plan.counts


# After this many single-request retries in a row fail exactly as the whole batch did,
# the cause is the generator, not one member: the rest take the batch's failure unsent.
_SYSTEMIC_AFTER = 3


def _generate_batch(generator: Generator, requests: list[GenRequest]) -> list[GenOutput]:
    """Call the generator; one bad request fails alone, never its batch or the run.

    A generator should return a typed failure for a bad request, but a plugin may raise
    (or fail every member with one identical `generator_error`) because of one member.
    Then the batch is retried one request per call, so only the members that fail on
    their own are failed and the rest keep their images.
    """
    outputs, failure = _call(generator, requests)
    if failure is None and len(requests) > 1 and _failed_as_one(outputs):
        failure = outputs[0].failure
    if failure is None or len(requests) == 1:
        return outputs
    return _one_by_one(generator, requests, failure)


def _call(generator: Generator,
          requests: list[GenRequest]) -> tuple[list[GenOutput], Failure | None]:
    """One output per request, and the failure of the call as a whole if it raised or
    answered out of contract (then every output carries that failure)."""
    start = time.perf_counter()
    try:
        outputs = generator.generate(requests)
    except Exception as exc:  # a plugin bug must not lose the rest of the run
        message = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
        failure = Failure("generator_error", message, retryable=True)
    else:
        if isinstance(outputs, (list, tuple)) and len(outputs) == len(requests):
            return [_checked(out, time.perf_counter() - start, len(requests))
                    for out in outputs], None
        got = len(outputs) if isinstance(outputs, (list, tuple)) else type(outputs).__name__
        failure = Failure("generator_error",
                          f"returned {got} outputs for {len(requests)} requests",
                          retryable=True)
    share = (time.perf_counter() - start) / len(requests)
    return [GenOutput(None, share, failure=failure) for _ in requests], failure


def _checked(output: Any, elapsed: float, n: int) -> GenOutput:
    if isinstance(output, GenOutput):
        return output
    return GenOutput(None, elapsed / n, failure=Failure(
        "generator_error", f"returned a {type(output).__name__}, not a GenOutput",
        retryable=True))


def _failed_as_one(outputs: Sequence[GenOutput]) -> bool:
    """Whether every output is the same generator_error (a batch-level catch-all)."""
    first = outputs[0].failure
    return (first is not None and first.kind == "generator_error"
            and all(out.failure == first for out in outputs))


def _one_by_one(generator: Generator, requests: list[GenRequest],
                batch_failure: Failure) -> list[GenOutput]:
    """Each request in its own call; see `_SYSTEMIC_AFTER` for when to stop trying."""
    outputs: list[GenOutput] = []
    same_in_a_row = 0
    for request in requests:
        if same_in_a_row >= _SYSTEMIC_AFTER:
            outputs.append(GenOutput(None, 0.0, failure=batch_failure))
            continue
        single = _call(generator, [request])[0][0]
        same = single.failure is not None and (
            (single.failure.kind, single.failure.message)
            == (batch_failure.kind, batch_failure.message))
        same_in_a_row = same_in_a_row + 1 if same else 0
        outputs.append(single)
    return outputs


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
