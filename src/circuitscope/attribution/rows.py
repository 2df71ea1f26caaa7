"""Rows of the adjacency matrix by batched backward passes through the frozen model.

One forward pass of the local replacement model, with attention and norm scales
frozen and every MLP output held at its constant (features + error), batch B,
builds a graph that is linear from the token embeddings and MLP outputs to every
MLP input and to the final norm's output. Each later backward injects one
target's input vector per batch row (a feature's encoder vector at the site its
transcoder reads, or a demeaned unembedding vector at the final norm) and taps on the
embeddings and MLP outputs turn the arriving gradients into edge weights: the
gradient dotted with each source's output vector.

The graph keeps no activations: the sites where gradients enter are `_Inlet`
nodes (scalars standing for a site), the places where they are read are `_Tap`
nodes (constants), and frozen attention and norms save only their recorded
probabilities and scales. So a graph costs little memory at any length.

Attention is causal, so a target at position p depends on positions <= p only:
each batch runs through the graph of the shortest prompt prefix covering its
targets (graphs of a few prefix lengths are built on demand and kept).

A backward reaches only what lies below its inlets: a pass whose targets are all
at layers <= l runs through layers below l only (the MLP inputs of layer l depend
on nothing above), so visit.py groups each pass's targets by layer. `BackwardWork`
counts what the passes did: per pass, the layers whose MLP output taps the
gradient reached, times the pass's batch rows (and its prefix length).

Active features without a column (see `ColumnLayout`) still contribute to each
row's total |edge| (`RowBatch.outside_sum`), its largest one (`outside_max`) and
each feature's largest over the batch (`outside_column_max`): influence
normalises rows by their total, and the maxima bound what an uncounted feature
could score (`OutsideBlocks`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx

from circuitscope.allocator import heap_during_pass
from circuitscope.attribution.columns import ColumnLayout, all_columns
from circuitscope.attribution.replacement import LocalReplacement
from circuitscope.attribution.sink import SINK
from circuitscope.attribution.writers import (
    ActiveDecoders,
    writer_edges,
    writer_slots,
)
from circuitscope.models import sites
from circuitscope.models.adapter import MlpOutput


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
    outside_column_max: Tensor | None = None
    """[n_outside] each feature without a column: its largest |edge| over the k rows."""


@dataclass
class BackwardWork:
    """The work of the backward passes so far, counted (not timed).

    A pass computes on its whole batch (rows past its targets are zeros) through the
    prompt prefix it needs, in every layer whose MLP output its gradient reaches:
    layers 0 .. l-1 for targets at layers <= l, every layer for a logit target."""

    passes: int = 0
    layer_rows: int = 0
    """Sum over passes of batch rows times the layers the backward reached."""
    layer_row_positions: int = 0
    """Sum over passes of batch rows times layers reached times prefix length."""

    def add(self, batch: int, layers: int, length: int) -> None:
        """One pass: `batch` rows through `layers` layers of a `length`-token prefix."""
        self.passes += 1
        self.layer_rows += batch * layers
        self.layer_row_positions += batch * layers * length


POSITION_DOTS_CHUNK = 1 << 21
"""Elements of grad per product in `position_dots` (8 MB in fp32)."""


def position_dots(grad: Tensor, vectors: Tensor) -> Tensor:
    """grad [B, T, d] dotted with the vector of its position, vectors [T, d] -> [B, T].

    An elementwise product and a sum over d, a few positions at a time, so the
    temporary stays under `POSITION_DOTS_CHUNK` elements. (einsum makes this a batched
    matrix-vector product, about 8x slower on CPU: 0.53 against 0.065 ms at
    B = T = 32, d = 576.)"""
    batch, length, width = grad.shape
    step = max(1, POSITION_DOTS_CHUNK // max(1, batch * width))
    if step >= length:
        return torch.linalg.vecdot(grad, vectors)
    out = grad.new_empty(batch, length)
    for start in range(0, length, step):
        stop = min(start + step, length)
        out[:, start:stop] = torch.linalg.vecdot(grad[:, start:stop], vectors[start:stop])
    return out


WRITER_BLOCK_POSITIONS = 8
"""The fewest positions per block of a layer's writer table (`position_blocks`): one
batched product per block, each position's writers padded to the block's widest. With
blocks of the prefix step alone, short prompts had one or two positions per block: at
32 tokens, batch 32, ~30 writers per position, 0.88 ms per layer with blocks of 2
against 0.49 ms with blocks of 8 (+9% padding), timed alone; inside a trace, where the
table comes from memory, the difference was within the machine's noise."""


RENT_SHARE = 4
"""A prefix without a graph runs on a longer one until the work wasted reaches a
quarter of its own graph's cost (`RowComputer._graph_for`)."""


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
        writer_cache_bytes: float,
        prefix_buckets: int = 16,
        reuse_longer_graphs: bool = True,
    ) -> None:
        self.replacement = replacement
        self.batch_size = batch_size
        self.dtype = replacement.dtype
        self._anchor = torch.zeros((), device=replacement.adapter.device, requires_grad=True)
        self._tokens = replacement.recording.cache[sites.EMBED][0].to(self.dtype)
        self._constants = replacement.constant_outputs(with_errors=True)
        self._skip = replacement.transcoder.config.skip_connection
        self._step = max(1, -(-replacement.seq_len // prefix_buckets))
        self._graphs: dict[int, _PrefixGraph] = {}
        self._reuse = reuse_longer_graphs
        self._wasted: dict[int, int] = {}
        """Per prefix length without a graph: positions times layers that its passes ran
        on a longer graph (`_graph_for`)."""
        n_layers = replacement.n_layers
        self._site_layers = {replacement.input_site(layer): layer for layer in range(n_layers)}
        self._site_layers[sites.FINAL_NORM] = n_layers  # a logit's pass reaches every layer
        self._decoders = ActiveDecoders(replacement.transcoder, replacement.features)
        self._slots = [
            writer_slots(
                replacement.transcoder,
                replacement.features,
                layer,
                replacement.seq_len,
                block_length=max(self._step, WRITER_BLOCK_POSITIONS),
            )
            for layer in range(replacement.n_layers)
        ]
        self._tables = self._cached_tables(writer_cache_bytes)
        n_active = len(replacement.features)
        self._every = all_columns(n_active, replacement.n_layers, replacement.seq_len)
        self.work = BackwardWork()
        self._reached = 0
        """Layers whose MLP output tap the current pass has read."""
        self.set_layout(layout)

    def _cached_tables(self, budget: float) -> dict[int, Tensor]:
        """Fill and keep the tables that fit in `budget` bytes; one scratch for the rest."""
        d_model = self.replacement.adapter.d_model
        device = self.replacement.transcoder.home
        itemsize = torch.empty((), dtype=self.dtype).element_size()
        tables, scratch = {}, 0
        for slots in self._slots:
            size = slots.table_bytes(d_model, itemsize)
            if size <= budget:
                empty = torch.zeros(size // itemsize // d_model, d_model, dtype=self.dtype)
                tables[slots.layer] = slots.fill(self._decoders, empty.to(device))
                budget -= size
            else:
                scratch = max(scratch, slots.n_slots)
        self._scratch = torch.zeros(scratch, d_model, dtype=self.dtype, device=device)
        if not scratch:  # every table kept: the decoder rows are not needed again
            self._decoders.clear()
        return tables

    def set_layout(self, layout: ColumnLayout) -> None:
        """Give columns to these candidates from now on (the others count as outside).

        The backward passes always fill rows over every active feature (a CLT feature's
        edge sums its writes into several layers, so only whole rows give its |edge|);
        the layout picks the columns returned and which ones are summed as outside."""
        self.layout = layout
        n_active = len(self.replacement.features)
        if layout.n_features == n_active:
            self._kept, self._outside = None, None
            return
        outside = torch.ones(n_active, dtype=torch.bool)
        outside[layout.candidates] = False
        other = torch.arange(n_active, self._every.n_columns)
        self._kept = torch.cat([layout.candidates, other])
        self._outside = torch.nonzero(outside).flatten()

    def prefix_length(self, last_position: int) -> int:
        """The prefix whose graph serves targets up to `last_position`."""
        rounded = -(-(last_position + 1) // self._step) * self._step
        return min(rounded, self.replacement.seq_len)

    def rows(self, injections: list[Injection]) -> RowBatch:
        """Rows [k, n_columns] for k <= batch_size targets, in their order (one backward
        pass, through the layers below the highest target's; counted in `work`)."""
        if not 0 < len(injections) <= self.batch_size:
            raise ValueError(f"between 1 and {self.batch_size} targets per pass")
        unknown = {i.site for i in injections} - self._site_layers.keys()
        if unknown:
            raise ValueError(
                f"no target site {sorted(unknown)}: the inlets are {self._site_layers}"
            )
        needed = self.prefix_length(max(i.position for i in injections))
        graph = self._graph_for(needed, max(self._site_layers[i.site] for i in injections))
        with heap_during_pass():
            rows = self._backward(graph, injections)
        self._rows = rows.new_empty(0, 0)  # this pass's buffer is freed with `rows`
        return self._split(rows[: len(injections)])

    def _backward(self, graph: _PrefixGraph, injections: list[Injection]) -> Tensor:
        """One backward pass: [batch_size, every column] edges into each target."""
        device = self.replacement.adapter.device
        shape = (self.batch_size, graph.length, self.replacement.adapter.d_model)
        grads: dict[str, Tensor] = {}
        for row, injection in enumerate(injections):
            if injection.site not in grads:  # one buffer per site, not one per target
                dtype = self.replacement.adapter.dtype
                grads[injection.site] = torch.zeros(shape, dtype=dtype, device=device)
            grad = grads[injection.site]
            grad[row, injection.position] = injection.vector.to(grad.dtype)
        self._rows = torch.zeros(
            self.batch_size, self._every.n_columns, dtype=self.dtype, device=device
        )
        handles = []
        for site, grad in grads.items():
            handle, state = graph.inlets[site]
            state.gradient = grad
            handles.append(handle)
        self._reached = 0
        try:
            torch.autograd.grad(handles, [self._anchor], retain_graph=True, allow_unused=True)
        finally:
            for _, state in graph.inlets.values():
                state.gradient = None
        self.work.add(self.batch_size, self._reached, graph.length)
        return self._rows

    def _split(self, rows: Tensor, chunk: int = 1 << 18) -> RowBatch:
        """Rows over every active feature -> the layout's columns and the outside totals."""
        zeros = torch.zeros(len(rows), dtype=rows.dtype)
        if self._kept is None or self._outside is None:
            return RowBatch(rows.cpu(), zeros, zeros.clone())
        device = rows.device
        values = rows.index_select(1, self._kept.to(device)).cpu()
        total = torch.zeros(len(rows), dtype=rows.dtype, device=device)
        largest = torch.zeros_like(total)
        column_max = torch.zeros(len(self._outside), dtype=rows.dtype, device=device)
        for start in range(0, len(self._outside), chunk):
            index = self._outside[start : start + chunk].to(device)
            magnitudes = rows.index_select(1, index).abs_()
            total += magnitudes.sum(dim=1)
            largest = torch.maximum(largest, magnitudes.amax(dim=1))
            column_max[start : start + len(index)] = magnitudes.amax(dim=0)
        return RowBatch(values, total.cpu(), largest.cpu(), column_max.cpu())

    def _graph_for(self, needed: int, layers: int) -> _PrefixGraph:
        """The graph a pass over `needed` positions and `layers` layers runs on.

        Its own prefix's, once built. Until then, with `reuse_longer_graphs`, the shortest
        longer graph already built, while the work that wastes (the extra positions times
        the layers, summed over the passes that needed this prefix) stays below a
        `RENT_SHARE`-th of what building its own costs (a forward over `needed` positions
        and every layer); then it is built. A 32-token trace built a second graph (0.4 s)
        for one pass of 65 that needed 30 positions; an 8-token trace has dozens of
        passes at each length, and renting longer each would cost most of a build
        (0.06 s) per length. The rows are the same on either graph."""
        if needed in self._graphs or not self._reuse:
            return self._graph(needed)
        longer = [length for length in self._graphs if length > needed]
        if not longer:
            return self._graph(needed)
        shortest = min(longer)
        self._wasted[needed] = self._wasted.get(needed, 0) + (shortest - needed) * layers
        if self._wasted[needed] * RENT_SHARE < needed * self.replacement.n_layers:
            return self._graphs[shortest]
        return self._graph(needed)

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
        mlp_out: dict[int, MlpOutput] = {
            layer: self._tapped_output(layer, constant[:, :length].to(model_dtype).expand(shape))
            for layer, constant in self._constants.items()
        }
        targets = [rep.input_site(layer) for layer in range(rep.n_layers)] + [sites.FINAL_NORM]
        states = {site: _InletState() for site in targets}

        def inlet(site: str, value: Tensor) -> Tensor:  # the site's activations are dropped
            return _Inlet.apply(value, states[site])

        with torch.enable_grad():
            result = rep.adapter.run(
                rep.input_ids[:, :length].expand(batch, -1),
                frozen=rep.recording.frozen.prefix(length),
                mlp_out=mlp_out,
                embed=embed,
                capture=targets,
                keep_graph=True,
                unembed=False,
                capture_as=inlet,
                live_input=rep.live_input,
            )
        return _PrefixGraph(length, {site: (result.cache[site], states[site]) for site in targets})

    def _tapped_output(self, layer: int, value: Tensor) -> Callable[[Tensor], Tensor]:
        """The MLP output as a function of the transcoder's live input, tapped when the
        layer runs.

        Made during the forward, the tap's backward runs as soon as its gradient
        arrives; made before it, autograd would run every tap last and hold every
        layer's gradient [B, seq, d] until then."""

        def output(live: Tensor) -> Tensor:
            tapped = _Tap.apply(self._anchor, value, partial(self._mlp_edges, layer))
            return tapped + self.replacement.transcoder.skip(layer, live) if self._skip else tapped

        return output

    def _token_edges(self, grad: Tensor) -> None:
        length = grad.shape[1]
        edges = position_dots(grad.to(self.dtype), self._tokens[:length])
        start = self._every.token_columns.start
        self._rows[:, start : start + length] = edges

    def _mlp_edges(self, layer: int, grad: Tensor) -> None:
        self._reached += 1
        grad = grad.to(self.dtype)
        length = grad.shape[1]
        errors = self.replacement.errors[layer, :length]
        start = self._every.error_columns(layer).start
        edges = position_dots(grad, errors)
        edges[:, SINK] = 0.0  # the sink's error is a constant of the model, not a node
        self._rows[:, start : start + length] = edges
        table = self._tables.get(layer)
        if table is None:
            table = self._slots[layer].fill(self._decoders, self._scratch)
        slots = self._slots[layer]
        edges = writer_edges(grad, table, slots)
        n = slots.before(length)  # rows span every active feature: column = feature index
        if n:
            device = edges.device
            scales = slots.activations[:n].to(device, edges.dtype)
            features = slots.features[:n].to(device)
            written = edges.index_select(1, slots.slots[:n].to(device)).mul_(scales)
            self._rows.index_add_(1, features, written)  # one op (8x `+=` timed alone)
