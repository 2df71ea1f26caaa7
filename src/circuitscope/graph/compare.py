"""Comparing two graphs, e.g. the same question asked in English and in French.

A feature is a transcoder feature, (layer, feature index): its nodes sit at different
positions in the two prompts, so each graph's feature nodes are pooled by feature. For
every feature the comparison gives its influence on the logits in each graph (the sum
of its nodes' influence) and its number of nodes in each, and sorts the features into
shared, only in A and only in B. Supernode suggestions (`supernodes.json`, see
`supernodes_files`) are matched across the graphs by the overlap of their feature sets.

Node influence is the graph's own `node_influence` when both graphs carry one (a pruned
graph from `trace` holds every node's influence in the full graph, the numbers `trace`
prints); otherwise both are computed on the graphs as given with `influence.influence`,
the walk pruning and the scores use. Comparing two graphs only makes sense when they
were traced with the same transcoder (feature indices of two transcoders are unrelated);
that is the caller's to check with `check_same_transcoder` (the `compare` command and
the page's compare view do).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Set
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from torch import Tensor

from circuitscope.errors import CircuitscopeError
from circuitscope.graph.graph import Graph
from circuitscope.graph.influence import influence, normalize_rows
from circuitscope.graph.neuronpedia import node_ids

if TYPE_CHECKING:
    from circuitscope.graph.trace_folder import TraceFolder

FeatureKey = tuple[int, int]
"""(layer, feature index): one transcoder feature, wherever its nodes sit."""
DEFAULT_MATCH_THRESHOLD = 0.5


@dataclass(frozen=True)
class FeatureRow:
    """One feature and what it does in each graph (0 and () in a graph without it)."""

    layer: int
    index: int
    """The feature's index in its layer."""
    influence_a: float
    """Sum of the influence on the logits of its nodes in graph A."""
    influence_b: float
    """The same in graph B."""
    nodes_a: int
    """Its nodes in graph A (one per position it is kept at)."""
    nodes_b: int
    positions_a: tuple[int, ...]
    """The positions of its nodes in graph A, ascending."""
    positions_b: tuple[int, ...]

    @property
    def key(self) -> FeatureKey:
        return (self.layer, self.index)

    @property
    def label(self) -> str:
        return f"L{self.layer}/F{self.index}"


@dataclass(frozen=True)
class CompareSummary:
    """How much the two graphs' features overlap."""

    n_shared: int
    n_only_a: int
    n_only_b: int
    shared_share_a: float
    """Of graph A's feature influence (the sum over its feature nodes), the fraction on
    shared features; 0.0 when A has none."""
    shared_share_b: float
    """The same for graph B."""
    jaccard: float
    """|A ∩ B| / |A ∪ B| of the two feature sets (1.0 when both are empty)."""
    influence_a: float
    """Graph A's feature influence: the sum of its feature nodes' influence."""
    influence_b: float
    influence_source: Literal["stored", "recomputed"]
    """stored: the graphs' own `node_influence`; recomputed: the influence on the graphs
    as given (used unless both carry one)."""


@dataclass(frozen=True)
class Supernode:
    """One suggested group of one graph, reduced to its features."""

    group: int
    """Its index in the document's `groups`."""
    label: str
    features: tuple[FeatureKey, ...]
    """The (layer, index) of its member nodes, each once, ascending."""
    nodes: int
    """Its member nodes."""
    influence: float
    """Sum of its member nodes' influence in its graph."""


@dataclass(frozen=True)
class SupernodeMatch:
    """A group of A and a group of B with overlapping features."""

    a: Supernode
    b: Supernode
    shared: int
    """Features in both groups."""
    jaccard: float
    """shared / features in either group."""


@dataclass(frozen=True)
class SupernodeComparison:
    """Groups of A and of B paired one to one (each group in at most one pair)."""

    threshold: float
    """Smallest Jaccard index of a match."""
    matched: tuple[SupernodeMatch, ...]
    """Most influential pair first (A's influence + B's), then by group index."""
    only_a: tuple[Supernode, ...]
    """Groups of A with no match, most influential first, then by group index."""
    only_b: tuple[Supernode, ...]


@dataclass(frozen=True)
class GraphComparison:
    """Two graphs' features side by side (see the module docstring)."""

    prompt_a: str
    prompt_b: str
    summary: CompareSummary
    shared: tuple[FeatureRow, ...]
    """Features in both graphs, by influence_a + influence_b descending, then layer, index."""
    only_a: tuple[FeatureRow, ...]
    """Features only in A, by influence_a descending, then layer, index."""
    only_b: tuple[FeatureRow, ...]
    """Features only in B, by influence_b descending, then layer, index."""
    supernodes: SupernodeComparison | None
    """The matched suggestions; None unless both graphs came with a document."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data: dataclasses as objects, tuples as lists."""
        return dataclasses.asdict(self)


def compare_graphs(
    a: Graph,
    b: Graph,
    supernodes_a: Mapping[str, Any] | None = None,
    supernodes_b: Mapping[str, Any] | None = None,
    match_threshold: float = DEFAULT_MATCH_THRESHOLD,
) -> GraphComparison:
    """Compare the features of two (pruned) graphs of the same transcoder.

    supernodes_a, supernodes_b: the suggestions documents of the graphs (`supernodes.json`,
    whose members are node ids of the graph); groups are matched when both are given.
    match_threshold: the smallest Jaccard index of two groups' feature sets that matches
    them, in (0, 1]. Raises CircuitscopeError for a document that names a node that is
    not a feature node of its graph (it was written for another graph)."""
    if not 0.0 < match_threshold <= 1.0:
        raise ValueError(f"match_threshold must be in (0, 1], got {match_threshold}")
    stored = a.node_influence is not None and b.node_influence is not None
    weight_a, weight_b = node_influence(a, stored), node_influence(b, stored)
    pooled_a, pooled_b = pool_features(a, weight_a), pool_features(b, weight_b)
    empty: tuple[float, tuple[int, ...]] = (0.0, ())
    rows = {
        key: _row(key, pooled_a.get(key, empty), pooled_b.get(key, empty))
        for key in pooled_a.keys() | pooled_b.keys()
    }
    shared = sorted(
        (rows[key] for key in pooled_a.keys() & pooled_b.keys()),
        key=lambda r: (-(r.influence_a + r.influence_b), r.layer, r.index),
    )
    only_a = sorted(
        (rows[key] for key in pooled_a.keys() - pooled_b.keys()),
        key=lambda r: (-r.influence_a, r.layer, r.index),
    )
    only_b = sorted(
        (rows[key] for key in pooled_b.keys() - pooled_a.keys()),
        key=lambda r: (-r.influence_b, r.layer, r.index),
    )
    total_a = sum(r.influence_a for r in rows.values())
    total_b = sum(r.influence_b for r in rows.values())
    summary = CompareSummary(
        n_shared=len(shared),
        n_only_a=len(only_a),
        n_only_b=len(only_b),
        shared_share_a=_fraction(sum(r.influence_a for r in shared), total_a),
        shared_share_b=_fraction(sum(r.influence_b for r in shared), total_b),
        jaccard=jaccard(pooled_a.keys(), pooled_b.keys()),
        influence_a=total_a,
        influence_b=total_b,
        influence_source="stored" if stored else "recomputed",
    )
    groups = None
    if supernodes_a is not None and supernodes_b is not None:
        groups = match_supernodes(
            supernodes_of(a, weight_a, supernodes_a, "A"),
            supernodes_of(b, weight_b, supernodes_b, "B"),
            match_threshold,
        )
    return GraphComparison(
        a.prompt, b.prompt, summary, tuple(shared), tuple(only_a), tuple(only_b), groups
    )


def recorded_transcoders(folder: TraceFolder, graph: Graph) -> tuple[str, str]:
    """(resolved, given): the transcoder as the graph's metadata names it (resolved to an
    absolute path where it was a path) and as config.json names it (as it was given);
    "" where the folder does not record it."""
    resolved = graph.metadata.get("transcoder")
    given = folder.settings().get("transcoder")
    return (
        resolved if isinstance(resolved, str) else "",
        given if isinstance(given, str) else "",
    )


def check_same_transcoder(folder_a: TraceFolder, a: Graph, folder_b: TraceFolder, b: Graph) -> None:
    """Refuse (CircuitscopeError) two graphs whose transcoders differ (their feature
    indices are unrelated); `a`, `b` are graphs of the two trace folders.

    Compared as resolved paths when both graphs record them, else as given in config.json
    when both folders record that; not checked when neither is recorded by both."""
    recorded = zip(
        recorded_transcoders(folder_a, a), recorded_transcoders(folder_b, b), strict=True
    )
    for transcoder_a, transcoder_b in recorded:
        if transcoder_a and transcoder_b:
            if transcoder_a != transcoder_b:
                raise CircuitscopeError(
                    f"{folder_a.path} and {folder_b.path} were traced with different "
                    f"transcoders ({transcoder_a} and {transcoder_b}); only graphs of one "
                    "transcoder share features"
                )
            return


def node_influence(graph: Graph, stored: bool = True) -> Tensor:
    """[n_features] float64 the influence on the logits of each feature node: the graph's
    `node_influence` when `stored` and it has one, else computed on the graph as given
    (normalised |edges|, `influence.influence`)."""
    if stored and graph.node_influence is not None:
        values = graph.node_influence
    else:
        values = influence(normalize_rows(graph.edges), graph.logit_weights())
    return values[: graph.n_features].double()


def pool_features(graph: Graph, weight: Tensor) -> dict[FeatureKey, tuple[float, tuple[int, ...]]]:
    """(layer, index) -> (summed weight [n_features] of its nodes, their positions ascending)."""
    layers = graph.node_layer[: graph.n_features].tolist()
    indices = graph.node_feature[: graph.n_features].tolist()
    positions = graph.node_position[: graph.n_features].tolist()
    totals: dict[FeatureKey, float] = {}
    where: dict[FeatureKey, list[int]] = {}
    for layer, index, position, value in zip(
        layers, indices, positions, weight.tolist(), strict=True
    ):
        key = (int(layer), int(index))
        totals[key] = totals.get(key, 0.0) + value
        where.setdefault(key, []).append(int(position))
    return {key: (totals[key], tuple(sorted(where[key]))) for key in totals}


def jaccard(x: Set[Any], y: Set[Any]) -> float:
    """|x ∩ y| / |x ∪ y|; 1.0 for two empty sets (they are the same set)."""
    union = len(x | y)
    return len(x & y) / union if union else 1.0


def supernodes_of(
    graph: Graph, weight: Tensor, document: Mapping[str, Any], name: str = "A"
) -> list[Supernode]:
    """The groups of a suggestions document as feature sets of `graph`; `weight`
    [n_features] the nodes' influence; `name` names the graph in errors."""
    groups = document.get("groups")
    if not isinstance(groups, list):
        raise CircuitscopeError(f"supernodes of graph {name}: the document has no list of groups")
    ids = {node: i for i, node in enumerate(node_ids(graph)[: graph.n_features])}
    layers, indices = graph.node_layer.tolist(), graph.node_feature.tolist()
    supernodes = []
    for number, group in enumerate(groups):
        members = group.get("members") if isinstance(group, dict) else None
        if not isinstance(members, list) or not members:
            raise CircuitscopeError(f"supernodes of graph {name}: group {number} has no members")
        nodes = []
        for member in members:
            if member not in ids:
                raise CircuitscopeError(
                    f"supernodes of graph {name}: group {number} names {member!r}, not a "
                    "feature node of its pruned graph; run `circuitscope supernodes` again"
                )
            nodes.append(ids[member])
        features = sorted({(int(layers[n]), int(indices[n])) for n in nodes})
        supernodes.append(
            Supernode(
                group=number,
                label=str(group.get("label", "")),
                features=tuple(features),
                nodes=len(set(nodes)),
                influence=float(weight[sorted(set(nodes))].sum()),
            )
        )
    return supernodes


def match_supernodes(
    groups_a: list[Supernode], groups_b: list[Supernode], threshold: float
) -> SupernodeComparison:
    """Pair the groups one to one, greedily: the pair with the highest Jaccard index of
    feature sets first (ties: the more influential pair, then the lower group indices),
    then the best pair among the groups left, while the index is at least `threshold`."""
    candidates = []
    for x in groups_a:
        for y in groups_b:
            score = jaccard(set(x.features), set(y.features))
            if score >= threshold:
                candidates.append((-score, -(x.influence + y.influence), x.group, y.group, x, y))
    candidates.sort(key=lambda c: c[:4])
    used_a: set[int] = set()
    used_b: set[int] = set()
    matched = []
    for negative_score, _, group_a, group_b, x, y in candidates:
        if group_a in used_a or group_b in used_b:
            continue
        used_a.add(group_a)
        used_b.add(group_b)
        shared = len(set(x.features) & set(y.features))
        matched.append(SupernodeMatch(x, y, shared, -negative_score))
    matched.sort(key=lambda m: (-(m.a.influence + m.b.influence), m.a.group, m.b.group))

    def left(groups: list[Supernode], used: set[int]) -> tuple[Supernode, ...]:
        unmatched = [g for g in groups if g.group not in used]
        return tuple(sorted(unmatched, key=lambda g: (-g.influence, g.group)))

    return SupernodeComparison(
        threshold, tuple(matched), left(groups_a, used_a), left(groups_b, used_b)
    )


def _row(
    key: FeatureKey, a: tuple[float, tuple[int, ...]], b: tuple[float, tuple[int, ...]]
) -> FeatureRow:
    return FeatureRow(key[0], key[1], a[0], b[0], len(a[1]), len(b[1]), a[1], b[1])


def _fraction(part: float, total: float) -> float:
    return part / total if total > 0 else 0.0
