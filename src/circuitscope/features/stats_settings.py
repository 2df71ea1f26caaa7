"""What the corpus pass keeps per feature: a plain settings class (no torch), so the CLI's
options can be made of it without importing the library."""

from __future__ import annotations

from dataclasses import dataclass

from circuitscope.errors import CircuitscopeError


@dataclass(kw_only=True)
class StatsSettings:
    """What the pass keeps for each feature (checked on creation); memory grows with these
    and the number of features, never with the corpus."""

    top_k: int = 20
    """Top activating contexts kept per feature."""
    intervals: int = 8
    """Activation intervals with sampled examples (a power of two, at most --histogram-bins)."""
    per_interval: int = 4
    """Sampled examples per interval."""
    histogram_bins: int = 256
    """Fine histogram bins per feature (a power of two): percentiles are interpolated in
    them; a card's histogram has at most 64 (merged bins)."""
    before: int = 24
    """Tokens shown before the peak token of an example."""
    after: int = 8
    """Tokens shown after the peak token of an example."""

    def __post_init__(self) -> None:
        for name in ("intervals", "histogram_bins"):
            value = getattr(self, name)
            if value < 1 or value & (value - 1):
                raise CircuitscopeError(f"{name} must be a power of two, got {value}")
        if self.intervals > self.histogram_bins:
            raise CircuitscopeError(
                f"intervals ({self.intervals}) cannot exceed histogram_bins ({self.histogram_bins})"
            )
        if min(self.top_k, self.per_interval) < 1:
            raise CircuitscopeError("top_k and per_interval must be at least 1")
        if min(self.before, self.after) < 0:
            raise CircuitscopeError("tokens before and after the peak cannot be negative")

    @property
    def width(self) -> int:
        """Tokens in an example's window: before, the peak, after."""
        return self.before + 1 + self.after
