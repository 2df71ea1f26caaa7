"""The static picture of a graph: where nodes go, and that a PNG is written."""

from pathlib import Path

import torch
from graph_builders import diamond, make_graph

from circuitscope.graph.graph import FEATURE, LOGIT, TOKEN
from circuitscope.graph.render import _label_axes, node_coordinates, render_graph
from circuitscope.plotting import pyplot


def test_coordinates_put_tokens_below_and_logits_above():
    graph = diamond()
    coords = node_coordinates(graph)
    assert torch.all(coords[graph.node_kind == TOKEN, 1] == -1)
    assert torch.all(coords[graph.node_kind == LOGIT, 1] == graph.n_layers)
    torch.testing.assert_close(coords[:, 0], graph.node_position.double(), atol=0.35, rtol=0)


def test_render_writes_a_png(tmp_path: Path):
    path = render_graph(diamond(), tmp_path / "g.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_only_the_top_logit_is_labelled():
    """The logits sit side by side at the last position: one label each would overlap."""
    graph = make_graph([FEATURE, TOKEN, LOGIT, LOGIT, LOGIT], {(2, 0): 1.0, (3, 0): 0.5}, [1.0] * 5)
    assert graph.logit_labels[0] != graph.logit_labels[1]
    figure, axes = pyplot().subplots()
    _label_axes(axes, graph, node_coordinates(graph))
    assert [text.get_text() for text in axes.texts] == [graph.logit_labels[0]]
    pyplot().close(figure)
