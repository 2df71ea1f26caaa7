"""Group labels from the graph and from cards."""

import torch

from circuitscope.graph.supernodes_labels import card_label, graph_label
from circuitscope.graph.supernodes_planted import planted_graph


def test_graph_label_names_tokens_and_the_logit_the_group_pushes():
    graph = planted_graph("repeated", 0).graph
    graph.logit_labels = ["' Paris' (p=0.500)", "' Lyon' (p=0.100)"]
    members = [i for i in range(graph.n_features) if int(graph.node_position[i]) in (2, 3)][:3]
    positions = sorted({int(graph.node_position[m]) for m in members})
    tokens = "/".join(repr(f"t{p}") for p in positions)
    # ablating lowers Lyon most: the group pushes Lyon up
    assert graph_label(graph, members, torch.tensor([0.2, -0.9])) == f"{tokens} → +'Lyon'"
    assert graph_label(graph, members, torch.tensor([0.5, -0.1])) == f"{tokens} → −'Paris'"


def test_card_label_prefers_shared_labels_then_shared_logits():
    assert card_label(["capital", "", "Texas", "capital"], [[" Austin"]]) == "capital"
    assert card_label(["", " "], [[" Austin", " Dallas"], [" Dallas"], [" Austin"]]) == "→ Austin"
    assert card_label([], []) == ""
