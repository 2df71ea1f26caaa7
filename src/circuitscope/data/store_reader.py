"""Reading an activation store back as a seeded, shuffled, resumable stream of batches.

Each epoch visits the shards in a seeded order, in groups of `group_shards`
shards whose tokens are permuted together; the epoch's batches are consecutive
slices of that stream (a last partial batch is dropped). `batch(epoch, index)`
is random access, so a resumed run gets exactly the batches it would have had.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor

from circuitscope.data.stats import ActivationStats
from circuitscope.data.store_format import (
    MLP_IN,
    MLP_OUT,
    STATS_FILE,
    Manifest,
    read_manifest,
    sha256_file,
)
from circuitscope.errors import CircuitscopeError


def mix_seed(*parts: int) -> int:
    """One generator seed from several integers."""
    value = 0x9E3779B97F4A7C15
    for part in parts:
        value = (value ^ (part + 0x632BE59BD9B4E019 + (value << 6) + (value >> 2))) % (1 << 63)
    return value


@dataclass
class _Group:
    shards: list[int]
    start: int
    """Offset of its first token in the epoch's stream."""
    n_tokens: int


class ActivationStore:
    """An activation store folder opened for reading (see `store_format`)."""

    def __init__(self, folder: str | Path, verify: bool = True, group_shards: int = 4) -> None:
        self.folder = Path(folder)
        self.manifest: Manifest = read_manifest(self.folder)
        self.verify = verify
        self.group_shards = max(1, int(group_shards))
        self._verified: set[int] = set()
        self._cache: OrderedDict[tuple[int, int, int], tuple[Tensor, Tensor]] = OrderedDict()
        for shard in self.manifest.shards:
            if not (self.folder / shard.file).is_file():
                raise CircuitscopeError(f"activation store {self.folder}: missing {shard.file}")
        stats_path = self.folder / STATS_FILE
        if not stats_path.is_file():
            raise CircuitscopeError(f"activation store {self.folder}: missing {STATS_FILE}")
        if verify and sha256_file(stats_path) != self.manifest.stats_sha256:
            raise CircuitscopeError(f"{stats_path}: checksum mismatch (corrupt file)")
        self.stats = ActivationStats.load(stats_path)

    @property
    def n_tokens(self) -> int:
        return self.manifest.n_tokens

    def batches_per_epoch(self, batch_size: int) -> int:
        count = self.n_tokens // batch_size
        if count == 0:
            raise CircuitscopeError(
                f"the store holds {self.n_tokens} tokens, fewer than one batch of {batch_size}"
            )
        return count

    def read_shard(self, index: int) -> tuple[Tensor, Tensor]:
        """Shard `index` as stored: (mlp_in, mlp_out), each [n, n_layers, d_model]."""
        info = self.manifest.shards[index]
        path = self.folder / info.file
        if self.verify and index not in self._verified:
            if sha256_file(path) != info.sha256:
                raise CircuitscopeError(
                    f"activation shard {path} is corrupt (checksum mismatch); collect again"
                )
            self._verified.add(index)
        try:
            tensors = load_file(str(path))
            x, y = tensors[MLP_IN], tensors[MLP_OUT]
        except Exception as error:  # safetensors raises several types for bad files
            raise CircuitscopeError(
                f"activation shard {path} is unreadable ({type(error).__name__}: {error})"
            ) from None
        shape = (info.n_tokens, self.manifest.n_layers, self.manifest.d_model)
        if tuple(x.shape) != shape or tuple(y.shape) != shape:
            raise CircuitscopeError(
                f"activation shard {path}: shape {tuple(x.shape)}, expected {shape}"
            )
        return x, y

    def epoch_groups(self, epoch: int, seed: int) -> list[_Group]:
        """The shard groups of `epoch`, in the order they are read."""
        n = len(self.manifest.shards)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(mix_seed(seed, epoch)))
        groups: list[_Group] = []
        start = 0
        for first in range(0, n, self.group_shards):
            members = [int(i) for i in order[first : first + self.group_shards]]
            size = sum(self.manifest.shards[i].n_tokens for i in members)
            groups.append(_Group(members, start, size))
            start += size
        return groups

    def _group_tokens(
        self, epoch: int, seed: int, index: int, group: _Group
    ) -> tuple[Tensor, Tensor]:
        key = (epoch, seed, index)
        if key not in self._cache:
            parts = [self.read_shard(i) for i in group.shards]
            x = torch.cat([p[0] for p in parts])
            y = torch.cat([p[1] for p in parts])
            generator = torch.Generator().manual_seed(mix_seed(seed, epoch, index, 1))
            order = torch.randperm(len(x), generator=generator)
            self._cache[key] = (x[order], y[order])
            while len(self._cache) > 2:
                self._cache.popitem(last=False)
        return self._cache[key]

    def batch(
        self,
        epoch: int,
        index: int,
        batch_size: int,
        seed: int = 0,
        rows: tuple[int, int] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Batch `index` of `epoch`: (mlp_in, mlp_out), each [batch_size, n_layers, d_model].

        rows: keep only rows [start, stop) of the batch (one process's share in DDP).
        """
        if not 0 <= index < self.batches_per_epoch(batch_size):
            raise IndexError(f"batch {index} out of range for batch size {batch_size}")
        lo, hi = index * batch_size, (index + 1) * batch_size
        if rows is not None:
            lo, hi = lo + rows[0], index * batch_size + rows[1]
        xs, ys = [], []
        for g, group in enumerate(self.epoch_groups(epoch, seed)):
            a, b = max(lo, group.start), min(hi, group.start + group.n_tokens)
            if a >= b:
                continue
            x, y = self._group_tokens(epoch, seed, g, group)
            xs.append(x[a - group.start : b - group.start])
            ys.append(y[a - group.start : b - group.start])
        return torch.cat(xs).float(), torch.cat(ys).float()
