"""Which pair to show next: where a vote helps most.

Two rules (`--sampling`):

- `undervoted` (default): the model pair with the fewest votes (cast, plus pairs on
  screen now), then its (prompt, seed) with the fewest, ties at random. Every pair of
  models gets votes at the same pace and each over as many prompts as possible, which is
  what a rating with prompt-clustered CIs needs first.
- `adaptive`: `autojudge.ratings.scheduling.AdaptiveScheduler` on the human votes so far: the
  battles that shrink the widest predicted CI most, on the prompt where the two models
  have been voted least. The picks are computed in the background with each rating refit
  (`adaptive_picks`, run by the live worker); between refits, or when the picks do not
  fit a session (tag filter, already seen), the under-voted rule answers, so a request
  never waits for a fit. With `--k K` the picks are groups of K for the K-wise page
  (`autojudge.arena.groups.GroupSampler.set_queue`); ranking votes count as the pairs
  they order.

A session is not shown a pair it has already seen while it has unseen ones.

Example:
    >>> from autojudge.arena.runs import ImageRef, Pair
    >>> img = ImageRef(None, "0" * 64)
    >>> s = Sampler([Pair("p", 0, "a", "b", img, img), Pair("p", 0, "a", "c", img, img)],
    ...             {"p": ("t",)}, ["a", "b", "c"], seed=0)
    >>> s.record_vote(0); s.choose(set(), None)
    1
"""
from __future__ import annotations

from collections import deque
from typing import Any, Mapping, Sequence

import numpy as np

MODES = ("undervoted", "adaptive")


class Sampler:
    """Chooses pairs (indices into `pairs`) and keeps their vote counts.

    Args:
        pairs: the arena's pairs (`runs.Pair`).
        prompt_tags: prompt_id -> its tags (for `?tag=`).
        models: model labels (codes for the adaptive scheduler).
        mode: "undervoted" or "adaptive".
        seed: seed of the random tie-breaks (None: fresh entropy).
    """

    def __init__(self, pairs: Sequence[Any], prompt_tags: Mapping[str, Sequence[str]],
                 models: Sequence[str], mode: str = "undervoted", seed: int | None = None):
        if mode not in MODES:
            raise ValueError(f"sampling mode {mode!r}; use one of {', '.join(MODES)}")
        self.pairs = list(pairs)
        self.mode = mode
        self.models = list(models)
        self.prompt_tags = {k: tuple(v) for k, v in prompt_tags.items()}
        self.rng = np.random.default_rng(seed)
        n = len(self.pairs)
        codes: dict[tuple[str, str], int] = {}
        self.model_pair = np.array([codes.setdefault((p.model_x, p.model_y), len(codes))
                                    for p in self.pairs], dtype=np.int64)
        self.votes = np.zeros(n)
        self.pending = np.zeros(n)
        self.usable = np.ones(n, dtype=bool)  # False: an image cannot be served (`disable`)
        self.mp_load = np.zeros(len(codes))  # votes + pending per model pair
        self.index = {(p.prompt_id, p.seed, p.model_x, p.model_y): k
                      for k, p in enumerate(self.pairs)}
        self._tag_masks: dict[str, np.ndarray] = {}
        self.queue: deque[int] = deque()  # adaptive picks, best first

    # -- counts ---------------------------------------------------------------------
    def on_pending(self, pair: int, delta: int) -> None:
        """A token for `pair` was issued (+1) or stopped being pending (-1)."""
        self.pending[pair] += delta
        self.mp_load[self.model_pair[pair]] += delta

    def record_vote(self, pair: int) -> None:
        self.votes[pair] += 1
        self.mp_load[self.model_pair[pair]] += 1

    def find(self, prompt_id: str, seed: int | None, model_a: str, model_b: str
             ) -> int | None:
        """The pair index of a stored vote (models in either order), or None."""
        x, y = sorted((model_a, model_b))
        return self.index.get((prompt_id, seed, x, y))

    def disable(self, pair: int) -> None:
        """Never choose `pair` again (one of its images is missing or changed)."""
        self.usable[pair] = False

    # -- choice ---------------------------------------------------------------------
    def tag_mask(self, tag: str | None) -> np.ndarray | None:
        """Pairs whose prompt carries `tag` (None: no filter)."""
        if tag is None:
            return None
        if tag not in self._tag_masks:
            self._tag_masks[tag] = np.array(
                [tag in self.prompt_tags.get(p.prompt_id, ()) for p in self.pairs], dtype=bool)
        return self._tag_masks[tag]

    def choose(self, seen: set[int], tag: str | None) -> int | None:
        """The next pair for a session that has seen `seen`; None when `tag` has none
        (or none left that can be served)."""
        mask = self.tag_mask(tag)
        eligible = self.usable if mask is None else mask & self.usable
        if not eligible.any():
            return None
        if self.mode == "adaptive":
            pick = self._from_queue(seen, eligible)
            if pick is not None:
                return pick
        if seen:
            fresh = eligible.copy()
            fresh[np.fromiter(seen, dtype=np.int64, count=len(seen))] = False
            if fresh.any():  # once a session has seen them all, repeats are fine
                eligible = fresh
        load = self.votes + self.pending
        # lexicographic (model-pair load, pair load, random) as one float key
        key = self.mp_load[self.model_pair] * (load.max() + 2.0) + load \
            + 0.5 * self.rng.random(len(load))
        return int(np.argmin(np.where(eligible, key, np.inf)))

    def _from_queue(self, seen: set[int], eligible: np.ndarray) -> int | None:
        for k, pair in enumerate(self.queue):
            if pair not in seen and eligible[pair]:
                del self.queue[k]
                return pair
        return None

    # -- adaptive -------------------------------------------------------------------
    def adaptive_pool(self, batch: int = 32, k: int = 2) -> dict[str, Any]:
        """The fixed inputs of `adaptive_picks` (plain data, sent to the worker once):
        model and prompt codes, each request's prompt and (prompt, seed), one row
        (request, model code i < j, pair index) per pair, and k (> 2: pick groups)."""
        code = {m: k for k, m in enumerate(self.models)}
        requests: dict[tuple, int] = {}
        prompts: dict[str, int] = {}
        rows = []
        for n, p in enumerate(self.pairs):
            r = requests.setdefault((p.prompt_id, p.seed), len(requests))
            prompts.setdefault(p.prompt_id, len(prompts))
            i, j = sorted((code[p.model_x], code[p.model_y]))
            rows.append((r, i, j, n))
        request_prompt = np.zeros(len(requests), dtype=np.int64)
        for (pid, _), r in requests.items():
            request_prompt[r] = prompts[pid]
        return {"code": code, "prompts": prompts, "request_prompt": request_prompt,
                "rows": np.array(rows, dtype=np.int64).reshape(-1, 4), "batch": batch,
                "requests": list(requests), "k": k}

    def set_queue(self, picks: Sequence[int]) -> None:
        """Replace the adaptive picks (pair indices, best first)."""
        self.queue = deque(int(p) for p in picks)


def adaptive_picks(pool: Mapping[str, Any], model_a: Sequence[str], model_b: Sequence[str],
                   winner: Sequence[str], prompt_id: Sequence[str], seed: int = 0
                   ) -> list[int]:
    """Pair indices the adaptive scheduler would battle next, given the votes so far
    (see the module docstring); `pool` is `Sampler.adaptive_pool()`. With `pool["k"]`
    > 2, (prompt_id, seed, models) groups instead (`AdaptiveScheduler.next_groups`):
    each grown around the model whose CI is widest.

    Every pair stays open however often it was voted (many people may vote on one pair);
    the scheduler's per-prompt load is seeded with the votes so far, so its picks go to
    the prompts where the chosen models were voted least.
    """
    from autojudge.ratings.bradley_terry import winner_to_score
    from autojudge.ratings.scheduling import AdaptiveScheduler, ScheduleConfig
    from autojudge.ratings.simulate import all_pairs

    code, prompts, rows = pool["code"], pool["prompts"], pool["rows"]
    m = len(code)
    if m < 2 or len(rows) == 0:
        return []
    keep = [k for k in range(len(model_a)) if model_a[k] in code and model_b[k] in code
            and prompt_id[k] in prompts]
    ia = np.array([code[model_a[k]] for k in keep], dtype=np.int64)
    ib = np.array([code[model_b[k]] for k in keep], dtype=np.int64)
    score = np.asarray(winner_to_score([winner[k] for k in keep]) if keep else [],
                       dtype=np.float64)
    prompt = np.array([prompts[prompt_id[k]] for k in keep], dtype=np.int64)
    pairs = all_pairs(m)
    column = {(int(i), int(j)): c for c, (i, j) in enumerate(pairs)}
    available = np.zeros((len(pool["request_prompt"]), len(pairs)), dtype=bool)
    lookup = {}
    for r, i, j, k in rows.tolist():
        available[r, column[(i, j)]] = True
        lookup[(r, column[(i, j)])] = k
    config = ScheduleConfig(batch=int(pool["batch"]), bootstrap_rounds=50, seed=int(seed))
    sched = AdaptiveScheduler(m, int(pool["request_prompt"].max()) + 1, config=config,
                              available=available, request_prompt=pool["request_prompt"])
    np.add.at(sched.per_prompt, (prompt, ia), 1)
    np.add.at(sched.per_prompt, (prompt, ib), 1)
    status = sched.assess(ia, ib, score, prompt)
    if pool["k"] > 2:  # a K-wise arena: (prompt, seed, models) groups
        names = sorted(code, key=code.__getitem__)
        k = min(int(pool["k"]), m)
        # a batch that used up a request's pairs ends in smaller groups: the page shows
        # full ones (votes may repeat a pair, so the next refit offers them again)
        return [(*pool["requests"][r], [names[c] for c in group])
                for r, group in sched.next_groups(status, k) if len(group) == k]
    return [lookup[pick] for pick in sched.next_batch(status)]
