"""One layer-batch's firings: their totals, their histogram counts and the candidates
they offer to the top-k and sample tables.

A firing is a token where a feature's activation is > 0 (token 0 of each context is
skipped). Two implementations with one contract: `TorchFirings` (the reference, torch
operations) and `KernelFirings` (two C loops, `firings.c`, built at first use by
`firings_kernel`; about ten times less time per layer-batch on a CPU). `firings_of`
picks the kernel when it is built and the activations are on the CPU; both give the
same numbers bit for bit, in the same order (the tests check it).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import torch
from torch import Tensor

from circuitscope.features import firings_kernel
from circuitscope.features.ranges import bin_of
from circuitscope.features.selection import descending_key, sample_key


@dataclass
class Candidates:
    """Firings that may enter a table ([m] each, in row-major order of the activations)."""

    row: Tensor  # int64: b·T + t
    slot: Tensor  # int64: the table's slot (the feature for top-k; feature·q + interval)
    key: Tensor  # int64
    value: Tensor  # float32


@dataclass
class Thresholds:
    """What a layer's update needs to pick candidates and fill its histogram."""

    exponent: Tensor  # [F] int64: each feature's range [0, 2^e), already grown by this batch
    histogram: Tensor  # [F, H] int64, contiguous: counts added in place
    top: Tensor  # [F] int64: the largest kept key per feature (the top-k table)
    samples: Tensor  # [F·q] int64: the largest kept key per interval slot
    feature_ids: Tensor  # [F] int64: global feature ids, for sample keys
    intervals: int  # q


class TorchFirings:
    """The reference: nonzero over the activations, then elementwise operations."""

    def __init__(self, acts: Tensor, length: int) -> None:
        """acts: [B·T, F] float32 contiguous; length: T."""
        n_features = acts.shape[1]
        fired = (acts > 0).view(-1, length, n_features)
        fired[:, 0] = False
        self.row, self.feature = fired.view(-1, n_features).nonzero(as_tuple=True)
        self.value = acts.view(-1).index_select(0, self.row * n_features + self.feature)
        self.n_features = n_features

    def totals(self) -> tuple[Tensor, Tensor]:
        """([F] int64 firings per feature, [F] float32 largest activation or 0)."""
        count = torch.bincount(self.feature, minlength=self.n_features)
        batch_max = torch.zeros(self.n_features).scatter_reduce_(
            0, self.feature, self.value, "amax"
        )
        return count, batch_max

    def select(self, first_position: int, given: Thresholds) -> tuple[Candidates, Candidates]:
        """Add every firing to the histogram; return (top candidates, sample candidates)."""
        f, value = self.feature, self.value
        n_bins = given.histogram.shape[1]
        fine = bin_of(value, given.exponent.index_select(0, f), n_bins)
        given.histogram.view(-1).index_put_(
            (f * n_bins + fine,), torch.ones_like(f), accumulate=True
        )
        key = descending_key(value)
        top = (key <= given.top.index_select(0, f)).nonzero().flatten()
        q = given.intervals
        slot = f * q + (fine >> (n_bins.bit_length() - q.bit_length()))
        skey = sample_key(given.feature_ids.index_select(0, f), first_position + self.row)
        sampled = (skey <= given.samples.index_select(0, slot)).nonzero().flatten()
        return (
            Candidates(self.row[top], f[top], key[top], value[top]),
            Candidates(self.row[sampled], slot[sampled], skey[sampled], value[sampled]),
        )


class KernelFirings:
    """The same contract, by the C loops of `firings.c` (CPU tensors only)."""

    def __init__(self, acts: Tensor, length: int, library: ctypes.CDLL) -> None:
        self.acts, self.length, self.library = acts, length, library

    def totals(self) -> tuple[Tensor, Tensor]:
        n_rows, n_features = self.acts.shape
        count = torch.zeros(n_features, dtype=torch.long)
        batch_max = torch.empty(n_features)
        self.n_fired = self.library.firing_totals(
            _ptr(self.acts), n_rows, n_features, self.length, _ptr(count), _ptr(batch_max)
        )
        return count, batch_max

    def select(self, first_position: int, given: Thresholds) -> tuple[Candidates, Candidates]:
        n_rows, n_features = self.acts.shape
        n_bins = given.histogram.shape[1]
        q = given.intervals
        top, samples = _empty(self.n_fired), _empty(self.n_fired)
        counts = torch.zeros(2, dtype=torch.long)
        tensors = [given.exponent, given.histogram, given.top, given.samples, given.feature_ids]
        if not all(t.is_contiguous() and t.dtype == torch.long for t in tensors):
            raise ValueError("thresholds must be contiguous int64 tensors")
        self.library.firing_select(
            _ptr(self.acts),
            n_rows,
            n_features,
            self.length,
            first_position,
            _ptr(given.exponent),
            n_bins,
            n_bins.bit_length() - 1,
            n_bins.bit_length() - q.bit_length(),
            q,
            *(_ptr(t) for t in tensors[1:]),
            *(_ptr(t) for t in (top.row, top.slot, top.key, top.value)),
            *(_ptr(t) for t in (samples.row, samples.slot, samples.key, samples.value)),
            _ptr(counts),
        )
        n_top, n_sampled = counts.tolist()
        return _first(top, n_top), _first(samples, n_sampled)


def firings_of(acts: Tensor, length: int) -> TorchFirings | KernelFirings:
    """The firings of acts [B·T, F] (float32, contiguous): by the C kernel when it is
    built and acts are on the CPU, else by torch."""
    library = firings_kernel.library() if acts.device.type == "cpu" else None
    if library is None:
        return TorchFirings(acts, length)
    return KernelFirings(acts, length, library)


def _ptr(tensor: Tensor) -> int:
    return tensor.data_ptr()


def _empty(n: int) -> Candidates:
    long = torch.long
    return Candidates(
        torch.empty(n, dtype=long), torch.empty(n, dtype=long), torch.empty(n, dtype=long),
        torch.empty(n),
    )  # fmt: skip


def _first(candidates: Candidates, n: int) -> Candidates:
    return Candidates(
        candidates.row[:n], candidates.slot[:n], candidates.key[:n], candidates.value[:n]
    )
