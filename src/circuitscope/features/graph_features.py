"""The features that appear in saved attribution graphs (for `--features-of`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from circuitscope.graph.files import load_graph
from circuitscope.graph.graph import FEATURE


def graph_features(folders: Sequence[Path], name: str = "pruned") -> dict[int, Tensor]:
    """{layer: [F] sorted feature indices} of every feature node of the graphs.

    Reads `{name}.*` in each trace folder (the pruned graph by default), or
    `graph.*` when there is no such file.
    """
    pairs: set[tuple[int, int]] = set()
    for folder in folders:
        folder = Path(folder)
        which = name if (folder / f"{name}.json").is_file() else "graph"
        graph = load_graph(folder, which)
        nodes = graph.indices(FEATURE)
        layers, features = graph.node_layer[nodes].tolist(), graph.node_feature[nodes].tolist()
        pairs.update(zip(layers, features, strict=True))
    out: dict[int, list[int]] = {}
    for layer, feature in sorted(pairs):
        out.setdefault(layer, []).append(feature)
    return {layer: torch.tensor(indices) for layer, indices in out.items()}
