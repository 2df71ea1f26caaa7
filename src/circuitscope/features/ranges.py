"""Activation ranges that grow by doubling, so bins stay exact in a single pass.

Each feature has a range [0, 2^e): e is the smallest integer with every activation
seen so far below 2^e. Bin j of n (n a power of two) is [j·2^e/n, (j+1)·2^e/n).
When e grows by d, bin j becomes bin j >> d: pairs of bins merge exactly, so the
bins after any stream equal the bins computed from the final range over all
activations at once. Scaling by powers of two is exact in floating point.
"""

from __future__ import annotations

import torch
from torch import Tensor

MIN_EXPONENT = -30
"""The starting range [0, 2^-30): smaller activations still get a bin (bin 0)."""


def exponent_of(values: Tensor) -> Tensor:
    """[n] the smallest integer e with value < 2^e (values > 0), as int64."""
    return torch.frexp(values.float()).exponent.long()


def bin_of(values: Tensor, exponent: Tensor, n_bins: int) -> Tensor:
    """[n] bin index of each value in its range [0, 2^exponent) cut into n_bins."""
    scaled = torch.ldexp(values.double(), (n_bins.bit_length() - 1 - exponent).double())
    return scaled.floor().long().clamp(0, n_bins - 1)


def rebin_counts(counts: Tensor, shift: Tensor) -> Tensor:
    """counts [F, n] rebinned after each feature's range grew by 2^shift ([F] int64)."""
    changed = (shift > 0).nonzero().flatten()
    if len(changed) == 0:
        return counts
    n = counts.shape[1]
    index = torch.arange(n).unsqueeze(0) >> shift[changed].clamp(max=62).unsqueeze(1)
    out = counts.clone()
    out[changed] = torch.zeros_like(counts[changed]).scatter_add_(1, index, counts[changed])
    return out
