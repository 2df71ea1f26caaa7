"""Every edge of the graph equals the measured effect of its source on its target.

On tiny random fp64 models of every architecture, with every transcoder variant
(mlp_in CLT and PLT, a PLT with a skip connection, a resid_mid CLT and a resid_mid
PLT with a skip connection), all columns are measured.
"""

import pytest
import torch
from attribution_perturbation import measured_columns, source_columns, target_rows

from circuitscope.graph.graph import ERROR, FEATURE, TOKEN
from circuitscope.testing.tiny_graphs import traced_tiny
from circuitscope.testing.tiny_transcoders import VARIANTS, Variant


def _graph_and_replacement(arch: str, variant: Variant):
    traced = traced_tiny(
        arch, variant.kind, skip=variant.skip, n_logits=4, input_site=variant.input_site
    )
    return traced.replacement, traced.graph, traced.directions()


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_every_edge_equals_a_measured_perturbation(arch: str, variant: Variant):
    rep, graph, directions = _graph_and_replacement(arch, variant)
    columns = source_columns(graph).tolist()
    measured = torch.cat(
        [
            measured_columns(rep, graph, columns[i : i + 64], directions)
            for i in range(0, len(columns), 64)
        ],
        dim=1,
    )
    predicted = graph.edges[:, columns]  # rows: target_rows(graph)
    kinds = graph.node_kind[columns]
    for kind_code in (FEATURE, ERROR, TOKEN):
        block = kinds == kind_code
        assert bool(block.any())
        assert predicted[:, block].abs().max() > 1e-3, "vacuous: no edges of this kind"
    torch.testing.assert_close(predicted, measured, atol=1e-9, rtol=1e-7)
    # Causality: nothing flows from a later position or a later-or-equal layer.
    sources, targets = torch.meshgrid(torch.tensor(columns), target_rows(graph), indexing="xy")
    later = graph.node_position[sources] > graph.node_position[targets]
    assert torch.all(predicted[later] == 0)
