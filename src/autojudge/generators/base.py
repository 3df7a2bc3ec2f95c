"""The generator protocol: a batch of requests in, one output per request out.

The structural contract the core relies on. `autojudge.sdk` states the whole contract and
gives `sdk.Generator`, a base that satisfies this protocol and declares every optional
hook with its default (`placement`, `pool_resources`, `cheap_to_remake`,
`matching_requests`); a plugin that only satisfies the protocol works too.
"""
from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

from autojudge.types import GenOutput, GenRequest


@runtime_checkable
class Generator(Protocol):
    """Maps requests to encoded images.

    Implementations never raise for a single bad request: they return a GenOutput with a
    typed Failure so one failed image never kills a run. They raise AutojudgeError only for
    problems that make every request fail (no API key, no weights, an empty folder), and
    should do so in `check()` so the run fails before any work.

    Attributes:
        cacheable: False for generators whose output depends on something outside the
            request (a folder of files): the pipeline then re-reads them on every run.
        batch_size: how many requests `generate` prefers at once.
    """

    cacheable: bool
    batch_size: int

    def fingerprint(self) -> Mapping[str, Any]:
        """Identity that keys the cache: name, version and every param that changes images."""

    def check(self) -> None:
        """Raise AutojudgeError if the generator cannot work at all (before any work)."""

    def generate(self, requests: Sequence[GenRequest]) -> list[GenOutput]:
        """Return one GenOutput per request, in order."""


class GeneratorHooks(Protocol):
    """Optional attributes a generator may define (each is looked for by name; the
    defaults are `autojudge.sdk.Generator`'s)."""

    #: "pool" or "driver" (e.g. files on this machine's disk): where its batches run
    placement: str
    #: default worker resources in an executor's pool, e.g. {"actors": 1}
    pool_resources: Mapping[str, Any]
    #: making an image again is free and gives the same bytes
    cheap_to_remake: bool

    def matching_requests(self, requests: Sequence[GenRequest]) -> Any:
        """Cheap pre-flight hint: an object with `requests`, `matched` and
        `summary(label)` (e.g. `sdk.RequestMatch`); no match at all refuses the run."""
