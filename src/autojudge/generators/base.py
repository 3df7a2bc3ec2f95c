"""The generator protocol: a batch of requests in, one output per request out."""
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
