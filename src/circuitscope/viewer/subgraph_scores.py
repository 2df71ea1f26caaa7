"""The scores of a selection of features (the page's pinned subgraph), in Python.

The page computes the replacement and completeness scores of the nodes a person
pinned with a port of `graph.scores.graph_scores` (web/src/scores.js). Both apply
the same definition: the graph in which every feature outside the selection is
an error node (its output is kept, but it is no longer explained), scored by
`graph_scores`. This module builds that graph, so tests can compare the two.
"""

from __future__ import annotations

from collections.abc import Collection

import torch

from circuitscope.graph.graph import ERROR, FEATURE, Graph
from circuitscope.graph.neuronpedia import node_ids
from circuitscope.graph.scores import GraphScores, graph_scores


def selection_graph(graph: Graph, selected: Collection[str]) -> Graph:
    """`graph` with every feature whose node id is not in `selected` turned into an error
    node (nodes reordered: selected features, errors, tokens, logits)."""
    ids = node_ids(graph)
    kind = graph.node_kind.clone()
    unselected = torch.tensor([i not in selected for i in ids]) & (kind == FEATURE)
    kind[unselected] = ERROR
    order = torch.argsort(kind, stable=True)  # [n] old node index of each new node
    n_selected = int((kind == FEATURE).sum())
    n_sources = graph.n_sources
    rows = torch.cat([order[:n_selected], torch.arange(graph.n_features, graph.n_targets)])
    columns = order[:n_sources]
    return Graph(
        prompt=graph.prompt,
        input_ids=graph.input_ids,
        input_tokens=graph.input_tokens,
        node_kind=kind[order],
        node_layer=graph.node_layer[order],
        node_position=graph.node_position[order],
        node_feature=graph.node_feature[order],
        node_value=graph.node_value[order],
        edges=graph.edges[rows[:, None], columns[None, :]],
        n_layers=graph.n_layers,
        logit_labels=graph.logit_labels,
        metadata=dict(graph.metadata),
    )


def selection_scores(graph: Graph, selected: Collection[str]) -> GraphScores:
    """Replacement and completeness scores of the selection (see the module docstring)."""
    return graph_scores(selection_graph(graph, selected))
