"""Voter sessions, pair tokens and rate limits: a vote counts only for a pair this server
issued to that session, once, before it expires.

- A session is a random id in a cookie, signed (HMAC-SHA256 with a per-server secret) so
  a made-up cookie is refused rather than silently starting a session.
- A pair token is a random nonce plus an HMAC over (nonce, session id): a token copied
  to another session, or edited, fails the MAC. What the token stands for (which pair,
  which side is which model) stays on the server, so nothing in the token or in the
  image URLs built from it tells the models apart before the vote.
- Tokens are single use (redeemed tokens are remembered until they would have expired)
  and expire after `ttl_s`. A session holds at most `max_outstanding` unvoted tokens
  (the shown pair and the preloaded ones); issuing more drops the oldest.
- Token buckets per session limit votes and pair requests.
- A group token (`--k K`, `autojudge.arena.groups`) works the same way; its issue also
  holds the order its K images are shown in, so the vote is read in that order.

Refusals are `Refusal(status, message)`: 400 malformed, 403 forged or another
session's, 409 replayed, 410 expired or unknown, 429 rate limited.

Example:
    >>> keys = Keys(b"k" * 32)
    >>> sid = keys.session_id(keys.new_session_cookie())
    >>> tokens = TokenBook(keys, ttl_s=60, clock=lambda: 0.0)
    >>> tok = tokens.issue(sid, pair=3, swapped=False)
    >>> tokens.redeem(tok, sid).pair
    3
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Callable

Clock = Callable[[], float]
_VERIFIED_MAX = 100_000  # session cookies remembered as verified


class Refusal(Exception):
    """A request the arena refuses: HTTP status and one line saying why and what to do."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class Keys:
    """HMAC signing with one per-server secret (random unless given)."""

    def __init__(self, secret: bytes | None = None):
        self._secret = secret or secrets.token_bytes(32)
        # cookies already verified -> their session id: every request carries the
        # cookie, and a dict lookup is cheaper than an HMAC (bounded: cleared when full)
        self._verified: dict[str, str] = {}

    def mac(self, purpose: str, *parts: str) -> str:
        """A 128-bit MAC of `parts`, domain-separated by `purpose`."""
        message = "\x1f".join((purpose, *parts)).encode()
        return _b64(hmac.new(self._secret, message, hashlib.sha256).digest()[:16])

    def new_session_cookie(self) -> str:
        sid = secrets.token_urlsafe(16)
        return f"{sid}.{self.mac('session', sid)}"

    def session_id(self, cookie: str | None) -> str | None:
        """The session id of a cookie value, or None when absent or not ours."""
        # compare_digest refuses non-ASCII str: such a cookie is simply not ours
        known = self._verified.get(cookie) if cookie else None
        if known is not None:
            return known
        if not cookie or cookie.count(".") != 1 or not cookie.isascii():
            return None
        sid, tag = cookie.split(".")
        if not hmac.compare_digest(tag, self.mac("session", sid)):
            return None
        if len(self._verified) >= _VERIFIED_MAX:
            self._verified.clear()
        self._verified[cookie] = sid
        return sid


@dataclass(slots=True)
class Issue:
    """What a token stands for (server side only)."""

    pair: int  # the pair's index; for a group token, the group's
    swapped: bool  # True: model_y is shown on the left
    session: str
    issued: float
    used: bool = False
    evicted: bool = False  # dropped for a newer token of the same session
    # a group token: the group's models (name order) by shown slot, e.g. (2, 0, 1)
    order: tuple[int, ...] | None = None


@dataclass
class Bucket:
    """A token bucket: `rate` per second, at most `burst` saved up."""

    rate: float
    burst: float
    level: float = -1.0
    stamp: float = 0.0

    def allow(self, now: float) -> bool:
        if self.rate <= 0:  # 0 = no limit
            return True
        if self.level < 0:
            self.level, self.stamp = self.burst, now
        self.level = min(self.burst, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.level < 1.0:
            return False
        self.level -= 1.0
        return True


@dataclass
class Session:
    """Per-session state: rate limits, pairs already issued to it, unvoted tokens."""

    votes: Bucket
    pairs: Bucket
    seen: set[int] = field(default_factory=set)
    seen_groups: set[int] = field(default_factory=set)
    outstanding: deque = field(default_factory=deque)
    last: float = 0.0


class TokenBook:
    """Issues and redeems pair tokens; keeps sessions (bounded, least recently used out).

    Args:
        keys: the server's signing keys.
        ttl_s: seconds a token stays valid.
        votes_per_minute: per-session vote rate (0: unlimited); bursts of `burst`.
        max_outstanding: unvoted tokens a session may hold.
        max_sessions: sessions remembered (the least recently used are dropped).
        clock: time source (tests pass a fake one).
        on_pending: called with (pair, +1) when a token is issued and (pair, -1) when it
            stops being pending (voted, expired, dropped), so the sampler can count the
            pairs on screen without scanning every token.
        on_group_pending: the same for group tokens (the group's number).
    """

    def __init__(self, keys: Keys, ttl_s: float = 900.0, votes_per_minute: float = 120.0,
                 burst: float = 10.0, max_outstanding: int = 8,
                 max_sessions: int = 100_000, clock: Clock = time.time,
                 on_pending: Callable[[int, int], None] = lambda pair, delta: None,
                 on_group_pending: Callable[[int, int], None] = lambda group, delta: None):
        self.keys = keys
        self.ttl_s = ttl_s
        self.vote_rate = votes_per_minute / 60.0
        self.burst = burst
        self.max_outstanding = max_outstanding
        self.max_sessions = max_sessions
        self.clock = clock
        self.on_pending = on_pending
        self.on_group_pending = on_group_pending
        # nonce -> its Issue, oldest first; once its vote is stored, just the time it was
        # issued (a float: replays are still refused, and the garbage collector has no
        # object per vote to walk in a long-running server)
        self._issues: OrderedDict[str, Issue | float] = OrderedDict()
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def session(self, sid: str) -> Session:
        """The state of session `sid` (created on first use)."""
        state = self._sessions.get(sid)
        if state is None:
            # Pair requests may run ahead of votes by the preloaded pairs, so 3x the rate.
            state = Session(Bucket(self.vote_rate, self.burst),
                            Bucket(3 * self.vote_rate, 3 * self.burst))
            self._sessions[sid] = state
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        else:
            self._sessions.move_to_end(sid)
        state.last = self.clock()
        return state

    def allow_pair(self, sid: str) -> None:
        if not self.session(sid).pairs.allow(self.clock()):
            raise Refusal(429, "too many pair requests from this session; slow down")

    def allow_vote(self, sid: str) -> None:
        if not self.session(sid).votes.allow(self.clock()):
            raise Refusal(429, "too many votes from this session; slow down")

    def issue(self, sid: str, pair: int, swapped: bool,
              order: tuple[int, ...] | None = None) -> str:
        """A new token for `pair` shown to session `sid`; with `order`, a token for
        group `pair` shown in that order."""
        now = float(self.clock())
        self._expire(now)
        state = self.session(sid)
        nonce = secrets.token_urlsafe(12)
        issue = self._issues[nonce] = Issue(pair, swapped, sid, now, order=order)
        self._pending(issue, 1)
        # not again for this session (its preloaded pair included)
        (state.seen if order is None else state.seen_groups).add(pair)
        state.outstanding.append(nonce)
        while len(state.outstanding) > self.max_outstanding:
            old = self._issues.get(state.outstanding.popleft())
            if isinstance(old, Issue) and not old.used and not old.evicted:
                old.evicted = True  # refused as expired from now on
                self._pending(old, -1)
        return f"{nonce}.{self.keys.mac('pair', nonce, sid)}"

    def lookup(self, token: object, sid: str | None, what: str = "pair") -> Issue:
        """The open issue behind `token` for session `sid` (issued to it, not expired, not
        voted on), else a Refusal; its message names what was shown (`what`: "pair" or
        "group")."""
        fetch = f"GET /api/{what}"
        if (not isinstance(token, str) or token.count(".") != 1 or len(token) > 200
                or not token.isascii()):
            raise Refusal(400, f"malformed token; send the token from {fetch}")
        if sid is None:
            raise Refusal(403, f"no voter session (cookie); fetch a {what} from {fetch} "
                               "first")
        nonce, tag = token.split(".")
        if not hmac.compare_digest(tag, self.keys.mac("pair", nonce, sid)):
            raise Refusal(403, "this token was not issued to this session; fetch your own "
                               f"{what} from {fetch}")
        issue = self._issues.get(nonce)
        now = self.clock()
        issued = issue if isinstance(issue, float) else None if issue is None else issue.issued
        if issued is None or now - issued > self.ttl_s or (
                isinstance(issue, Issue) and issue.evicted):
            raise Refusal(410, f"this {what} expired; fetch a new one from {fetch}")
        if isinstance(issue, float) or issue.used:
            raise Refusal(409, f"this {what} was already voted on; fetch a new one")
        return issue

    def redeem(self, token: object, sid: str | None, what: str = "pair") -> Issue:
        """Look up and mark used in one step (no await in between: no double vote)."""
        issue = self.lookup(token, sid, what)
        issue.used = True
        self._pending(issue, -1)
        state = self._sessions.get(issue.session)
        if state is not None:
            nonce = str(token).split(".")[0]
            if nonce in state.outstanding:
                state.outstanding.remove(nonce)
        return issue

    def stored(self, token: str) -> None:
        """The token's vote is on disk: keep only what refuses a replay."""
        nonce = token.split(".")[0]
        issue = self._issues.get(nonce)
        if isinstance(issue, Issue):
            self._issues[nonce] = float(issue.issued)  # assignment keeps the dict's order

    def unredeem(self, token: str) -> None:
        """Give a token back when its vote could not be stored."""
        issue = self._issues.get(token.split(".")[0])
        if isinstance(issue, Issue) and issue.used:
            issue.used = False
            self._pending(issue, 1)

    def _expire(self, now: float) -> None:
        # Oldest first: tokens are issued in time order, so stop at the first live one.
        # An evicted token at the front leaves at once; one behind a live token leaves
        # when it reaches the front (it is refused as expired meanwhile).
        while self._issues:
            nonce, issue = next(iter(self._issues.items()))
            if isinstance(issue, float):
                if now - issue <= self.ttl_s:
                    break
                self._issues.popitem(last=False)
                continue
            if now - issue.issued <= self.ttl_s and not issue.evicted:
                break
            self._issues.popitem(last=False)
            if not issue.used and not issue.evicted:
                self._pending(issue, -1)
            state = self._sessions.get(issue.session)
            if state is not None and nonce in state.outstanding:
                state.outstanding.remove(nonce)

    def _pending(self, issue: Issue, delta: int) -> None:
        if issue.order is None:
            self.on_pending(issue.pair, delta)
        else:
            self.on_group_pending(issue.pair, delta)
