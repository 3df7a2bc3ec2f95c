"""Group commit for the event loop (`VoteWriter`): votes are stored by a thread, many
per transaction, and each voter's request resumes once its vote is on disk.

The durability contract and the storage are `autojudge.arena.votes` (`VoteStore`); this
module only moves votes between the event loop and the committing thread.

Example:
    >>> writer = VoteWriter(store)                                    # doctest: +SKIP
    >>> row_id = await writer.append(vote)                            # doctest: +SKIP
"""
from __future__ import annotations

import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from autojudge.arena.timing import stamps

if TYPE_CHECKING:
    from autojudge.arena.timing import Timings
    from autojudge.arena.votes import RankingVote, Vote, VoteStore


class _Pending:
    """A vote handed to the writer; `result` is set by the writer thread (row id or the
    exception), `settled` once the event loop did what follows a commit."""

    __slots__ = ("vote", "future", "loop", "on_settled", "marks", "result", "settled")

    def __init__(self, vote: Any, future: Any, loop: Any,
                 on_settled: Callable[[Any], None], marks: dict[str, float] | None):
        self.vote, self.future, self.loop = vote, future, loop
        self.on_settled, self.marks = on_settled, marks
        self.result: Any = _UNSET
        self.settled = False


_UNSET = object()
# Event-loop turns a vote's handler looks for its commit's result itself before it
# waits on the future: a future's result reaches its task one turn after the callback
# that sets it, and that callback one turn after the writer thread, and under load a
# turn takes tens of milliseconds. On an idle loop these turns take microseconds.
_LOOKS = 4


class VoteWriter:
    """Group commit for the event loop: `await writer.append(vote)` returns once the vote
    is on disk; votes that arrive while a commit runs go together in the next one."""

    def __init__(self, store: "VoteStore", timings: "Timings | None" = None):
        self.store = store
        self.timings = timings  # --timings: votes per commit
        self._pending: list[_Pending] = []
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="arena-votes", daemon=True)
        self._thread.start()

    async def append(self, vote: Vote | RankingVote,
                     settled: Callable[[Any], None] = lambda r: None) -> int:
        """The vote's row id once committed (raises what the commit raised).

        `settled(row id or exception)` runs in the event loop as soon as the commit ends,
        even if the awaiting request was cancelled meanwhile: what must follow a stored
        vote (counting it on the live board) cannot be skipped by a client hanging up.
        """
        import asyncio

        loop = asyncio.get_running_loop()
        marks = stamps()
        if marks is not None:
            marks["enqueued"] = time.perf_counter()
        item = _Pending(vote, loop.create_future(), loop, settled, marks)
        with self._wake:
            if self._closed:
                raise sqlite3.ProgrammingError("the votes writer is closed")
            self._pending.append(item)
            self._wake.notify()
        for _ in range(_LOOKS):
            await asyncio.sleep(0)
            if item.result is not _UNSET:  # committed: count it now, not two turns later
                _settle_all([item])
                break
        result = await item.future
        if marks is not None:
            marks["resumed"] = time.perf_counter()
        return result

    def close(self) -> None:
        """Finish the votes already handed over, then stop."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closed:
                    self._wake.wait()
                batch, self._pending = self._pending, []
                if not batch and self._closed:
                    return
            begin = time.perf_counter()
            try:
                results: list[Any] = self.store.append_many([item.vote for item in batch])
            except BaseException as exc:  # the whole transaction failed
                results = [exc] * len(batch)
            end = time.perf_counter()
            if self.timings is not None:
                self.timings.batches.append(len(batch))
            by_loop: dict[Any, list[_Pending]] = {}
            for item, result in zip(batch, results):
                if item.marks is not None:
                    item.marks["begin"], item.marks["end"] = begin, end
                item.result = result  # a plain attribute: the handler may look first
                by_loop.setdefault(item.loop, []).append(item)
            for loop, items in by_loop.items():  # one wake-up of each loop per batch
                loop.call_soon_threadsafe(_settle_all, items)


def _settle_all(items: list[_Pending]) -> None:
    import asyncio

    for item in items:
        try:
            _settle(item)
        except Exception as exc:  # one vote's bookkeeping must not hold up the others'
            asyncio.get_running_loop().call_exception_handler(
                {"message": "arena: counting a stored vote failed", "exception": exc})


def _settle(item: _Pending) -> None:
    """In the event loop, once per vote: what follows its commit, then its future."""
    if item.settled:
        return
    item.settled = True
    if item.marks is not None:
        item.marks["settled"] = time.perf_counter()
    try:
        item.on_settled(item.result)
    finally:  # the voter is answered whatever the bookkeeping did
        future, result = item.future, item.result
        if not future.done():
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
