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
from scipy.sparse.csgraph import breadth_first_order, connected_components

from autojudge.ratings.bradley_terry import Battles, Matchups, aggregate_matchups


@dataclass(frozen=True)
class BattleGraph:
    """Components and separation structure of one battle log.

    Reachability is answered from the condensation (the DAG of SCCs) without a dense
    models x models matrix: a whole component reaches a model iff the model's SCC is the
    component's only sink (every SCC reaches some sink), and a model reaches its whole
    component iff its SCC is the only source. Pairwise questions walk the sparse DAG.

    Attributes:
        component: per model, its connected component (0, 1, ... by first model), or -1
            for a model without battles.
        n_components: number of components with battles.
        scc: per model, its strongly connected component in the effective-win digraph.
        dag: the condensation, CSR (n_scc x n_scc), an entry where some model of one SCC
            beat (or tied) some model of the other.
        only_source, only_sink: per component, its single source / sink SCC, or -1 when
            it has several.
    """

    component: np.ndarray
    n_components: int
    scc: np.ndarray
    dag: sparse.csr_matrix
    only_source: np.ndarray
    only_sink: np.ndarray

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
        own = self.scc[model]
        return bool(self.only_source[comp] != own), bool(self.only_sink[comp] != own)

    def open_sides_of_difference(self, plus: int, minus: int) -> tuple[bool, bool]:
        """(open below, open above) of rating[plus] - rating[minus]; both open when the
        two models are in different components (or either has no battles)."""
        if self.component[plus] < 0 or self.component[plus] != self.component[minus]:
            return True, True
        return not self.reaches(plus, minus), not self.reaches(minus, plus)

    def reaches(self, p: int, q: int) -> bool:
        """Whether a chain of effective wins leads from model p to model q (p == q too)."""
        return bool(self.descendants(int(self.scc[p]))[self.scc[q]])

    def descendants(self, scc: int) -> np.ndarray:
        """Per SCC, whether SCC `scc` reaches it (itself included): one sparse walk."""
        order = breadth_first_order(self.dag, scc, directed=True,
                                    return_predecessors=False)
        out = np.zeros(self.dag.shape[0], dtype=bool)
        out[order] = True
        return out

    def ancestors(self, scc: int) -> np.ndarray:
        """Per SCC, whether it reaches SCC `scc` (itself included)."""
        order = breadth_first_order(self.dag.T.tocsr(), scc, directed=True,
                                    return_predecessors=False)
        out = np.zeros(self.dag.shape[0], dtype=bool)
        out[order] = True
        return out

    def reach_from(self, model: int) -> np.ndarray:
        """Per model, whether `model` reaches it."""
        return self.descendants(int(self.scc[model]))[self.scc]

    @property
    def reach(self) -> np.ndarray:
        """reach[p, q] True when model p reaches model q: a dense (models x models)
        matrix, built on demand one SCC at a time (for small logs and tests)."""
        n_scc = self.dag.shape[0]
        by_scc = np.stack([self.descendants(c) for c in range(n_scc)]) if n_scc else \
            np.zeros((0, 0), dtype=bool)
        return by_scc[self.scc[:, None], self.scc[None, :]]

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
    n_comp = int(component.max() + 1) if played.any() else 0
    dag, only_source, only_sink = _condense(src, dst, scc, n_scc, component, n_comp)
    return BattleGraph(component, n_comp, scc, dag, only_source, only_sink)


def _renumber(labels: np.ndarray, played: np.ndarray) -> np.ndarray:
    """Component labels 0, 1, ... in order of each component's first model; -1 for
    models without battles (scipy gives each of them a component of its own)."""
    out = np.full(len(labels), -1, dtype=np.int64)
    seen: dict[int, int] = {}
    for k in np.flatnonzero(played):
        out[k] = seen.setdefault(int(labels[k]), len(seen))
    return out


def _condense(src: np.ndarray, dst: np.ndarray, scc: np.ndarray, n_scc: int,
              component: np.ndarray, n_comp: int
              ) -> tuple[sparse.csr_matrix, np.ndarray, np.ndarray]:
    """The SCC DAG and, per component, its single source and sink SCC (-1: several)."""
    cross = scc[src] != scc[dst]
    a, b = scc[src][cross], scc[dst][cross]
    dag = sparse.csr_matrix((np.ones(len(a), dtype=bool), (a, b)), shape=(n_scc, n_scc))
    has_in = np.zeros(n_scc, dtype=bool)
    has_out = np.zeros(n_scc, dtype=bool)
    has_in[b], has_out[a] = True, True
    # An SCC's component: that of any of its models (SCCs never cross components).
    comp_of = np.full(n_scc, -1, dtype=np.int64)
    comp_of[scc] = component
    return dag, _single(~has_in, comp_of, n_comp), _single(~has_out, comp_of, n_comp)


def _single(mask: np.ndarray, comp_of: np.ndarray, n_comp: int) -> np.ndarray:
    """Per component, its one SCC with `mask` set, or -1 when it has none or several."""
    hit = np.flatnonzero(mask & (comp_of >= 0))
    count = np.bincount(comp_of[hit], minlength=n_comp)
    out = np.full(n_comp, -1, dtype=np.int64)
    out[comp_of[hit]] = hit
    out[count != 1] = -1
    return out
