"""Keep the c smallest keys per slot: the one primitive behind top-k tables and samples.

Keys are integers in [0, 2^32) (`descending_key` of an activation, or `sample_key`).
Entries are ordered by (key, position): ties between equal keys go to the earlier
token, so the result does not depend on the order entries arrive in. That makes a
table's update by batches, and the merge of tables from several processes, equal
to a single selection over every entry at once.
"""

from __future__ import annotations

import torch
from torch import Tensor

KEY_BITS = 32
POSITION_BITS = 31


def keep_smallest(
    slot: Tensor, key: Tensor, position: Tensor, capacity: int | Tensor
) -> tuple[Tensor, Tensor]:
    """(kept indices [n_kept], their rank within their slot [n_kept]).

    slot, key, position: [n] int64, with key < 2^32, position < 2^31 and at most one
    entry per (slot, position). Keeps, per slot, the `capacity` entries with the smallest
    (key, position); capacity may be a [n] tensor, each entry's slot's.
    """
    if slot.numel() == 0:
        empty = torch.zeros(0, dtype=torch.long, device=slot.device)
        return empty, empty
    composite = (slot << KEY_BITS) | key
    ordered, order = torch.sort(composite)
    if bool((ordered[1:] == ordered[:-1]).any()):  # equal keys in a slot: earlier token first
        order = torch.sort((key << POSITION_BITS) | position).indices
        order = order[torch.sort(slot[order], stable=True).indices]
    _, rank = runs(slot[order])
    keep = rank < (capacity if isinstance(capacity, int) else capacity[order])
    return order[keep], rank[keep]


def runs(values: Tensor) -> tuple[Tensor, Tensor]:
    """For sorted `values` [n]: (where each run of equal values starts [n] bool, each
    entry's rank within its run [n])."""
    starts = torch.ones_like(values, dtype=torch.bool)
    starts[1:] = values[1:] != values[:-1]
    index = torch.arange(len(values), device=values.device)
    first = torch.cummax(torch.where(starts, index, torch.zeros_like(index)), dim=0).values
    return starts, index - first


def descending_key(values: Tensor) -> Tensor:
    """[n] int64 keys that sort positive float32 values from largest to smallest."""
    bits = values.float().view(torch.int32).long()  # monotone in the value for values >= 0
    return (1 << 31) - 1 - bits


def sample_key(feature: Tensor, position: Tensor, seed: int = 0) -> Tensor:
    """A pseudo-random int64 key in [0, 2^32) per (feature, token), fixed by their ids alone.

    feature: [n] global feature ids (< 2^31), position: [n] token positions (< 2^31).
    Keeping the c smallest keys of a bin is a uniform sample without replacement
    of its entries, and it is the same sample whatever the order or sharding of
    the stream. The arithmetic stays below 2^63 (no overflow).
    """
    mask = 0xFFFFFFFF
    x = (position * 2654435761 + feature * 40503 + seed * 97) & mask
    for _ in range(3):
        x = x ^ (x >> 16)
        x = (x * 0x45D9F3B) & mask
    return x ^ (x >> 16)
