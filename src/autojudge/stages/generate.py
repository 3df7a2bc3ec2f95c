"""Generate stage: (model, prompt, seed) -> a stored image, or a typed failure.

Each request is keyed by (generator fingerprint, prompt content, seed). A request whose
key is in the store is not sent again; new results are committed batch by batch, so a
killed run keeps every finished batch.
"""
from __future__ import annotations

import json
import time
from typing import Any, Callable, Mapping, Sequence

from autojudge.generators.base import Generator
from autojudge.judges.adapters import Counts, fingerprint_hash
from autojudge.store import Store, failure_columns, now
from autojudge.types import Failure, GenOutput, GenRequest, Generation, Prompt, stable_hash

Advance = Callable[[int], None]


def generation_key(fp_hash: str, request: GenRequest) -> str:
    return stable_hash([fp_hash, request.key_payload()])


def run_generation(
    label: str,
    generator: Generator,
    requests: Sequence[GenRequest],
    store: Store,
    advance: Advance = lambda n: None,
) -> tuple[list[Generation], Counts]:
    """Generate (or fetch from the store) one image per request for model `label`.

    Returns the generations in request order and counts of cached vs computed.
    """
    fingerprint = dict(generator.fingerprint())
    fp_hash = fingerprint_hash(fingerprint)
    store.remember_fingerprint(fp_hash, fingerprint)
    keys = [generation_key(fp_hash, r) for r in requests]
    found = store.get_many("generations", keys) if generator.cacheable else {}
    results: dict[int, Generation] = {}
    for i, key in enumerate(keys):
        if key in found:
            generation = _from_row(label, requests[i], found[key].values, found[key].failure, store)
            if generation is not None:
                results[i] = generation
    counts = Counts(cached=len(results))
    advance(len(results))
    missing = [i for i in range(len(requests)) if i not in results]
    batch_size = max(1, int(getattr(generator, "batch_size", 1)))
    for start in range(0, len(missing), batch_size):
        batch = missing[start:start + batch_size]
        outputs = _generate_batch(generator, [requests[i] for i in batch])
        rows = []
        for i, output in zip(batch, outputs):
            generation, row = _store_output(label, requests[i], keys[i], fp_hash, output, store)
            results[i] = generation
            counts.computed += 1
            counts.failed += not generation.ok
            if generator.cacheable:
                rows.append(row)
        store.put_many("generations", rows)
        advance(len(batch))
    return [results[i] for i in range(len(requests))], counts


def _generate_batch(generator: Generator, requests: list[GenRequest]) -> list[GenOutput]:
    """Call the generator; an exception fails this batch's requests, not the run."""
    start = time.perf_counter()
    try:
        outputs = generator.generate(requests)
    except Exception as exc:  # a plugin bug must not lose the rest of the run
        elapsed = time.perf_counter() - start
        failure = Failure("generator_error", f"{type(exc).__name__}: {exc}", retryable=True)
        return [GenOutput(None, elapsed / len(requests), failure=failure) for _ in requests]
    if len(outputs) != len(requests):
        failure = Failure("generator_error",
                          f"returned {len(outputs)} outputs for {len(requests)} requests",
                          retryable=True)
        return [GenOutput(None, 0.0, failure=failure) for _ in requests]
    return list(outputs)


def _store_output(label: str, request: GenRequest, key: str, fp_hash: str,
                  output: GenOutput, store: Store) -> tuple[Generation, dict[str, Any]]:
    sha = ext = path = None
    failure = output.failure
    if failure is None and output.image is None:
        failure = Failure("generator_error", "no image and no failure returned")
    if failure is None:
        sha, ext = store.put_blob(output.image)
        path = str(store.blob_path(sha, ext))
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
    """A stored generation, or None when its blob went missing (then it is regenerated)."""
    sha, ext = row["image_sha"], row["image_ext"]
    path = None
    if failure is None:
        path = store.blob_path(sha, ext)
        if not path.exists():
            return None
        path = str(path)
    return Generation(label, request.prompt, request.seed, sha, path, row["latency_s"],
                      row["cost_usd"], failure, cached=True, meta=json.loads(row["meta"]))


def expand_requests(pairs: Sequence[tuple[Prompt, int]]) -> list[GenRequest]:
    return [GenRequest(prompt, seed) for prompt, seed in pairs]
