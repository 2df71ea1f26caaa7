"""Where training batches come from: an activation store on disk, or the model itself.

A source gives batch `step` of raw (unnormalised) activations, the same batch
every time it is asked (so `--resume` sees the same data), and the per-layer
statistics normalisation uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

import torch
from torch import Tensor

from circuitscope.data.bos import BosPolicy
from circuitscope.data.collect import record_batch
from circuitscope.data.stats import ActivationStats, StatsAccumulator
from circuitscope.data.store_reader import ActivationStore, mix_seed
from circuitscope.models.adapter import ModelAdapter


class BatchSource(Protocol):
    stats: ActivationStats
    n_layers: int
    d_model: int
    model_id: str
    architecture: str
    input_site: str
    """The transcoder input the batches hold: "mlp_in" or "resid_mid"."""

    def batch(self, step: int, rows: tuple[int, int] | None) -> tuple[Tensor, Tensor]:
        """(mlp_in, mlp_out) of step `step`, each [rows, n_layers, d_model] float32."""
        ...

    def describe(self) -> dict[str, Any]: ...


class StoreSource:
    """Batches from an activation store: epoch after epoch, reshuffled each epoch."""

    def __init__(self, store: ActivationStore, batch_size: int, seed: int) -> None:
        self.store = store
        self.batch_size = batch_size
        self.seed = seed
        self.per_epoch = store.batches_per_epoch(batch_size)
        manifest = store.manifest
        self.stats = store.stats
        self.n_layers, self.d_model = manifest.n_layers, manifest.d_model
        self.model_id, self.architecture = manifest.model, manifest.architecture
        self.input_site = manifest.input_site

    def batch(self, step: int, rows: tuple[int, int] | None) -> tuple[Tensor, Tensor]:
        epoch, index = divmod(step, self.per_epoch)
        return self.store.batch(epoch, index, self.batch_size, self.seed, rows)

    def describe(self) -> dict[str, Any]:
        m = self.store.manifest
        return {
            "source": "store",
            "store": str(self.store.folder),
            "store_tokens": m.n_tokens,
            "corpus": m.corpus,
            "context_length": m.context_length,
            "bos": m.bos,
            "sink_token_id": m.sink_token_id,
        }


class ModelSource:
    """Batches recorded from model forward passes as training goes (no disk).

    Step s runs the model on contexts [s·k, (s+1)·k) of the packed corpus (k
    contexts hold at least one batch of tokens; the corpus restarts when it runs
    out), shuffles their tokens with a seed of s and keeps the first batch_size.
    Statistics come from the first `stats_steps` steps' contexts.
    """

    def __init__(
        self,
        adapter: ModelAdapter,
        contexts: Callable[[], Iterator[Tensor]],
        batch_size: int,
        seed: int,
        model_id: str,
        architecture: str,
        stats_steps: int = 4,
        input_site: str = "mlp_in",
        bos: BosPolicy = "auto",
    ) -> None:
        self.adapter = adapter
        self.contexts = contexts
        self.batch_size = batch_size
        self.seed = seed
        self.n_layers, self.d_model = adapter.n_layers, adapter.d_model
        self.model_id, self.architecture = model_id, architecture
        self.input_site = input_site
        self.bos: BosPolicy = bos
        """The policy `contexts` were packed with: whether position 0 is a sink to skip."""
        first = next(iter(contexts()))
        self.per_step = -(-batch_size // (len(first) - 1))
        self._iter: Iterator[Tensor] | None = None
        self._position = 0
        accumulator = StatsAccumulator(self.n_layers, self.d_model)
        for step in range(stats_steps):
            x, y = self.batch(step, None)
            accumulator.add(x, y)
        self.stats = accumulator.result()

    def _contexts_from(self, start: int) -> Tensor:
        if self._iter is None or start < self._position:
            self._iter, self._position = self.contexts(), 0
        taken: list[Tensor] = []
        while len(taken) < self.per_step:
            try:
                context = next(self._iter)
            except StopIteration:
                self._iter = self.contexts()
                if self._position == 0:
                    raise
                continue
            if self._position >= start:
                taken.append(context)
            self._position += 1
        return torch.stack(taken)

    def batch(self, step: int, rows: tuple[int, int] | None) -> tuple[Tensor, Tensor]:
        ids = self._contexts_from(step * self.per_step)
        x, y = record_batch(self.adapter, ids, self.input_site, self.bos)
        order = torch.randperm(
            len(x), generator=torch.Generator().manual_seed(mix_seed(self.seed, step))
        )
        keep = order[: self.batch_size]
        if rows is not None:
            keep = keep[rows[0] : rows[1]]
        return x[keep].float().cpu(), y[keep].float().cpu()

    def describe(self) -> dict[str, Any]:
        return {"source": "model", "model": self.model_id, "bos": self.bos}
