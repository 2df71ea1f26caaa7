"""A graph on disk: `graph.safetensors` (tensors) + `graph.json` (everything else).

The safetensors file holds the node tables ([n] each), `input_ids` [seq], and
`edges` [n_features + n_logits, n_sources], the block `Graph.edges` (format 2).
Format 1 files held the square `adjacency` [n, n] instead; they load as well.
No pickle anywhere: safetensors holds only tensors, JSON only plain data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from circuitscope.errors import CircuitscopeError
from circuitscope.graph.graph import Graph, edges_from_adjacency

TENSORS_FILE = "graph.safetensors"
JSON_FILE = "graph.json"
FORMAT_VERSION = 2
_NODE_FIELDS = (
    "input_ids",
    "node_kind",
    "node_layer",
    "node_position",
    "node_feature",
    "node_value",
)
_TENSOR_FIELDS = (*_NODE_FIELDS, "edges")


def save_graph(graph: Graph, folder: str | Path, name: str = "graph") -> Path:
    """Write `{name}.safetensors` and `{name}.json` into `folder`; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {key: getattr(graph, key).contiguous().cpu() for key in _TENSOR_FIELDS}
    for optional in ("node_influence", "logit_vectors"):
        value = getattr(graph, optional)
        if value is not None:
            tensors[optional] = value.contiguous().cpu()
    save_file(tensors, str(folder / f"{name}.safetensors"))
    info: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "prompt": graph.prompt,
        "input_tokens": graph.input_tokens,
        "n_layers": graph.n_layers,
        "logit_labels": graph.logit_labels,
        "metadata": graph.metadata,
    }
    (folder / f"{name}.json").write_text(json.dumps(info, indent=1, default=_json_default))
    return folder


def load_graph(folder: str | Path, name: str = "graph") -> Graph:
    """Read a graph written by `save_graph`, with a clear error for a bad folder."""
    folder = Path(folder)
    tensors_path, json_path = folder / f"{name}.safetensors", folder / f"{name}.json"
    for path in (tensors_path, json_path):
        if not path.is_file():
            raise CircuitscopeError(f"not a graph folder: {path} is missing")
    try:
        tensors = load_file(str(tensors_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CircuitscopeError(f"cannot read {tensors_path}: {error}") from error
    try:
        info = json.loads(json_path.read_text())
    except json.JSONDecodeError as error:
        raise CircuitscopeError(f"cannot read {json_path}: {error}") from error
    if not isinstance(info, dict):
        raise CircuitscopeError(f"cannot read {json_path}: not a JSON object")
    missing = [key for key in _NODE_FIELDS if key not in tensors]
    if missing or ("edges" not in tensors and "adjacency" not in tensors):
        raise CircuitscopeError(f"{tensors_path} lacks tensors {missing or ['edges']}")
    try:
        return Graph(
            prompt=info["prompt"],
            input_tokens=list(info["input_tokens"]),
            n_layers=int(info["n_layers"]),
            logit_labels=list(info["logit_labels"]),
            metadata=dict(info.get("metadata", {})),
            node_influence=tensors.get("node_influence"),
            logit_vectors=tensors.get("logit_vectors"),
            edges=_edges(tensors),
            **{key: tensors[key] for key in _NODE_FIELDS},
        )
    except (KeyError, TypeError, ValueError) as error:
        what = f"lacks {error}" if isinstance(error, KeyError) else f"is malformed ({error})"
        raise CircuitscopeError(
            f"cannot read the graph in {folder}: {json_path.name} {what}"
        ) from None


def _edges(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    """The edge block, from `edges` or, in a format-1 file, the square `adjacency`."""
    if "edges" in tensors:
        return tensors["edges"]
    return edges_from_adjacency(tensors["adjacency"], tensors["node_kind"])


def _json_default(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
