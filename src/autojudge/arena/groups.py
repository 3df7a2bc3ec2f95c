"""Which K images to show next (`--k K`, K-wise arena): a group is K models' images of
one prompt and seed, shown at once, ranked or best-of-K by one voter.

The under-voted rule of `autojudge.arena.pairs`, for groups: the models are chosen first,
one by one, each the least shown model (votes cast plus groups on screen now) that still
has an image of a (prompt, seed) holding every model chosen so far; among equally shown
models, the one shown least often together with those already chosen; then random. The
(prompt, seed) is then the least-voted one that holds them all. So every model is shown
at the same pace, every two models meet about equally often, and each over as many
prompts as possible (what prompt-clustered CIs need). A prompt with fewer than K models
gives a smaller group (at least 2).

A session is not shown a (prompt, seed) it has already seen while it has unseen ones.
Groups are numbered as they are first chosen (`group_id`), so tokens and counts refer to
them by an int, like pairs.

Example:
    >>> from autojudge.arena.runs import ImageRef, Pair
    >>> img = ImageRef(None, "0" * 64)
    >>> pairs = [Pair("p", 0, x, y, img, img) for x, y in (("a", "b"), ("a", "c"), ("b", "c"))]
    >>> s = GroupSampler(pairs, {"p": ()}, k=3, seed=0)
    >>> s.groups[s.choose(set(), None)].models
    ('a', 'b', 'c')
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np


@dataclass(frozen=True)
class Request:
    """One (prompt, seed) and its models' images (model -> `runs.ImageRef`)."""

    prompt_id: str
    seed: int | None
    images: Mapping[str, Any]


@dataclass(frozen=True)
class Group:
    """K models of one request, in name order (the shown order lives in the token)."""

    request: int
    models: tuple[str, ...]


def requests_from_pairs(pairs: Sequence[Any]) -> list[Request]:
    """Every (prompt, seed) with two or more models' images, from the arena's pairs."""
    found: dict[tuple, dict[str, Any]] = {}
    for p in pairs:
        images = found.setdefault((p.prompt_id, p.seed), {})
        images.setdefault(p.model_x, p.image_x)
        images.setdefault(p.model_y, p.image_y)
    return [Request(pid, seed, dict(sorted(images.items())))
            for (pid, seed), images in found.items() if len(images) >= 2]


class GroupSampler:
    """Chooses groups (indices into `groups`) and keeps their counts.

    Args:
        pairs: the arena's pairs (`runs.Pair`); their (prompt, seed)s are the requests.
        prompt_tags: prompt_id -> its tags (for `?tag=`).
        k: models per group (fewer where a request has fewer).
        seed: seed of the random tie-breaks (None: fresh entropy).
    """

    def __init__(self, pairs: Sequence[Any], prompt_tags: Mapping[str, Sequence[str]],
                 k: int, seed: int | None = None):
        if k < 2:
            raise ValueError(f"a group needs k >= 2 models, got {k}")
        self.k = k
        self.requests = requests_from_pairs(pairs)
        self.models = sorted({m for r in self.requests for m in r.images})
        self.code = {m: i for i, m in enumerate(self.models)}
        self.prompt_tags = {key: tuple(v) for key, v in prompt_tags.items()}
        self.rng = np.random.default_rng(seed)
        n, m = len(self.requests), len(self.models)
        # has[r, m]: request r still has a servable image of model m (`drop`)
        self.has = np.zeros((n, m), dtype=bool)
        for r, request in enumerate(self.requests):
            self.has[r, [self.code[x] for x in request.images]] = True
        self.model_load = np.zeros(m)  # groups shown with each model: votes + pending
        self.meet_load = np.zeros((m, m))  # the same, per two models shown together
        self.request_load = np.zeros(n)
        self.index = {(r.prompt_id, r.seed): k for k, r in enumerate(self.requests)}
        self.groups: list[Group] = []
        self._ids: dict[tuple[int, tuple[str, ...]], int] = {}
        self._tag_masks: dict[str, np.ndarray] = {}
        self.queue: deque[tuple[str, int | None, tuple[str, ...]]] = deque()  # adaptive

    # -- groups ---------------------------------------------------------------------
    def group_id(self, request: int, models: Sequence[str]) -> int:
        """The number of the group of `models` (any order) on `request`."""
        key = (request, tuple(sorted(models)))
        gid = self._ids.get(key)
        if gid is None:
            gid = self._ids[key] = len(self.groups)
            self.groups.append(Group(*key))
        return gid

    def images(self, gid: int) -> list[Any]:
        """The group's images, in its models' (name) order."""
        group = self.groups[gid]
        images = self.requests[group.request].images
        return [images[m] for m in group.models]

    def find(self, prompt_id: str, seed: int | None, models: Sequence[str]) -> int | None:
        """The group of a stored vote, or None when its models are not all served."""
        r = self.index.get((prompt_id, seed))
        if r is None or not set(models) <= set(self.requests[r].images):
            return None
        return self.group_id(r, models)

    def usable(self, gid: int) -> bool:
        group = self.groups[gid]
        return bool(self.has[group.request, [self.code[m] for m in group.models]].all())

    def drop(self, request: int, model: str) -> None:
        """Never show `model` on `request` again (its image is missing or changed)."""
        self.has[request, self.code[model]] = False

    # -- counts ---------------------------------------------------------------------
    def on_pending(self, gid: int, delta: int) -> None:
        """A token for group `gid` was issued (+1) or stopped being pending (-1)."""
        self._count(gid, delta)

    def record_vote(self, gid: int) -> None:
        self._count(gid, 1)

    def _count(self, gid: int, delta: float) -> None:
        group = self.groups[gid]
        codes = np.array([self.code[m] for m in group.models])
        self.model_load[codes] += delta
        self.meet_load[np.ix_(codes, codes)] += delta
        self.request_load[group.request] += delta

    # -- choice ---------------------------------------------------------------------
    def tag_mask(self, tag: str | None) -> np.ndarray:
        """Requests that can still show a group (and carry `tag`, when given)."""
        usable = self.has.sum(axis=1) >= 2
        if tag is None:
            return usable
        if tag not in self._tag_masks:
            self._tag_masks[tag] = np.array(
                [tag in self.prompt_tags.get(r.prompt_id, ()) for r in self.requests],
                dtype=bool)
        return usable & self._tag_masks[tag]

    def set_queue(self, picks: Sequence[tuple[str, int | None, Sequence[str]]]) -> None:
        """Replace the adaptive picks ((prompt_id, seed, models), best first;
        `arena.pairs.adaptive_picks` with k > 2)."""
        self.queue = deque((pid, seed, tuple(models)) for pid, seed, models in picks)

    def _from_queue(self, seen: set[int], eligible: np.ndarray) -> int | None:
        fresh = eligible.copy()
        fresh[[self.groups[g].request for g in seen]] = False
        if not fresh.any():  # as below: once a session has seen them all, repeats are fine
            fresh = eligible
        for n, (pid, seed, models) in enumerate(self.queue):
            gid = self.find(pid, seed, models)
            if gid is None or not self.usable(gid):
                continue
            if fresh[self.groups[gid].request]:
                del self.queue[n]
                return gid
        return None

    def choose(self, seen: set[int], tag: str | None) -> int | None:
        """The next group for a session that has seen the groups `seen`: the adaptive
        scheduler's next pick that fits it (`set_queue`), else the under-voted rule;
        None when no request (with `tag`) can show one."""
        eligible = self.tag_mask(tag)
        if not eligible.any():
            return None
        if self.queue:
            pick = self._from_queue(seen, eligible)
            if pick is not None:
                return pick
        if seen:
            fresh = eligible.copy()
            fresh[[self.groups[g].request for g in seen]] = False
            if fresh.any():  # once a session has seen them all, repeats are fine
                eligible = fresh
        chosen: list[int] = []
        candidates = eligible
        meet_scale = self.meet_load.max(initial=0.0) * self.k + 2.0
        while len(chosen) < self.k:
            open_models = self.has[candidates].any(axis=0)
            open_models[chosen] = False
            if not open_models.any():
                break
            # lexicographic (times shown, times shown with the chosen ones, random)
            key = self.model_load * meet_scale + self.meet_load[chosen].sum(axis=0) \
                + 0.5 * self.rng.random(len(self.models))
            pick = int(np.argmin(np.where(open_models, key, np.inf)))
            chosen.append(pick)
            candidates = candidates & self.has[:, pick]
        key = self.request_load + 0.5 * self.rng.random(len(self.requests))
        request = int(np.argmin(np.where(candidates, key, np.inf)))
        return self.group_id(request, [self.models[c] for c in chosen])
