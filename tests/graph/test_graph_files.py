"""Graphs on disk: safetensors + JSON round trips, and clear errors."""

from pathlib import Path

import pytest
import torch
from graph_builders import diamond

from circuitscope.errors import CircuitscopeError
from circuitscope.graph.files import load_graph, save_graph
from circuitscope.graph.prune import prune_graph


def test_round_trip_is_exact(tmp_path: Path):
    graph = prune_graph(diamond(), 0.55, 1.0)
    graph.metadata["note"] = {"nested": [1, 2]}
    save_graph(graph, tmp_path)
    loaded = load_graph(tmp_path)
    for name in ("input_ids", "node_kind", "node_layer", "node_position", "node_feature",
                 "node_value", "adjacency", "node_influence"):  # fmt: skip
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
