"""Suggested supernodes on disk: `supernodes.json` beside the graph in its trace folder.

{"format": "circuitscope-supernodes", "version": 1, "graph": "pruned", "method", "threshold",
 "groups": [{"label", "members": [node_id...], "evidence": {...},
             "check": {"predicted", "measured", "passed", ...} | null}],
 "coverage": {...}, "check": {...} | null}

Member ids are the attribution-graph JSON's `node_id`s (`neuronpedia.node_ids`), so the
page can offer a group as `qParams.supernodes` entry [label, node_id...] when accepted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from circuitscope.errors import CircuitscopeError
from circuitscope.graph.graph import Graph
from circuitscope.graph.neuronpedia import node_ids
from circuitscope.graph.supernodes import SuggestedGroup, SupernodeSettings
from circuitscope.graph.trace_folder import SUPERNODES_FILE
from circuitscope.outputs import write_atomically

FORMAT = "circuitscope-supernodes"


def suggestions_document(
    graph: Graph, groups: list[SuggestedGroup], settings: SupernodeSettings
) -> dict[str, Any]:
    """The plain-JSON document of suggestions for `graph` (checks are added by the caller)."""
    ids = node_ids(graph)
    covered = sorted({m for group in groups for m in group.members})
    return {
        "format": FORMAT,
        "version": 1,
        "graph": "pruned",
        "method": settings.method,
        "threshold": settings.cut,
        "groups": [
            {
                "label": group.label,
                "members": [ids[m] for m in group.members],
                "evidence": group.evidence,
                "check": None,
            }
            for group in groups
        ],
        "coverage": {
            "grouped_features": len(covered),
            "features": graph.n_features,
            "fraction": len(covered) / graph.n_features if graph.n_features else 0.0,
        },
        "check": None,
    }


def write_suggestions(document: dict[str, Any], folder: str | Path) -> Path:
    """Write the document into a trace folder's `supernodes.json` (whole or not at all);
    returns the file. The document must hold no NaN (JSON has none)."""
    path = Path(folder) / SUPERNODES_FILE
    write_atomically(path, json.dumps(document, indent=1, ensure_ascii=False, allow_nan=False))
    return path


def read_suggestions(folder: str | Path) -> dict[str, Any]:
    """The suggestions document of a trace folder."""
    path = Path(folder) / SUPERNODES_FILE
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CircuitscopeError(f"{path}: no readable supernode suggestions ({error})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CircuitscopeError(f"{path}: not a supernodes file")
    return document
