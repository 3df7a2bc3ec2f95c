"""What a battle graph can decide: connected components and separation.

Two facts about Bradley-Terry decide which comparisons the data support at all:

- **Connectivity.** Models are linked when they fought at least once (any outcome). Models
  in different connected components share no data: their rating gap is set by how each
  component is centred, not by battles, so no rank, gap or verdict crosses components.
- **Separation** (Zermelo 1929; Ford 1957). Inside a component the maximum-likelihood
  ratings exist iff the *effective-win* digraph (i -> j when i beat j at least once or
  they tied: ties count half a win each way) is strongly connected. Otherwise its strongly
  connected components (SCCs) form a DAG, and the likelihood keeps growing as the SCCs
  move apart along it: a model that won every decisive battle can be rated arbitrarily
  high. A weak prior keeps the point rating finite, but that value is the prior's, and a
  bootstrap cannot move it (every resample is separated too).

Which side of a contrast the data leave open follows from reachability in that digraph
("p reaches q": a chain of effective wins leads from p to q):

- a model's rating against its component's mean is unbounded above iff some model of the
  component does not reach it, and unbounded below iff it does not reach every model;
- a difference rating[p] - rating[q] (a gate's candidate minus baseline, or a model
  against an anchor) is unbounded above iff q does not reach p, and below iff p does not
  reach q.

(Proof sketch: the likelihood's supremum is approached exactly along level assignments
that are constant on SCCs and non-increasing along the DAG's edges; such assignments are
non-negative sums of indicators of ancestor-closed sets, so a contrast is unbounded above
iff some ancestor-closed set has positive contrast weight.)

Example:
    >>> import numpy as np
    >>> from autojudge.ratings.bradley_terry import Battles, Matchups, aggregate_matchups
    >>> # a beat b, b and c tied, d never fought
    >>> g = battle_graph(Battles(("a", "b", "c", "d"), np.array([0, 1]), np.array([1, 2]),
    ...                          np.array([1.0, 0.5])))
    >>> g.component.tolist(), g.n_components
    ([0, 0, 0, -1], 1)
    >>> g.open_sides_vs_mean(0), g.open_sides_vs_mean(1)
    ((False, True), (True, False))
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from autojudge.ratings.bradley_terry import Battles, Matchups, aggregate_matchups


@dataclass(frozen=True)
class BattleGraph:
    """Components and separation structure of one battle log.

    Attributes:
        component: per model, its connected component (0, 1, ... by first model), or -1
            for a model without battles.
        n_components: number of components with battles.
        scc: per model, its strongly connected component in the effective-win digraph.
        reach: reach[p, q] True when model p reaches model q (p == q included).
    """

    component: np.ndarray
    n_components: int
    scc: np.ndarray
    reach: np.ndarray

    @property
    def connected(self) -> bool:
        """Every model with battles is in one component."""
        return self.n_components <= 1

    def members(self, comp: int) -> np.ndarray:
        """Model codes of component `comp`."""
        return np.flatnonzero(self.component == comp)

    def separated(self, model: int) -> bool:
        """The data bound this model's rating on at most one side (see module doc)."""
        low, high = self.open_sides_vs_mean(model)
        return low or high

    def open_sides_vs_mean(self, model: int) -> tuple[bool, bool]:
        """(open below, open above) of the model's rating against its component mean."""
        comp = self.component[model]
        if comp < 0:
            return True, True
        members = self.members(comp)
        open_high = bool(not self.reach[members, model].all())
        open_low = bool(not self.reach[model, members].all())
        return open_low, open_high

    def open_sides_of_difference(self, plus: int, minus: int) -> tuple[bool, bool]:
        """(open below, open above) of rating[plus] - rating[minus]; both open when the
        two models are in different components (or either has no battles)."""
        if self.component[plus] < 0 or self.component[plus] != self.component[minus]:
            return True, True
        return bool(not self.reach[plus, minus]), bool(not self.reach[minus, plus])

    def linked(self, p: int, q: int) -> bool:
        """Whether battles link the two models (same component)."""
        return bool(self.component[p] >= 0 and self.component[p] == self.component[q])


def battle_graph(battles: Battles, matchups: Matchups | None = None) -> BattleGraph:
    """Connected components, SCCs and reachability of encoded battles.

    Self-battles and battles of zero weight link nothing.

    Args:
        battles: encoded battles.
        matchups: `aggregate_matchups(battles)[0]` when the caller already has it (the
            graph needs only which pairs met and who won at least once).
    """
    m = battles.n_models
    mu = matchups if matchups is not None else aggregate_matchups(battles)[0]
    met = (mu.eff_i + mu.eff_j) > 0
    i, j = mu.i[met], mu.j[met]
    played = np.zeros(m, dtype=bool)
    played[i] = True
    played[j] = True
    undirected = sparse.coo_matrix((np.ones(len(i)), (i, j)), shape=(m, m))
    _, labels = connected_components(undirected, directed=False)
    component = _renumber(labels, played)
    # Effective-win edges: i -> j when i won or tied against j at least once.
    forward, backward = mu.eff_i[met] > 0, mu.eff_j[met] > 0
    src = np.concatenate([i[forward], j[backward]])
    dst = np.concatenate([j[forward], i[backward]])
    digraph = sparse.coo_matrix((np.ones(len(src)), (src, dst)), shape=(m, m)).tocsr()
    n_scc, scc = connected_components(digraph, directed=True, connection="strong")
    reach = _reachability(digraph, scc, n_scc)
    return BattleGraph(component, int(component.max() + 1) if played.any() else 0, scc,
                       reach)


def _renumber(labels: np.ndarray, played: np.ndarray) -> np.ndarray:
    """Component labels 0, 1, ... in order of each component's first model; -1 for
    models without battles (scipy gives each of them a component of its own)."""
    out = np.full(len(labels), -1, dtype=np.int64)
    seen: dict[int, int] = {}
    for k in np.flatnonzero(played):
        out[k] = seen.setdefault(int(labels[k]), len(seen))
    return out


def _reachability(digraph: sparse.csr_matrix, scc: np.ndarray, n_scc: int) -> np.ndarray:
    """reach[p, q]: a directed path leads from p to q (reflexive)."""
    m = len(scc)
    # Condense to the SCC DAG, take its transitive closure by repeated boolean squaring
    # (log2(n) products of an n x n matrix: trivial for the model counts seen in practice).
    coo = digraph.tocoo()
    dag = np.zeros((n_scc, n_scc), dtype=bool)
    dag[scc[coo.row], scc[coo.col]] = True
    closure = dag | np.eye(n_scc, dtype=bool)
    while True:
        step = (closure.astype(np.int32) @ closure.astype(np.int32)) > 0
        if (step == closure).all():
            break
        closure = step
    return closure[scc[:, None], scc[None, :]] if m else np.zeros((0, 0), dtype=bool)
