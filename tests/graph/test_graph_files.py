"""Graphs on disk: safetensors + JSON round trips, and clear errors."""

import json
from pathlib import Path

import pytest
import torch
from graph_builders import diamond
from safetensors.torch import save_file

from circuitscope.errors import CircuitscopeError
from circuitscope.graph.files import load_graph, save_graph
from circuitscope.graph.prune import prune_graph


def test_round_trip_is_exact(tmp_path: Path):
    graph = prune_graph(diamond(), 0.55, 1.0)
    graph.metadata["note"] = {"nested": [1, 2]}
    save_graph(graph, tmp_path)
    loaded = load_graph(tmp_path)
    for name in ("input_ids", "node_kind", "node_layer", "node_position", "node_feature",
                 "node_value", "edges", "node_influence"):  # fmt: skip
        assert torch.equal(getattr(loaded, name), getattr(graph, name)), name
    assert loaded.prompt == graph.prompt and loaded.logit_labels == graph.logit_labels
    assert loaded.metadata["note"] == {"nested": [1, 2]}


def test_missing_and_corrupt_files_are_named(tmp_path: Path):
    with pytest.raises(CircuitscopeError, match="graph.safetensors is missing"):
        load_graph(tmp_path)
    save_graph(diamond(), tmp_path)
    (tmp_path / "graph.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(CircuitscopeError, match="cannot read .*graph.safetensors"):
        load_graph(tmp_path)


def _write_format_1(folder: Path, adjacency: torch.Tensor) -> None:
    """A graph folder as format 1 wrote it: the square `adjacency` [n, n], no `edges`."""
    graph = diamond()
    tensors = {name: getattr(graph, name) for name in ("input_ids", "node_kind", "node_layer",
               "node_position", "node_feature", "node_value")}  # fmt: skip
    save_file({**tensors, "adjacency": adjacency}, str(folder / "graph.safetensors"))
    info = {
        "format_version": 1,
        "prompt": graph.prompt,
        "input_tokens": graph.input_tokens,
        "n_layers": graph.n_layers,
        "logit_labels": graph.logit_labels,
    }
    (folder / "graph.json").write_text(json.dumps(info))


def test_a_format_1_file_with_a_square_adjacency_loads(tmp_path: Path):
    # diamond: a=0, b=1, e=2, t=3, L=4; rows of the block a, b, L; columns a, b, e, t.
    adjacency = torch.zeros(5, 5, dtype=torch.float64)
    adjacency[4, 0], adjacency[4, 1], adjacency[0, 3] = 1.0, -3.0, 2.0
    adjacency[1, 3], adjacency[1, 2] = 1.0, -1.0
    _write_format_1(tmp_path, adjacency)
    loaded = load_graph(tmp_path)
    assert loaded.edges.tolist() == [[0, 0, 0, 2], [0, 0, -1, 1], [1, -3, 0, 0]]
    assert torch.equal(loaded.edges, diamond().edges)
    assert torch.equal(loaded.adjacency, adjacency)


def test_a_format_1_file_with_edges_outside_the_block_is_refused(tmp_path: Path):
    adjacency = torch.zeros(5, 5, dtype=torch.float64)
    adjacency[3, 0] = 1.0  # into the token
    _write_format_1(tmp_path, adjacency)
    with pytest.raises(CircuitscopeError, match="into error or token"):
        load_graph(tmp_path)
