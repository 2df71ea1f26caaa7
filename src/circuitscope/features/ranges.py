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
    scaled = values.float() * power_of_two(n_bins.bit_length() - 1 - exponent)
    return scaled.long().clamp(0, n_bins - 1)  # values >= 0: truncation is floor


def power_of_two(k: Tensor) -> Tensor:
    """2^k as float32, exactly, for integer k in [-126, 127] (the bits, not `pow`).

    Scaling a float32 by it is exact unless the result is subnormal; `bin_of`'s
    results lie in [0, n_bins), and a subnormal one is below 1 however it rounds."""
    return ((k.int() + 127) << 23).view(torch.float32)


def rebin_counts(counts: Tensor, shift: Tensor) -> Tensor:
    """counts [F, n] rebinned in place after each feature's range grew by 2^shift ([F]
    int64); returns counts. Only the rows that grew are rewritten."""
    changed = (shift > 0).nonzero().flatten()
    if len(changed) == 0:
        return counts
    n = counts.shape[1]
    index = torch.arange(n).unsqueeze(0) >> shift[changed].clamp(max=62).unsqueeze(1)
    rows = counts[changed]
    counts[changed] = torch.zeros_like(rows).scatter_add_(1, index, rows)
    return counts
