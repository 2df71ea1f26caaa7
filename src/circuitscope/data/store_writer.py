"""Writing an activation store: shuffled shards, checksums, statistics, manifest last.

Tokens are gathered in a buffer of `shuffle_shards` shards, permuted with a
seeded generator (so one shard mixes tokens of many contexts) and written. The
manifest is written last, atomically: a folder without one is an unfinished store.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor

from circuitscope.data.stats import StatsAccumulator
from circuitscope.data.store_format import (
    MANIFEST,
    MLP_IN,
    MLP_OUT,
    STATS_FILE,
    Manifest,
    ShardInfo,
    sha256_file,
    write_json_atomic,
)
from circuitscope.errors import CircuitscopeError


class StoreWriter:
    """Add tokens with `add`, then `close` to write what is left and the manifest."""

    def __init__(
        self, folder: Path, manifest: Manifest, shard_tokens: int = 4096, shuffle_shards: int = 4
    ) -> None:
        if manifest.dtype not in ("float16", "bfloat16", "float32"):
            raise CircuitscopeError(
                f"store dtype must be float16 or bfloat16, not {manifest.dtype}"
            )
        if shard_tokens < 1 or shuffle_shards < 1:
            raise CircuitscopeError("shard_tokens and shuffle_shards must be positive")
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.manifest = manifest
        self.shard_tokens = shard_tokens
        self.shuffle_shards = shuffle_shards
        self.dtype = getattr(torch, manifest.dtype)
        self.generator = torch.Generator().manual_seed(manifest.seed)
        self.stats = StatsAccumulator(manifest.n_layers, manifest.d_model)
        self.pending_in: list[Tensor] = []
        self.pending_out: list[Tensor] = []
        self.pending = 0

    def add(self, mlp_in: Tensor, mlp_out: Tensor) -> None:
        """Tokens to store. mlp_in, mlp_out: [n_tokens, n_layers, d_model]."""
        expected = (self.manifest.n_layers, self.manifest.d_model)
        if mlp_in.shape != mlp_out.shape or tuple(mlp_in.shape[1:]) != expected:
            raise ValueError(f"expected two [n, {expected[0]}, {expected[1]}] tensors")
        self.stats.add(mlp_in, mlp_out)
        stored_in, stored_out = mlp_in.to(self.dtype), mlp_out.to(self.dtype)
        if not (torch.isfinite(stored_in).all() and torch.isfinite(stored_out).all()):
            raise CircuitscopeError(
                f"activations overflow {self.manifest.dtype}: collect with --dtype bfloat16"
            )
        self.pending_in.append(stored_in.cpu())
        self.pending_out.append(stored_out.cpu())
        self.pending += int(mlp_in.shape[0])
        if self.pending >= self.shard_tokens * self.shuffle_shards:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        if not self.pending:
            return
        x = torch.cat(self.pending_in)
        y = torch.cat(self.pending_out)
        keep = len(x) if final else self.shard_tokens * self.shuffle_shards
        order = torch.randperm(keep, generator=self.generator)
        rest_x, rest_y = x[keep:], y[keep:]
        x, y = x[:keep][order], y[:keep][order]
        for start in range(0, keep, self.shard_tokens):
            self._write_shard(
                x[start : start + self.shard_tokens], y[start : start + self.shard_tokens]
            )
        self.pending_in = [rest_x] if len(rest_x) else []
        self.pending_out = [rest_y] if len(rest_y) else []
        self.pending = len(rest_x)

    def _write_shard(self, x: Tensor, y: Tensor) -> None:
        name = f"shard_{len(self.manifest.shards):05d}.safetensors"
        path = self.folder / name
        save_file({MLP_IN: x.contiguous(), MLP_OUT: y.contiguous()}, str(path))
        self.manifest.shards.append(ShardInfo(name, int(x.shape[0]), sha256_file(path)))
        self.manifest.n_tokens += int(x.shape[0])

    def close(self) -> Manifest:
        """Write the remaining tokens, the statistics and the manifest."""
        self._flush(final=True)
        stats_path = self.folder / STATS_FILE
        self.stats.result().save(stats_path)
        self.manifest.stats_sha256 = sha256_file(stats_path)
        write_json_atomic(self.folder / MANIFEST, self.manifest.to_dict())
        return self.manifest
