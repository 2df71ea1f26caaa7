"""Attribution graphs through `causal_mix`: the same edges as with the dense mixing.

Blocks of 4 queries make a 13-position prompt take the blockwise path in every frozen
attention of every architecture; the graph must equal the one built with the dense
product (a block larger than any prompt) to float64 rounding.
"""

from typing import Literal

import pytest
import torch

from circuitscope.graph.graph import Graph
from circuitscope.models import causal_mix
from circuitscope.testing.tiny_graphs import traced_tiny

PROMPT = "The capital of France is Paris, and two plus two is"


def _graph(arch: str, kind: Literal["clt", "plt"]) -> Graph:
    return traced_tiny(arch, kind, n_logits=3, prompt=PROMPT).graph


@pytest.mark.parametrize("kind", ["clt", "plt"])
def test_blockwise_mixing_gives_the_dense_graph(
    arch: str, kind: Literal["clt", "plt"], monkeypatch: pytest.MonkeyPatch
):
    calls = []
    blockwise = causal_mix._CausalMix.apply

    def counted(*args):  # noqa: ANN002, ANN202
        calls.append(args[0].shape)
        return blockwise(*args)

    monkeypatch.setattr(causal_mix._CausalMix, "apply", counted)
    monkeypatch.setattr(causal_mix, "BLOCK", 10**6)
    dense = _graph(arch, kind)
    assert calls == []
    monkeypatch.setattr(causal_mix, "BLOCK", 4)
    blocks = _graph(arch, kind)
    assert calls and all(shape[-1] >= 8 for shape in calls)
    assert [blocks.node_key(i) for i in range(blocks.n_nodes)] == [
        dense.node_key(i) for i in range(dense.n_nodes)
    ]
    largest = float(dense.edges.abs().max())
    assert largest > 0
    torch.testing.assert_close(blocks.edges, dense.edges, rtol=0, atol=1e-12 * largest)
