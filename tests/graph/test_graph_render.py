"""The static picture of a graph: where nodes go, and that a PNG is written."""

from pathlib import Path

import torch
from graph_builders import diamond

from circuitscope.graph.graph import LOGIT, TOKEN
from circuitscope.graph.render import node_coordinates, render_graph


def test_coordinates_put_tokens_below_and_logits_above():
    graph = diamond()
    coords = node_coordinates(graph)
    assert torch.all(coords[graph.node_kind == TOKEN, 1] == -1)
    assert torch.all(coords[graph.node_kind == LOGIT, 1] == graph.n_layers)
    torch.testing.assert_close(coords[:, 0], graph.node_position.double(), atol=0.35, rtol=0)


def test_render_writes_a_png(tmp_path: Path):
    path = render_graph(diamond(), tmp_path / "g.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
