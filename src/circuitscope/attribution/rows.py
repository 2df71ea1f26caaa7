"""Rows of the adjacency matrix by batched backward passes through the frozen model.

One forward pass of the local replacement model, with attention and norm scales
frozen and every MLP output held at its constant (features + error), batch B,
builds a graph that is linear from the token embeddings and MLP outputs to every
MLP input and to the final norm's output. Each later backward injects one
target's input vector per batch row (a feature's encoder vector at its MLP
input, or a demeaned unembedding vector at the final norm) and taps on the
embeddings and MLP outputs turn the arriving gradients into edge weights: the
gradient dotted with each source's output vector.

The graph keeps no activations: the sites where gradients enter are `_Inlet`
nodes (scalars standing for a site), the places where they are read are `_Tap`
nodes (constants), and frozen attention and norms save only their recorded
probabilities and scales. So a graph costs little memory at any length.

Attention is causal, so a target at position p depends on positions <= p only:
each batch runs through the graph of the shortest prompt prefix covering its
targets (graphs of a few prefix lengths are built on demand and kept).

Active features without a column (see `ColumnLayout`) still contribute to each
row's total |edge| (`RowBatch.outside_sum`) and its largest one (`outside_max`):
influence normalises rows by their total, and the largest bounds what an
uncounted feature could score.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx

from circuitscope.attribution.columns import OUTSIDE, ColumnLayout
from circuitscope.attribution.replacement import LocalReplacement
from circuitscope.attribution.writers import (
    ActiveDecoders,
    WriterTable,
    writer_table,
    writer_table_bytes,
)
from circuitscope.models import sites
from circuitscope.models.adapter import Replacement


@dataclass(frozen=True)
class Injection:
    """A target: the gradient `vector` [d_model] placed at `site`, `position`."""

    site: str
    position: int
    vector: Tensor


@dataclass
class RowBatch:
    values: Tensor
    """[k, n_columns] edges into each of k targets from every column's source."""
    outside_sum: Tensor
    """[k] sum of |edge| from active features without a column."""
    outside_max: Tensor
    """[k] largest |edge| from an active feature without a column."""


class _Inlet(torch.autograd.Function):
    """A scalar standing for a captured site: its backward hands the site `gradient`.

    The site's activations are not kept (only the graph behind them)."""

    @staticmethod
    def forward(ctx: FunctionCtx, site: Tensor, inlet: _InletState) -> Tensor:
        ctx.inlet = inlet  # type: ignore[attr-defined]
        return site.new_zeros(())

    @staticmethod
    def backward(ctx: Any, _grad: Tensor) -> tuple[Tensor, None]:
        return ctx.inlet.gradient, None


@dataclass
class _InletState:
    gradient: Tensor | None = None


class _Tap(torch.autograd.Function):
    """A constant [B, seq, d] whose incoming gradient is handed to `read`.

    `anchor` is a scalar leaf that makes the tap part of every backward."""

    @staticmethod
    def forward(
        ctx: FunctionCtx, anchor: Tensor, value: Tensor, read: Callable[[Tensor], None]
    ) -> Tensor:
        ctx.read = read  # type: ignore[attr-defined]
        return value.view_as(value)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        ctx.read(grad)
        return grad.new_zeros(()), None, None


@dataclass
class _PrefixGraph:
    length: int
    inlets: dict[str, tuple[Tensor, _InletState]]


class RowComputer:
    """Computes rows for up to `batch_size` targets per backward pass."""

    def __init__(
        self,
        replacement: LocalReplacement,
        layout: ColumnLayout,
        batch_size: int,
        writer_cache_bytes: float = 2**30,
        prefix_buckets: int = 16,
    ) -> None:
        self.replacement = replacement
        self.batch_size = batch_size
        self.dtype = replacement.dtype
        self._anchor = torch.zeros((), device=replacement.adapter.device, requires_grad=True)
        self._tokens = replacement.recording.cache[sites.EMBED][0].to(self.dtype)
        self._constants = replacement.constant_outputs(with_errors=True)
        self._step = max(1, -(-replacement.seq_len // prefix_buckets))
        self._graphs: dict[int, _PrefixGraph] = {}
        self._writer_cache_bytes = writer_cache_bytes
        self._decoders = ActiveDecoders(replacement.transcoder, replacement.features)
        self.set_layout(layout)

    def set_layout(self, layout: ColumnLayout) -> None:
        """Give columns to these candidates from now on (the others count as outside)."""
        self.layout = layout
        self._feature_columns = layout.feature_columns(len(self.replacement.features))
        self._cached: dict[int, WriterTable] = {}
        budget = self._writer_cache_bytes
        rep = self.replacement
        for layer in range(rep.n_layers):
            size = writer_table_bytes(rep.transcoder, rep.features, layer, rep.seq_len, self.dtype)
            if size <= budget:
                self._cached[layer] = self._build_writers(layer)
                budget -= size
        if len(self._cached) == rep.n_layers:  # nothing left to rebuild: drop the decoders
            self._decoders = ActiveDecoders(rep.transcoder, rep.features)

    def prefix_length(self, last_position: int) -> int:
        """The prefix whose graph serves targets up to `last_position`."""
        rounded = -(-(last_position + 1) // self._step) * self._step
        return min(rounded, self.replacement.seq_len)

    def rows(self, injections: list[Injection]) -> RowBatch:
        """Rows for k <= batch_size targets."""
        if not 0 < len(injections) <= self.batch_size:
            raise ValueError(f"between 1 and {self.batch_size} targets per pass")
        graph = self._graph(self.prefix_length(max(i.position for i in injections)))
        device = self.replacement.adapter.device
        shape = (self.batch_size, graph.length, self.replacement.adapter.d_model)
        grads: dict[str, Tensor] = {}
        for row, injection in enumerate(injections):
            grad = grads.setdefault(
                injection.site,
                torch.zeros(shape, dtype=self.replacement.adapter.dtype, device=device),
            )
            grad[row, injection.position] = injection.vector.to(grad.dtype)
        self._rows = torch.zeros(
            self.batch_size, self.layout.n_columns, dtype=self.dtype, device=device
        )
        self._outside_sum = torch.zeros(self.batch_size, dtype=self.dtype, device=device)
        self._outside_max = torch.zeros(self.batch_size, dtype=self.dtype, device=device)
        handles = []
        for site, grad in grads.items():
            handle, state = graph.inlets[site]
            state.gradient = grad
            handles.append(handle)
        try:
            torch.autograd.grad(handles, [self._anchor], retain_graph=True, allow_unused=True)
        finally:
            for _, state in graph.inlets.values():
                state.gradient = None
        k = len(injections)
        return RowBatch(
            self._rows[:k].cpu(), self._outside_sum[:k].cpu(), self._outside_max[:k].cpu()
        )

    def _writers(self, layer: int) -> WriterTable:
        if layer in self._cached:
            return self._cached[layer]
        return self._build_writers(layer)

    def _build_writers(self, layer: int) -> WriterTable:
        rep = self.replacement
        return writer_table(self._decoders, self._feature_columns, layer, rep.seq_len, self.dtype)

    def _graph(self, length: int) -> _PrefixGraph:
        if length not in self._graphs:
            self._graphs[length] = self._build_graph(length)
        return self._graphs[length]

    def _build_graph(self, length: int) -> _PrefixGraph:
        rep, batch = self.replacement, self.batch_size
        model_dtype = rep.adapter.dtype
        shape = (batch, length, rep.adapter.d_model)
        embed_value = rep.recording.cache[sites.EMBED][:, :length].to(model_dtype).expand(shape)
        embed = _Tap.apply(self._anchor, embed_value, self._token_edges)
        mlp_out: dict[int, Replacement] = {}
        for layer, constant in self._constants.items():
            value = constant[:, :length].to(model_dtype).expand(shape)
            tapped = _Tap.apply(self._anchor, value, partial(self._mlp_edges, layer))
            mlp_out[layer] = rep.with_skip(layer, tapped)
        targets = [sites.mlp_in(layer) for layer in range(rep.n_layers)] + [sites.FINAL_NORM]
        with torch.enable_grad():
            result = rep.adapter.run(
                rep.input_ids[:, :length].expand(batch, -1),
                frozen=rep.recording.frozen.prefix(length),
                mlp_out=mlp_out,
                embed=embed,
                capture=targets,
                keep_graph=True,
                unembed=False,
            )
            inlets = {}
            for site in targets:
                state = _InletState()
                inlets[site] = (_Inlet.apply(result.cache[site], state), state)
        return _PrefixGraph(length, inlets)

    def _token_edges(self, grad: Tensor) -> None:
        length = grad.shape[1]
        edges = (grad.to(self.dtype) * self._tokens[:length]).sum(-1)
        start = self.layout.token_columns.start
        self._rows[:, start : start + length] = edges

    def _mlp_edges(self, layer: int, grad: Tensor) -> None:
        grad = grad.to(self.dtype)
        length = grad.shape[1]
        errors = self.replacement.errors[layer, :length]
        start = self.layout.error_columns(layer).start
        edges = (grad * errors).sum(-1)
        edges[:, 0] = 0.0  # BOS: the same for every prompt, so its error is a constant, not a node
        self._rows[:, start : start + length] = edges
        table = self._writers(layer).prefix(length)
        edges = table.edges(grad)
        inside = table.columns >= 0
        if bool(inside.any()):
            columns = table.columns[inside].to(edges.device)
            self._rows[:, columns] += edges[:, inside.to(edges.device)]
        outside = table.columns == OUTSIDE
        if bool(outside.any()):
            magnitudes = edges[:, outside.to(edges.device)].abs()
            self._outside_sum += magnitudes.sum(dim=1)
            torch.maximum(self._outside_max, magnitudes.amax(dim=1), out=self._outside_max)
