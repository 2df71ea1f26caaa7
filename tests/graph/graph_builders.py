"""Small hand-built graphs with answers worked out by hand."""

from __future__ import annotations

import torch

from circuitscope.graph.graph import ERROR, FEATURE, LOGIT, TOKEN, Graph


def make_graph(kinds: list[int], edges: dict[tuple[int, int], float], values: list[float]) -> Graph:
    """Nodes of the given kinds (ordered), edges {(target, source): weight} (node indices)."""
    n = len(kinds)
    adjacency = torch.zeros(n, n, dtype=torch.float64)
    for (target, source), weight in edges.items():
        adjacency[target, source] = weight
    n_logits = kinds.count(LOGIT)
    positions = torch.arange(n)
    return Graph.from_adjacency(
        adjacency,
        prompt="hand made",
        input_ids=torch.arange(kinds.count(TOKEN)),
        input_tokens=[f"t{i}" for i in range(kinds.count(TOKEN))],
        node_kind=torch.tensor(kinds),
        node_layer=torch.tensor([0 if k in (FEATURE, ERROR) else -1 for k in kinds]),
        node_position=positions,
        node_feature=torch.arange(n),
        node_value=torch.tensor(values, dtype=torch.float64),
        n_layers=2,
        logit_labels=[f"logit{i}" for i in range(n_logits)],
    )


def diamond() -> Graph:
    """Nodes: a=0, b=1 (features), e=2 (error), t=3 (token), L=4 (logit, p=0.5).

    L <- a (1), L <- b (-3); a <- t (2); b <- t (1), b <- e (-1).
    Normalised: L: a 0.25, b 0.75; a: t 1; b: t 0.5, e 0.5.
    Influence (w_L = 0.5): a 0.125, b 0.375, t 0.125 + 0.1875 = 0.3125, e 0.1875.
    """
    kinds = [FEATURE, FEATURE, ERROR, TOKEN, LOGIT]
    edges = {(4, 0): 1.0, (4, 1): -3.0, (0, 3): 2.0, (1, 3): 1.0, (1, 2): -1.0}
    return make_graph(kinds, edges, [1.0, 2.0, 0.0, 0.0, 0.5])
