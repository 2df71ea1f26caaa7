"""A static picture of a (pruned) graph: positions across, layers up.

Tokens sit at the bottom, features and error nodes at their layer, logits on
top; several nodes at one (layer, position) are spread side by side. Edges are
blue when excitatory and red when inhibitory, thicker when stronger; only the
strongest `max_edges` are drawn.
"""

from __future__ import annotations

from pathlib import Path

import torch

from circuitscope.graph.graph import ERROR, FEATURE, LOGIT, TOKEN, Graph
from circuitscope.plotting import pyplot

COLORS = {FEATURE: "#e69f00", ERROR: "#999999", TOKEN: "#009e73", LOGIT: "#8e44ad"}


def node_coordinates(graph: Graph) -> torch.Tensor:
    """[n, 2] (x, y) for each node: x = position (spread within a cell), y = layer row."""
    rows = torch.where(graph.node_kind == TOKEN, -1, graph.node_layer).double()
    rows = torch.where(graph.node_kind == LOGIT, float(graph.n_layers), rows)
    coords = torch.zeros(graph.n_nodes, 2, dtype=torch.float64)
    cells: dict[tuple[float, int], list[int]] = {}
    for index in range(graph.n_nodes):
        key = (float(rows[index]), int(graph.node_position[index]))
        cells.setdefault(key, []).append(index)
    for (row, pos), members in cells.items():
        offsets = torch.linspace(-0.35, 0.35, len(members)) if len(members) > 1 else [0.0]
        for index, offset in zip(members, offsets, strict=True):
            coords[index] = torch.tensor([pos + float(offset), row])
    return coords


def render_graph(graph: Graph, path: str | Path, title: str = "", max_edges: int = 400) -> Path:
    """Draw `graph` into a PNG at `path`."""
    plt = pyplot()
    coords = node_coordinates(graph)
    rows, sources = torch.nonzero(graph.edges, as_tuple=True)
    weights = graph.edges[rows, sources]
    targets = graph.target_nodes()[rows]
    keep = weights.abs().argsort(descending=True)[:max_edges]
    width = max(8.0, 1.2 * len(graph.input_tokens))
    figure, axes = plt.subplots(figsize=(width, 7))
    strongest = float(weights.abs().max()) if len(weights) else 1.0
    for k in keep.flip(0).tolist():
        t, s, w = int(targets[k]), int(sources[k]), float(weights[k])
        axes.plot(
            [coords[s, 0], coords[t, 0]],
            [coords[s, 1], coords[t, 1]],
            color="#2166ac" if w > 0 else "#b2182b",
            linewidth=0.3 + 2.5 * abs(w) / strongest,
            alpha=0.25 + 0.6 * abs(w) / strongest,
            zorder=1,
        )
    for kind, color in COLORS.items():
        mask = graph.node_kind == kind
        axes.scatter(coords[mask, 0], coords[mask, 1], s=40, c=color, zorder=2,
                     label=_KIND_LABELS[kind], edgecolors="black", linewidths=0.4)  # fmt: skip
    _label_axes(axes, graph, coords)
    axes.set_title(title or graph.prompt)
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


_KIND_LABELS = {FEATURE: "feature", ERROR: "error node", TOKEN: "token", LOGIT: "logit"}


def _label_axes(axes: object, graph: Graph, coords: torch.Tensor) -> None:
    positions = range(len(graph.input_tokens))
    axes.set_xticks(list(positions))  # type: ignore[attr-defined]
    axes.set_xticklabels([repr(t) for t in graph.input_tokens], rotation=30, fontsize=8)  # type: ignore[attr-defined]
    rows = [-1, *range(graph.n_layers), graph.n_layers]
    labels = ["emb", *[str(layer) for layer in range(graph.n_layers)], "logit"]
    step = max(1, graph.n_layers // 10)
    axes.set_yticks(rows[::step])  # type: ignore[attr-defined]
    axes.set_yticklabels(labels[::step])  # type: ignore[attr-defined]
    axes.set_ylabel("layer")  # type: ignore[attr-defined]
    logits = graph.indices(LOGIT)
    if len(logits):  # the top target only: the logits sit side by side, their labels would overlap
        first = int(logits[0])
        x, y = float(coords[first, 0]), float(graph.n_layers)
        axes.annotate(graph.logit_labels[0], (x, y), fontsize=7, rotation=20,  # type: ignore[attr-defined]
                      xytext=(3, 6), textcoords="offset points")  # fmt: skip
