"""Facts about graph documents that the viewer tests check against."""

from __future__ import annotations

from typing import Any


def feature_keys(document: dict[str, Any]) -> set[tuple[int, int]]:
    """(layer, index) of every feature node of a graph document."""
    return {
        (int(node["layer"]), int(str(node["node_id"]).split("_")[1]))
        for node in document["nodes"]
        if node["feature_type"] == "cross layer transcoder"
    }
