"""One layer-batch's firings: their totals, their histogram counts and the candidates
they offer to the top-k and sample tables.

A firing is a token where a feature's activation is > 0 (token 0 of each context is
skipped). Two implementations with one contract: `TorchFirings` (the reference, torch
operations) and `KernelFirings` (two C loops, `firings.c`, built at first use by
`firings_kernel`). `firings_of` picks the kernel when it is built and the activations
are on the CPU. Both give the same totals and histogram counts bit for bit. The
reference offers every firing under a table's threshold; the kernel offers only each
slot's best `capacity` of them in the batch, the only ones that can enter, so the
tables they leave are the same (the tests check both).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import torch
from torch import Tensor

from circuitscope.features import firings_kernel
from circuitscope.features.ranges import bin_of
from circuitscope.features.selection import descending_key, sample_key
from circuitscope.features.tables import SlotTable


@dataclass
class Candidates:
    """Firings that may enter a table ([m] each)."""

    row: Tensor  # int64: b·T + t
    slot: Tensor  # int64: the table's slot (the feature for top-k; feature·q + interval)
    key: Tensor  # int64
    value: Tensor  # float32


@dataclass
class Batch:
    """The batch that entries are cut from: their windows and global positions."""

    acts: Tensor  # [B, T, F] float32: the activations of every covered feature
    input_ids: Tensor  # [B, T]
    first_position: int  # the global position of token 0 of context 0
    before: int  # tokens of a window before its peak
    after: int  # and after


@dataclass
class Thresholds:
    """What a layer's update needs to pick candidates and fill its histogram."""

    exponent: Tensor  # [F] int64: each feature's range [0, 2^e), already grown by this batch
    histogram: Tensor  # [F, H] int64, contiguous: counts added in place
    top: Tensor  # [F] int64: the largest kept key per feature (the top-k table)
    samples: Tensor  # [F·q] int64: the largest kept key per interval slot
    feature_ids: Tensor  # [F] int64: global feature ids, for sample keys
    intervals: int  # q
    top_k: int  # the top table's places per feature
    per_interval: int  # the sample table's places per slot


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

    def offer(self, table: SlotTable, offered: Candidates, per_feature: int, batch: Batch) -> None:
        """Offer candidates to a table (`per_feature` slots per feature), in place.
        Windows are cut only for the entries it keeps."""
        length = batch.acts.shape[1]

        def windows(i: Tensor) -> tuple[Tensor, Tensor]:
            row, feature = offered.row[i], offered.slot[i] // per_feature
            b, t = row // length, row % length
            return _windows(batch.acts, batch.input_ids, b, t, feature, batch.before, batch.after)

        position = batch.first_position + offered.row
        table.offer(offered.slot, offered.key, position, offered.value, windows)


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
        top = _empty(min(self.n_fired, n_features * given.top_k))
        samples = _empty(min(self.n_fired, n_features * q * given.per_interval))
        counts = torch.zeros(2, dtype=torch.long)
        tensors = [given.exponent, given.histogram, given.top, given.samples, given.feature_ids]
        if not all(t.is_contiguous() and t.dtype == torch.long for t in tensors):
            raise ValueError("thresholds must be contiguous int64 tensors")
        status = self.library.firing_select(
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
            given.top_k,
            given.per_interval,
            *(_ptr(t) for t in tensors[1:]),
            *(_ptr(t) for t in (top.row, top.slot, top.key, top.value)),
            *(_ptr(t) for t in (samples.row, samples.slot, samples.key, samples.value)),
            _ptr(counts),
        )
        if status != 0:
            raise MemoryError("the feature pass's C kernel could not allocate its tables")
        n_top, n_sampled = counts.tolist()
        return _first(top, n_top), _first(samples, n_sampled)

    def offer(self, table: SlotTable, offered: Candidates, per_feature: int, batch: Batch) -> None:
        """As `TorchFirings.offer`, by one C loop (the kept entries of a slot end up in
        other places than torch's; `SlotTable.in_order` sorts them the same)."""
        parts = (table.key, table.position, table.value, table.acts, table.tokens)
        if not all(t.is_contiguous() for t in parts):
            raise ValueError("table tensors must be contiguous")
        ids = batch.input_ids.to(torch.long).contiguous()
        self.library.table_offer(
            len(offered.row),
            *(_ptr(t) for t in (offered.row, offered.slot, offered.key, offered.value)),
            batch.first_position,
            table.capacity,
            per_feature,
            *(_ptr(t) for t in parts),
            _ptr(self.acts),
            _ptr(ids),
            self.acts.shape[1],
            self.length,
            batch.before,
            batch.after,
        )


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


def _windows(
    acts: Tensor, input_ids: Tensor, b: Tensor, t: Tensor, f: Tensor, before: int, after: int
) -> tuple[Tensor, Tensor]:
    """Activations of feature f and token ids around (b, t): ([m, W], [m, W]); position 0
    and positions past the context are padding (activation 0, token -1)."""
    offsets = torch.arange(-before, after + 1)
    where = t.unsqueeze(1) + offsets
    valid = (where >= 1) & (where < acts.shape[1])
    where = where.clamp(0, acts.shape[1] - 1)
    row = b.unsqueeze(1) * acts.shape[1] + where  # (index_select: ~3x faster than [] here)
    picked = acts.view(-1).index_select(0, (row * acts.shape[2] + f.unsqueeze(1)).view(-1))
    window_acts = torch.where(valid, picked.view_as(where), 0.0) + 0.0  # no -0.0
    tokens = torch.where(
        valid, input_ids.reshape(-1).index_select(0, row.view(-1)).view_as(where), -1
    )
    return window_acts, tokens
