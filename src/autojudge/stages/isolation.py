"""One plugin call that cannot take the run down: the failure isolation both runners share.

A plugin maps a batch (requests, images or pairs) to one output per member. A third-party
plugin may break that contract: raise, answer too few (or not a list at all), answer a
member with the wrong type, or never answer. Each becomes a typed failure of the members
it touched, and the run goes on:

- **raises** (`error_kind`, retryable): the batch is asked again one member per call, so
  only the members that fail on their own are failed;
- **wrong count** (`bad_output_kind`, retryable): as a raise, the batch is retried one by
  one (which member was dropped cannot be known);
- **wrong type** (`bad_output_kind`, retryable): that member fails; the others keep their
  answers, nothing is asked again;
- **hangs** past `timeout_s` (`timeout_kind`, retryable): as a raise. Python cannot stop a
  thread, so the late call is abandoned and its answer dropped when it comes: a plugin
  with a timeout must tolerate a new call while an abandoned one still runs.

After `SYSTEMIC_AFTER` single-member retries in a row fail exactly as the whole batch did,
the cause is the plugin, not one member: the rest take the batch's failure unsent (a
broken service is not called once per member). Exceptions in `Contract.passes` are not
isolated: for judges an `AutojudgeError` is the plugin's one-line "this cannot work at
all" (e.g. its engine cannot start) and stops the run as before.

Example:
    >>> from autojudge.types import Score
    >>> class Half:
    ...     def score(self, items):
    ...         return [Score(0.5)] * (len(items) - 1)   # one too few
    >>> [s.failure.kind for s in guarded_score(Half(), ["x"])]
    ['judge_bad_output']
"""
from __future__ import annotations

import numbers
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from autojudge.errors import AutojudgeError
from autojudge.types import WINNERS, Failure, GenOutput, RankVerdict, Score, Verdict

# After this many single-member retries in a row fail exactly as the whole batch did, the
# cause is the plugin, not one member: the rest take the batch's failure unsent.
SYSTEMIC_AFTER = 3


@dataclass(frozen=True)
class Contract:
    """What one kind of plugin call must answer, and how its breaches are typed.

    Attributes:
        output: the type of one member's answer (or the types, the first named in
            messages).
        outputs / inputs: plural nouns for messages ("scores" for "images").
        error_kind / bad_output_kind / timeout_kind: the failure kinds of a raise, of a
            wrong count or type, and of a call that outlived its timeout.
        failed: (failure, seconds charged to the member) -> a failed answer.
        catch_all: also retry a batch whose members all carry one identical
            `error_kind` failure (a plugin that wraps its whole batch in try/except).
        passes: exceptions that are the plugin's deliberate stop, not isolated.
    """

    output: type | tuple[type, ...]
    outputs: str
    inputs: str
    error_kind: str
    bad_output_kind: str
    timeout_kind: str
    failed: Callable[[Failure, float], Any]
    catch_all: bool = False
    passes: tuple[type[BaseException], ...] = ()


GENERATE = Contract(GenOutput, "outputs", "requests", "generator_error", "generator_error",
                    "generator_timeout", lambda f, s: GenOutput(None, s, failure=f),
                    catch_all=True)
SCORE = Contract(Score, "scores", "images", "judge_error", "judge_bad_output",
                 "judge_timeout", lambda f, s: Score(None, failure=f),
                 passes=(AutojudgeError,))
COMPARE = Contract(Verdict, "verdicts", "pairs", "judge_error", "judge_bad_output",
                   "judge_timeout", lambda f, s: Verdict(None, failure=f),
                   passes=(AutojudgeError,))


RANK = Contract(RankVerdict, "rankings", "groups", "judge_error", "judge_bad_output",
                "judge_timeout", lambda f, s: RankVerdict(None, failure=f),
                passes=(AutojudgeError,))


def guarded_rank(judge: Any, groups: Sequence[Any],
                 timeout_s: float | None = None) -> list[RankVerdict]:
    """`judge.rank(groups)`, one `RankVerdict` per group whatever it does; ranks of the
    wrong length or kind fail that group only."""
    answers = call_isolated(judge.rank, list(groups), RANK, timeout_s)
    out = []
    for group, answer in zip(groups, answers):
        problem = rank_problem(answer, len(group.items))
        out.append(answer if problem is None else RankVerdict(None, failure=Failure(
            RANK.bad_output_kind, f"returned {problem}", retryable=True)))
    return out


def rank_problem(answer: RankVerdict, k: int) -> str | None:
    """What is wrong with a ranking answer for k slots, or None."""
    ranks = answer.ranks
    if ranks is None:
        return None if answer.failure is not None else "a RankVerdict with no ranks"
    if not isinstance(ranks, (list, tuple)) or len(ranks) != k:
        return f"ranks {ranks!r} for {k} images (one rank per image needed)"
    if any(r is not None and (isinstance(r, bool) or not isinstance(r, int) or r < 1)
           for r in ranks) or all(r is None for r in ranks):
        return f"ranks {list(ranks)!r}: each an int >= 1 or None, at least one ranked"
    return None


def guarded_generate(generator: Any, requests: Sequence[Any],
                     timeout_s: float | None = None) -> list[GenOutput]:
    """`generator.generate(requests)`, one `GenOutput` per request whatever it does."""
    return call_isolated(generator.generate, list(requests), GENERATE, timeout_s)


def guarded_score(judge: Any, items: Sequence[Any],
                  timeout_s: float | None = None) -> list[Score]:
    """`judge.score(items)`, one `Score` per item whatever it does."""
    return call_isolated(judge.score, list(items), SCORE, timeout_s)


def guarded_compare(judge: Any, pairs: Sequence[Any],
                    timeout_s: float | None = None) -> list[Verdict]:
    """`judge.compare(pairs)`, one `Verdict` per pair whatever it does."""
    return call_isolated(judge.compare, list(pairs), COMPARE, timeout_s)


def call_isolated(fn: Callable[[list[Any]], Any], members: list[Any], contract: Contract,
                  timeout_s: float | None = None) -> list[Any]:
    """`fn(members)` with every breach of `contract` turned into typed member failures,
    retrying one member per call where that can tell the bad members from the good."""
    if not members:
        return []
    outputs, failure = _call(fn, members, contract, timeout_s)
    if failure is None and contract.catch_all and len(members) > 1 and \
            _failed_as_one(outputs, contract):
        failure = outputs[0].failure
    if failure is None or len(members) == 1:
        return outputs
    return _one_by_one(fn, members, contract, timeout_s, failure)


def conform(outputs: Any, n: int, contract: Contract) -> list[Any]:
    """`n` answers of the contract's type from whatever came back (a second line of
    defence for answers that crossed a process boundary): a wrong count fails them all."""
    if not isinstance(outputs, (list, tuple)) or len(outputs) != n:
        failure = _bad_count(outputs, n, contract)
        return [contract.failed(failure, 0.0) for _ in range(n)]
    return [_checked(out, 0.0, contract) for out in outputs]


def one_line(exc: BaseException) -> str:
    """An exception as one line of at most 500 characters: `Type: message`."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:500]


class _TimedOut(Exception):
    """The call outlived its timeout (raised here, never by the plugin)."""


def _call(fn: Callable[[list[Any]], Any], members: list[Any], contract: Contract,
          timeout_s: float | None) -> tuple[list[Any], Failure | None]:
    """One answer per member, and the failure of the call as a whole if it raised, hung
    or answered out of contract (then every answer carries that failure)."""
    start = time.perf_counter()
    try:
        outputs = _within(fn, members, timeout_s)
    except _TimedOut:
        failure = Failure(contract.timeout_kind, f"no answer within {timeout_s:g} s",
                          retryable=True)
    except contract.passes:
        raise
    except Exception as exc:  # a plugin bug must not lose the rest of the run
        failure = Failure(contract.error_kind, one_line(exc), retryable=True)
    else:
        if isinstance(outputs, (list, tuple)) and len(outputs) == len(members):
            elapsed = time.perf_counter() - start
            return [_checked(out, elapsed / len(members), contract) for out in outputs], None
        failure = _bad_count(outputs, len(members), contract)
    share = (time.perf_counter() - start) / len(members)
    return [contract.failed(failure, share) for _ in members], failure


def _within(fn: Callable[[list[Any]], Any], members: list[Any],
            timeout_s: float | None) -> Any:
    """fn(members), materialised; on a worker thread when there is a timeout."""
    if timeout_s is None:
        return _materialised(fn(members))
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["out"] = _materialised(fn(members))
        except BaseException as exc:  # noqa: BLE001  re-raised on the caller's thread
            box["exc"] = exc

    # daemon: an abandoned call never keeps the process from exiting
    worker = threading.Thread(target=target, name="autojudge-plugin-call", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise _TimedOut()
    if "exc" in box:
        raise box["exc"]
    return box["out"]


def _materialised(outputs: Any) -> Any:
    """A lazy answer (generator, map) as a list, so iterating it happens inside the
    guard; anything else as it came (its count and type are checked after)."""
    if isinstance(outputs, (list, tuple, str, bytes, dict)) or \
            not hasattr(outputs, "__iter__"):
        return outputs
    return list(outputs)


def _bad_count(outputs: Any, n: int, contract: Contract) -> Failure:
    got = len(outputs) if isinstance(outputs, (list, tuple)) else \
        f"a {type(outputs).__name__}, not a list of"
    return Failure(contract.bad_output_kind,
                   f"returned {got} {contract.outputs} for {n} {contract.inputs}",
                   retryable=True)


def _checked(output: Any, elapsed: float, contract: Contract) -> Any:
    """The answer if it keeps the contract, else a typed failure of its member only."""
    problem = _problem(output, contract)
    if problem is None:
        return output
    return contract.failed(Failure(contract.bad_output_kind, f"returned {problem}",
                                   retryable=True), elapsed)


def _problem(output: Any, contract: Contract) -> str | None:
    wanted = contract.output if isinstance(contract.output, tuple) else (contract.output,)
    name = wanted[0].__name__
    if not isinstance(output, wanted):
        return f"a {type(output).__name__}, not a {name}"
    if isinstance(output, Score) and output.value is not None and (
            isinstance(output.value, bool) or not isinstance(output.value, numbers.Real)):
        return f"a Score whose value is a {type(output.value).__name__}, not a number"
    if isinstance(output, Verdict) and output.winner is not None and \
            output.winner not in WINNERS:
        return f"a Verdict whose winner is {output.winner!r}, not one of {', '.join(WINNERS)}"
    return None


def _failed_as_one(outputs: Sequence[Any], contract: Contract) -> bool:
    """Whether every answer is the same `error_kind` failure (a batch-level catch-all)."""
    first = outputs[0].failure
    return (first is not None and first.kind == contract.error_kind
            and all(out.failure == first for out in outputs))


def _one_by_one(fn: Callable[[list[Any]], Any], members: list[Any], contract: Contract,
                timeout_s: float | None, batch_failure: Failure) -> list[Any]:
    """Each member in its own call; see `SYSTEMIC_AFTER` for when to stop trying."""
    outputs: list[Any] = []
    same_in_a_row = 0
    for member in members:
        if same_in_a_row >= SYSTEMIC_AFTER:
            outputs.append(contract.failed(batch_failure, 0.0))
            continue
        single = _call(fn, [member], contract, timeout_s)[0][0]
        failure = single.failure
        same = failure is not None and (
            (failure.kind, failure.message) == (batch_failure.kind, batch_failure.message))
        same_in_a_row = same_in_a_row + 1 if same else 0
        outputs.append(single)
    return outputs
