"""The attribution-graph JSON read by Neuronpedia and Anthropic's frontend.

Top level: `metadata` (slug, scan, prompt, prompt_tokens, schema_version 1,
node_threshold, ...), `qParams` (pinnedIds, supernodes as [label, node_id, ...],
linkType, clickedId, sg_pos), `nodes` and `links` (source, target, weight).
Node ids follow circuit-tracer's (feature `{layer}_{index}_{pos}`, token
`E_{token_id}_{pos}`, logit `{n_layers+1}_{token_id}_{pos}`, its `layer` n_layers+1
too), except error nodes, `err_{layer}_{pos}`: circuit-tracer's `0_{layer}_{pos}`
collides with the id of feature `layer` of layer 0. A node's `influence` is its
cumulative influence (the share of total influence held by nodes at least as
influential), as there. Logit clerps: see `logit_clerps`.

Metadata (`scan`, `info`, settings): see `neuronpedia_metadata`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from circuitscope.errors import CircuitscopeError
from circuitscope.graph.graph import (
    ERROR,
    FEATURE,
    LOGIT,
    TOKEN,
    Graph,
    count_sources,
    target_rows,
)
from circuitscope.graph.logit_clerps import label_from_clerp, logit_clerp
from circuitscope.graph.neuronpedia_metadata import graph_metadata

FEATURE_TYPES = {
    FEATURE: "cross layer transcoder",
    ERROR: "mlp reconstruction error",
    TOKEN: "embedding",
    LOGIT: "logit",
}
REQUIRED = {
    "metadata": ("slug", "scan", "prompt", "prompt_tokens", "schema_version", "node_threshold"),
    "qParams": ("pinnedIds", "supernodes", "linkType", "clickedId", "sg_pos"),
    "node": (
        "node_id", "feature", "layer", "ctx_idx", "feature_type", "jsNodeId", "clerp",
        "influence", "activation", "token_prob", "is_target_logit",
    ),
    "link": ("source", "target", "weight"),
}  # fmt: skip
"""What `export_neuronpedia` writes and `schema_problems` checks by default."""
READ_REQUIRED = {
    "metadata": ("slug", "scan", "prompt", "prompt_tokens"),
    "qParams": (),
    "node": ("node_id", "feature", "layer", "ctx_idx", "feature_type", "jsNodeId", "clerp"),
    "link": ("source", "target", "weight"),
}  # fmt: skip
"""What `import_neuronpedia` needs: the fields Neuronpedia's graph schema requires, so
that circuit-tracer's files (no `schema_version`) and Neuronpedia's import too."""


def node_ids(graph: Graph) -> list[str]:
    """A unique id for every node of `graph`."""
    ids = []
    for index in range(graph.n_nodes):
        kind = int(graph.node_kind[index])
        layer, pos = int(graph.node_layer[index]), int(graph.node_position[index])
        feature = int(graph.node_feature[index])
        if kind == FEATURE:
            ids.append(f"{layer}_{feature}_{pos}")
        elif kind == ERROR:
            ids.append(f"err_{layer}_{pos}")
        elif kind == TOKEN:
            ids.append(f"E_{feature}_{pos}")
        else:
            token = feature if feature >= 0 else f"dir{index}"
            ids.append(f"{graph.n_layers + 1}_{token}_{pos}")
    return ids


def export_neuronpedia(
    graph: Graph,
    slug: str,
    scan: str,
    node_threshold: float = 0.8,
    supernodes: Sequence[Sequence[str]] = (),
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON document of a (pruned) graph: every node, every nonzero edge.

    scan: the model id (`neuronpedia_metadata.neuronpedia_scan`); settings: the trace's
    settings, a flat mapping such as its config.json (see `graph_metadata`)."""
    ids = node_ids(graph)
    if len(set(ids)) != len(ids):
        raise ValueError("node ids are not unique")
    cumulative = _cumulative_influence(graph)
    nodes = [_node(graph, index, ids[index], cumulative[index]) for index in range(graph.n_nodes)]
    rows, sources = torch.nonzero(graph.edges, as_tuple=True)
    weights = graph.edges[rows, sources].tolist()
    targets = graph.target_nodes()[rows]
    links = [
        {"source": ids[s], "target": ids[t], "weight": w}
        for t, s, w in zip(targets.tolist(), sources.tolist(), weights, strict=True)
    ]
    return {
        "metadata": graph_metadata(graph, slug, scan, node_threshold, settings),
        "qParams": {
            "pinnedIds": [],
            "supernodes": [list(group) for group in supernodes],
            "linkType": "both",
            "clickedId": "",
            "sg_pos": "",
        },
        "nodes": nodes,
        "links": links,
    }


def _node(graph: Graph, index: int, node_id: str, cumulative: float | None) -> dict[str, Any]:
    kind = int(graph.node_kind[index])
    layer, pos = int(graph.node_layer[index]), int(graph.node_position[index])
    feature, value = int(graph.node_feature[index]), float(graph.node_value[index])
    node: dict[str, Any] = {
        "node_id": node_id,
        "feature": feature,
        "layer": str(layer),
        "ctx_idx": pos,
        "feature_type": FEATURE_TYPES[kind],
        "jsNodeId": node_id,
        "clerp": "",
        "influence": cumulative,
        "activation": None,
        "token_prob": 0.0,
        "is_target_logit": False,
    }
    if kind == FEATURE:
        node["feature"] = _cantor(layer, feature)
        node["activation"] = value
        node["jsNodeId"] = f"{layer}_{feature}-0"
        node["clerp"] = f"L{layer} feature {feature}"
    elif kind == TOKEN:
        node.update(layer="E", feature=pos, jsNodeId=f"E_{feature}-{pos}")
        node["clerp"] = f"Token {graph.input_tokens[pos]!r}" if graph.input_tokens else ""
    elif kind == LOGIT:
        rank = index - int(graph.indices(LOGIT)[0])
        node.update(layer=str(graph.n_layers + 1), token_prob=value, is_target_logit=rank == 0)
        node["jsNodeId"] = f"L_{feature if feature >= 0 else f'dir{index}'}-{pos}"
        if graph.logit_labels:
            node["clerp"] = logit_clerp(graph.logit_labels[rank], value)
            node["logit_label"] = graph.logit_labels[rank]
    return node


def _cantor(x: int, y: int) -> int:
    return (x + y) * (x + y + 1) // 2 + y


def _cumulative_influence(graph: Graph) -> list[float | None]:
    if graph.node_influence is None:
        return [None] * graph.n_nodes
    scores = graph.node_influence.double()
    total = float(graph.metadata.get("pruning", {}).get("total_influence", scores.sum()))
    order = torch.argsort(scores, descending=True)
    cumulative = torch.zeros_like(scores)
    cumulative[order] = torch.cumsum(scores[order], 0) / max(total, 1e-30)
    return cumulative.tolist()


def schema_problems(document: Any, required: dict[str, tuple[str, ...]] = REQUIRED) -> list[str]:
    """Every missing field of an attribution-graph JSON document (`required`: the fields
    of each part: metadata, qParams, node, link)."""
    if not isinstance(document, dict):
        return ["the document is not a JSON object"]
    problems = [f"missing '{key}'" for key in ("metadata", "qParams", "nodes", "links")
                if key not in document]  # fmt: skip
    for section in ("metadata", "qParams"):
        for key in required[section] if isinstance(document.get(section), dict) else ():
            if key not in document[section]:
                problems.append(f"{section} lacks '{key}'")
    for kind, items in (("node", document.get("nodes", [])), ("link", document.get("links", []))):
        for number, item in enumerate(items):
            missing = [key for key in required[kind] if key not in item]
            if missing:
                problems.append(f"{kind} {number} lacks {missing}")
    return problems


def import_neuronpedia(document: dict[str, Any]) -> Graph:
    """A Graph from an attribution-graph JSON document: ours (`export_neuronpedia`, old
    files too), circuit-tracer's or Neuronpedia's (the nodes kinds we know)."""
    problems = schema_problems(document, READ_REQUIRED)
    if problems:
        raise CircuitscopeError("not an attribution-graph JSON: " + "; ".join(problems[:5]))
    kinds = {name: kind for kind, name in FEATURE_TYPES.items()}
    rows = []
    for node in document["nodes"]:
        kind = kinds.get(node["feature_type"])
        if kind is None:
            raise CircuitscopeError(f"unknown feature_type {node['feature_type']!r}")
        rows.append((kind, node))
    rows.sort(key=lambda row: row[0])
    n_layers = _n_layers(document, rows)
    table = [_node_row(kind, node, n_layers) for kind, node in rows]
    node_kind = torch.tensor([row[0] for row in table], dtype=torch.long)
    index = {node["node_id"]: i for i, (_, node) in enumerate(rows)}
    edges = _edges(document["links"], index, node_kind)
    tokens = sorted((pos, feature) for kind, _, pos, feature, _ in table if kind == TOKEN)
    metadata = document["metadata"]
    labels = _logit_labels(metadata, [node for kind, node in rows if kind == LOGIT])
    return Graph(
        prompt=metadata["prompt"],
        input_ids=torch.tensor([token for _, token in tokens], dtype=torch.long),
        input_tokens=list(metadata["prompt_tokens"]),
        node_kind=node_kind,
        node_layer=torch.tensor([row[1] for row in table], dtype=torch.long),
        node_position=torch.tensor([row[2] for row in table], dtype=torch.long),
        node_feature=torch.tensor([row[3] for row in table], dtype=torch.long),
        node_value=torch.tensor([row[4] for row in table], dtype=torch.float64),
        edges=edges,
        n_layers=n_layers,
        logit_labels=labels,
        metadata={"imported_from": metadata.get("slug", "")},
    )


def _edges(links: list[dict[str, Any]], index: dict[str, int], node_kind: Tensor) -> Tensor:
    """The edge block [n_targets, n_sources] (see `Graph.edges`) of the JSON links."""
    rows = target_rows(node_kind)
    edges = torch.zeros(int((rows >= 0).sum()), count_sources(node_kind), dtype=torch.float64)
    for link in links:
        row, source = int(rows[index[link["target"]]]), index[link["source"]]
        if row < 0 or source >= edges.shape[1]:
            raise CircuitscopeError(
                f"link {link['source']} -> {link['target']}: only features and logits have "
                "inputs, and logits have no outputs"
            )
        edges[row, source] = float(link["weight"])
    return edges


def _logit_labels(metadata: dict[str, Any], logits: list[dict[str, Any]]) -> list[str]:
    """Each logit's label: its `logit_label`, else read from its clerp."""
    old_circuitscope = metadata.get("info", {}).get("generator") == "circuitscope"
    labels = [
        node["logit_label"]
        if "logit_label" in node
        else label_from_clerp(node["clerp"], old_circuitscope)
        for node in logits
    ]
    return labels if any(labels) else []


def _n_layers(document: dict[str, Any], rows: list[tuple[int, dict[str, Any]]]) -> int:
    info = document["metadata"].get("info", {})
    if "n_layers" in info:
        return int(info["n_layers"])
    logit_layers = [int(node["layer"]) for kind, node in rows if kind == LOGIT]
    return max(logit_layers) - 1 if logit_layers else 0


def _node_row(kind: int, node: dict[str, Any], n_layers: int) -> tuple[int, int, int, int, float]:
    """(kind, layer, position, feature, value) of one JSON node."""
    pos = int(node["ctx_idx"])
    parts = str(node["node_id"]).split("_")
    if kind == FEATURE:
        return kind, int(node["layer"]), pos, int(parts[1]), float(node.get("activation") or 0.0)
    if kind == ERROR:
        return kind, int(node["layer"]), pos, -1, 0.0
    if kind == TOKEN:
        return kind, -1, pos, int(parts[1]), 0.0
    return kind, n_layers, pos, int(node["feature"]), float(node.get("token_prob") or 0.0)
