"""How much of a graph pruning keeps: a plain settings class (no torch), so the CLI's
options can be made of it without importing the library."""

from __future__ import annotations

import math
from dataclasses import dataclass

from circuitscope.errors import CircuitscopeError


@dataclass(kw_only=True)
class PruningThresholds:
    """How much of the graph pruning keeps (checked on creation)."""

    node_threshold: float = 0.8
    """Pruning: keep the nodes holding this share of influence on the logits."""
    edge_threshold: float = 0.98
    """Pruning: keep the edges holding this share of edge influence."""

    def __post_init__(self) -> None:
        for name in ("node_threshold", "edge_threshold"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 < value <= 1):
                raise CircuitscopeError(f"{name} must be in (0, 1], got {value!r}")
