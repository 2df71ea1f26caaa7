"""Suggested supernodes: groups of a graph's feature nodes that play one role.

Ours ("ours"): one transcoder feature at several positions always belongs together;
otherwise two feature nodes are as alike as the smaller of their pooled input and
pooled output cosines (signed edges, partners pooled over positions: see
`supernodes_similarity`); average-linkage clustering cut at `threshold`.
The baseline ("baseline", Neuronpedia's draft, PR #229): cosine of signed edge
profiles over nodes, complete-linkage clustering. Both are deterministic. Thresholds
were chosen on planted graphs (`supernodes_planted`, seeds apart from the tests'):
benchmarks/supernodes.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from circuitscope.graph.effects import total_effects_on_logits
from circuitscope.graph.graph import Graph
from circuitscope.graph.supernodes_clustering import Linkage, agglomerate
from circuitscope.graph.supernodes_labels import graph_label
from circuitscope.graph.supernodes_similarity import Similarities, similarities

Method = Literal["ours", "baseline"]
METHODS: tuple[Method, ...] = ("ours", "baseline")
DEFAULT_THRESHOLDS: dict[str, float] = {"ours": 0.25, "baseline": 0.5}
LINKAGES: dict[str, Linkage] = {"ours": "average", "baseline": "complete"}


@dataclass(frozen=True)
class SupernodeSettings:
    method: Method = "ours"
    """ours (same feature + pooled edge profiles) or baseline (Neuronpedia's draft)."""
    threshold: float | None = None
    """Similarity at which clusters stop merging (None: the method's default)."""
    min_size: int = 2
    """Smallest group suggested."""

    @property
    def cut(self) -> float:
        return DEFAULT_THRESHOLDS[self.method] if self.threshold is None else self.threshold


@dataclass
class SuggestedGroup:
    members: list[int]
    """Feature node indices of the graph, ascending."""
    label: str
    """A name from the graph (tokens → logit); the command may replace it from cards."""
    evidence: dict[str, Any] = field(default_factory=dict)
    """Why these belong together: mean pairwise signals, features, positions."""


def cluster_features(
    graph: Graph, settings: SupernodeSettings, signals: Similarities | None = None
) -> Tensor:
    """[n_features] a cluster id per feature node (0, 1, ... by first appearance)."""
    if settings.method not in METHODS:
        raise ValueError(f"unknown method {settings.method!r}; expected one of {METHODS}")
    signals = similarities(graph) if signals is None else signals
    matrix = signals.combined() if settings.method == "ours" else signals.edge_profile
    return agglomerate(matrix, settings.cut, LINKAGES[settings.method])


def suggest_supernodes(graph: Graph, settings: SupernodeSettings) -> list[SuggestedGroup]:
    """The groups of at least `min_size` feature nodes, most influential first."""
    signals = similarities(graph)
    clusters = cluster_features(graph, settings, signals)
    groups = [
        torch.nonzero(clusters == c).flatten()
        for c in range(int(clusters.max()) + 1 if len(clusters) else 0)
    ]
    groups = [g for g in groups if len(g) >= max(settings.min_size, 2)]
    weight = _node_weight(graph)
    groups.sort(key=lambda g: (-float(weight[g].sum()), int(g[0])))
    effects = total_effects_on_logits(graph, torch.arange(graph.n_features))
    suggestions = []
    for members in groups:
        ablated = -effects[:, members].sum(dim=1)  # for the label only: single effects summed
        suggestions.append(
            SuggestedGroup(
                members=members.tolist(),
                label=graph_label(graph, members.tolist(), ablated),
                evidence=group_evidence(graph, signals, members, weight),
            )
        )
    return suggestions


def group_evidence(
    graph: Graph, signals: Similarities, members: Tensor, weight: Tensor
) -> dict[str, Any]:
    """Mean pairwise signals over a group's members [k], and what it spans."""
    k = len(members)

    def mean(matrix: Tensor) -> float:
        """Mean over pairs of distinct members (the matrices are symmetric)."""
        block = matrix[members[:, None], members].double()
        return round(float((block.sum() - block.diagonal().sum()) / (k * (k - 1))), 4)

    features = {(int(graph.node_layer[m]), int(graph.node_feature[m])) for m in members}
    return {
        "n_members": len(members),
        "n_features": len(features),
        "n_positions": len({int(graph.node_position[m]) for m in members}),
        "layers": sorted({layer for layer, _ in features}),
        "same_feature_pairs": mean(signals.same_feature),
        "pooled_input_cosine": mean(signals.pooled_inputs),
        "pooled_output_cosine": mean(signals.pooled_outputs),
        "edge_profile_cosine": mean(signals.edge_profile),
        "influence": round(float(weight[members].sum()), 6),
    }


def _node_weight(graph: Graph) -> Tensor:
    """[n_features] node influence when the graph has it, else |activation|."""
    if graph.node_influence is not None:
        return graph.node_influence[: graph.n_features].double()
    return graph.node_value[: graph.n_features].double().abs()
