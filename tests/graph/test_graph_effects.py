"""Total effects predicted by a graph, on hand-built graphs worked out by hand."""

import torch
from graph_builders import make_graph

from circuitscope.graph.effects import total_effects_on_logits, unit_effects
from circuitscope.graph.graph import ERROR, FEATURE, LOGIT, TOKEN

CHAIN_KINDS = [FEATURE, FEATURE, ERROR, TOKEN, LOGIT]
CHAIN_EDGES = {(1, 0): 4.0, (4, 0): 1.0, (4, 1): 6.0, (1, 2): 1.5, (4, 2): 0.5, (0, 3): 5.0}


def _chain():
    """f1 (a=2) -> f2 (a=3) -> L; f1 -> L; e -> f2, e -> L; t -> f1.

    Unit effects: f2 <- f1: 4/2 = 2; L <- f1: 1/2; L <- f2: 6/3 = 2; f2 <- e 1.5; L <- e 0.5.
    Doubling f1 (d = 2): direct 0.5·2 = 1, via f2: 2·(2·2) = 8, total 9.
    Doubling f2 (d = 3): 2·3 = 6. Doubling e (d = 1): 0.5 + 2·1.5 = 3.5. Token: 0 (f1 <- t
    has weight 5, f1 unit effects on L total 0.5 + 2·2 = 4.5 per unit, so t gives 5·4.5).
    """
    return make_graph(CHAIN_KINDS, CHAIN_EDGES, [2.0, 3.0, 0.0, 0.0, 1.0])


def test_unit_effects_divide_feature_columns_by_activation():
    unit = unit_effects(_chain(), torch.tensor([0, 1, 2, 3]))  # rows f1, f2, L
    assert unit[1, 0] == 2.0 and unit[2, 1] == 2.0 and unit[2, 2] == 0.5 and unit[0, 3] == 5.0


def test_total_effects_follow_every_path():
    graph = _chain()
    effects = total_effects_on_logits(graph, torch.tensor([0, 1, 2, 3]))
    expected = torch.tensor([[9.0, 6.0, 3.5, 22.5]], dtype=torch.float64)
    torch.testing.assert_close(effects, expected, atol=1e-12, rtol=0)


def test_total_effects_do_not_depend_on_node_order():
    graph = _chain()
    # The same graph with the two features swapped in the table (not in layer order).
    order = torch.tensor([1, 0, 2, 3, 4])
    edges = {(int(order[t]), int(order[s])): w for (t, s), w in CHAIN_EDGES.items()}
    swapped = make_graph(CHAIN_KINDS, edges, graph.node_value[order].tolist())
    effects = total_effects_on_logits(swapped, torch.tensor([1, 0, 2]))
    torch.testing.assert_close(effects, torch.tensor([[9.0, 6.0, 3.5]], dtype=torch.float64))
