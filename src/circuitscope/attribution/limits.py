"""How much attribution computes and the memory it may use: a plain settings class (no
torch), so the CLI's options can be made of it without importing the library."""

from __future__ import annotations

import math
from dataclasses import dataclass

from circuitscope.errors import CircuitscopeError


@dataclass(kw_only=True)
class AttributionLimits:
    """How much attribution computes and the memory it may use (checked on creation)."""

    max_feature_nodes: int | None = None
    """Compute rows for at most this many features, the most influential first (None: every
    active feature)."""
    batch_size: int = 32
    """Targets per backward pass."""
    update_interval: int = 4
    """Batches between re-estimates of which features matter most."""
    row_buffer_mb: float = 2048.0
    """Memory for the rows. When rows over every active feature would not fit (long
    prompts), only the features ranked most influential keep a column; the graph's
    metadata says whether the choice provably equals the unrestricted one."""
    writer_cache_mb: float = 512.0
    """Memory for feature output vectors kept between backward passes (others are rebuilt)."""

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.update_interval < 1:
            raise CircuitscopeError("batch_size and update_interval must be at least 1")
        if self.max_feature_nodes is not None and self.max_feature_nodes < 0:
            raise CircuitscopeError("max_feature_nodes must not be negative")
        if not self.row_buffer_mb > 0 or not self.writer_cache_mb >= 0:
            raise CircuitscopeError("row_buffer_mb must be positive, writer_cache_mb not negative")
        if not all(math.isfinite(v) for v in (self.row_buffer_mb, self.writer_cache_mb)):
            raise CircuitscopeError("row_buffer_mb and writer_cache_mb must be finite")
