"""K-wise votes (`python -m autojudge.arena RUN --k K`): one voter sees K images of one
prompt and seed at once and picks the best, or orders them all.

    GET  /api/group[?tag=T]  {token, prompt, tags, k, images: [{slot, image_url}, ...]}
    POST /api/vote           {token, best: SLOT} | {token, order: [SLOT, ...]} | {token, tie: true}
    GET  /img/<token>/<slot> an image of a group issued to this session (slot 0..k-1)

A group token is a pair token in every respect (`autojudge.arena.tokens`: signed, bound
to its session, single use, expiring, rate limited); the server keeps which models the
group holds and the order its images are shown in. `best` is the slot of the best image
(ranks `[1, null, ...]` in shown order), `order` lists all K slots best first (ranks
1..K), `tie: true` calls them all equal (all rank 1). The vote is stored as a K-wise row
(`votes.RankingVote`), counted on the live board as the pairs it orders
(`LiveRatings.add_ranking`) and exported as a K-wise battle-log row.

Refusals are those of a pair vote, plus 400 for a body that is not one of the three
forms, a slot outside 0..K-1, an order with the wrong number of entries or a slot twice,
and a pair token sent as a group vote (or the other way round).
"""
from __future__ import annotations

import secrets
import sqlite3
import sys
from typing import Any, Callable

from autojudge.arena.groups import GroupSampler
from autojudge.arena.images import ImageUnavailable
from autojudge.arena.tokens import Issue, Refusal
from autojudge.arena.votes import RankingVote

FORMS = ("best", "order", "tie")
_GROUP_TRIES = 20  # groups tried per request before giving up on unservable ones
_UNSERVABLE = ("an image of this group can no longer be served, so it cannot be voted on; "
               "nothing was recorded: fetch a new group from GET /api/group")
_SHAPE = ('send JSON {"token": ..., "best": SLOT} (the best image\'s slot), '
          '{"token": ..., "order": [SLOT, ...]} (every slot, best first) or '
          '{"token": ..., "tie": true}')


def vote_form(body: Any) -> tuple[str, Any]:
    """(form, value) of a K-wise vote body whose shape is right; Refusal 400 otherwise.
    The slots are checked against the group's K once the token is known (`ranks_of`)."""
    if not isinstance(body, dict) or not isinstance(body.get("token"), str):
        raise Refusal(400, _SHAPE)
    given = [form for form in FORMS if form in body]
    if len(given) != 1 or "choice" in body:
        raise Refusal(400, "give exactly one of best, order or tie; " + _SHAPE)
    form = given[0]
    value = body[form]
    if form == "best" and not _is_slot(value):
        raise Refusal(400, "best must be an image's slot, an integer (0 = the first image)")
    if form == "order" and (not isinstance(value, list)
                            or not all(_is_slot(v) for v in value)):
        raise Refusal(400, "order must be a list of slots (integers), best first")
    if form == "tie" and value is not True:
        raise Refusal(400, "tie must be true (all images equally good)")
    return form, value


def _is_slot(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def ranks_of(form: str, value: Any, k: int) -> tuple[int | None, ...]:
    """The ranks, in shown order, of a vote on K images (1 = best, None = unranked)."""
    slots = f"0..{k - 1}"
    if form == "tie":
        return (1,) * k
    if form == "best":
        if not 0 <= value < k:
            raise Refusal(400, f"best {value} is not a slot of this group; slots are {slots}")
        return tuple(1 if s == value else None for s in range(k))
    if len(value) != k:
        raise Refusal(400, f"order has {len(value)} entries; this group has {k} images: "
                           f"list each slot {slots} once, best first")
    outside = [s for s in value if not 0 <= s < k]
    if outside:
        raise Refusal(400, f"order names slot {outside[0]}; slots are {slots}")
    twice = [s for s in value if value.count(s) > 1]
    if twice:
        raise Refusal(400, f"order lists slot {twice[0]} twice; list each slot {slots} once")
    ranks: list[int | None] = [None] * k
    for position, slot in enumerate(value):
        ranks[slot] = position + 1
    return tuple(ranks)


class KwiseArena:
    """The K-wise routes' logic over an `autojudge.arena.core.Arena` (its tokens, images,
    votes writer and live board); `reveal(row)` formats a model's live board row."""

    def __init__(self, arena: Any, reveal: Callable[[dict], dict]):
        self.arena = arena
        self.reveal = reveal
        runs = arena.runs
        self.sampler = GroupSampler(runs.pairs, {k: v.tags for k, v in runs.prompts.items()},
                                    arena.config.k, arena.config.seed)

    def group(self, sid: str, tag: str | None) -> dict[str, Any]:
        """Issue the next group for session `sid` (only one whose images can be served)."""
        arena = self.arena
        for _ in range(_GROUP_TRIES):
            gid = self.sampler.choose(arena.tokens.session(sid).seen_groups, tag)
            if gid is None:
                raise Refusal(503, "no group" + (f" with tag {tag!r}" if tag else "")
                              + " whose images can be served; the arena's operator has "
                                "been told (server log)")
            if self.servable(gid):
                break
        else:
            raise Refusal(503, "could not find a group whose images can be served; try again")
        order = list(range(len(self.sampler.groups[gid].models)))
        secrets.SystemRandom().shuffle(order)  # random slots: position bias averages out
        token = arena.tokens.issue(sid, gid, False, order=tuple(order))
        request = self.sampler.requests[self.sampler.groups[gid].request]
        prompt = arena.runs.prompts[request.prompt_id]
        return {"token": token, "prompt": prompt.text, "tags": list(prompt.tags),
                "k": len(order),
                "images": [{"slot": s, "image_url": f"/img/{token}/{s}"}
                           for s in range(len(order))],
                "expires_in": arena.config.token_ttl_s}

    def servable(self, gid: int) -> bool:
        """Every image of group `gid` can be served (read, checked and cached now); a
        model whose image cannot is never shown on that prompt again (server log)."""
        if not self.sampler.usable(gid):
            return False
        group = self.sampler.groups[gid]
        for model, ref in zip(group.models, self.sampler.images(gid)):
            try:
                self.arena.images.get(ref)
            except ImageUnavailable as exc:
                self.sampler.drop(group.request, model)
                request = self.sampler.requests[group.request]
                # the path is for the operator only: responses never name server files
                sys.stderr.write(f"warning: arena: {exc}; {model} on prompt "
                                 f"{request.prompt_id} is no longer shown in groups\n")
                return False
        return True

    def image(self, issue: Issue, slot: str) -> tuple[bytes, str]:
        """The image in `slot` of the group behind `issue` (Refusal 404/410 otherwise)."""
        assert issue.order is not None
        k = len(issue.order)
        if not (slot.isascii() and slot.isdigit()) or not int(slot) < k:
            raise Refusal(404, f"no such image; the slot is 0..{k - 1}")
        if not self.servable(issue.pair):
            raise Refusal(410, _UNSERVABLE)
        ref = self.sampler.images(issue.pair)[issue.order[int(slot)]]
        try:
            return self.arena.images.get(ref)
        except ImageUnavailable:  # evicted from the cache and changed since: rare
            group = self.sampler.groups[issue.pair]
            self.sampler.drop(group.request, group.models[issue.order[int(slot)]])
            raise Refusal(410, _UNSERVABLE) from None

    def record_stored(self, row: dict[str, Any]) -> None:
        """A K-wise vote of an earlier session counts in the sampler's loads."""
        gid = self.sampler.find(row["prompt_id"], row["seed"], row["models"])
        if gid is not None:
            self.sampler.record_vote(gid)

    async def vote(self, sid: str | None, body: Any) -> dict[str, Any]:
        """Count one K-wise vote; Refusal (4xx, nothing changed) for anything else."""
        arena = self.arena
        form, value = vote_form(body)
        token = body["token"]
        pending = arena.tokens.lookup(token, sid, "group")  # bad tokens before the limit
        if pending.order is None:
            raise Refusal(400, "this token is for a pair: send {token, choice: "
                               "left|right|tie|bothbad}")
        ranks = ranks_of(form, value, len(pending.order))
        if not self.servable(pending.pair):  # a group nobody could see is no vote
            raise Refusal(410, _UNSERVABLE)
        arena.tokens.allow_vote(sid)
        if arena.writer is None:
            raise Refusal(503, "the arena is starting or stopping; try again")
        issue = arena.tokens.redeem(token, sid, "group")
        vote = self._vote(issue, token, ranks, form)

        def settled(result: Any) -> None:
            """Runs in the loop when the commit ends (even if the voter hung up)."""
            if isinstance(result, BaseException):
                if not isinstance(result, sqlite3.IntegrityError):
                    arena.tokens.unredeem(token)  # not stored: the token stays good
                return
            arena.tokens.stored(token)
            self.sampler.record_vote(issue.pair)
            arena.live.add_ranking(vote.models, vote.ranks, vote.prompt_id, vote.seed)

        try:
            await arena.writer.append(vote, settled)
        except sqlite3.IntegrityError:
            raise Refusal(409, "this group was already voted on; fetch a new one") from None
        except sqlite3.Error as exc:
            sys.stderr.write(f"warning: arena: a vote could not be stored ({exc})\n")
            raise Refusal(503, "the vote could not be stored; try again") from None
        rows = {r["model"]: r for r in arena.live.rows()}
        return {"models": list(vote.models), "ranks": list(ranks), "choice": form,
                "ratings": [self.reveal(rows[m]) for m in vote.models],
                "n_votes": arena.live.n_votes}

    def _vote(self, issue: Issue, token: str, ranks: tuple[int | None, ...],
              form: str) -> RankingVote:
        assert issue.order is not None
        group = self.sampler.groups[issue.pair]
        images = self.sampler.images(issue.pair)
        request = self.sampler.requests[group.request]
        prompt = self.arena.runs.prompts[request.prompt_id]
        return RankingVote(self.arena.config.clock(), issue.session, token, issue.issued,
                           request.prompt_id, prompt.text, request.seed, prompt.tags,
                           tuple(group.models[i] for i in issue.order),
                           tuple(images[i].sha for i in issue.order), ranks, form)
