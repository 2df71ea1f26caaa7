"""Rows of the adjacency matrix by batched backward passes through the frozen model.

One forward pass of the local replacement model, with attention and norm scales
frozen and every MLP output held at its constant (features + error), batch B,
builds a graph that is linear from the token embeddings and MLP outputs to every
MLP input and to the final norm's output. Each later backward injects one
target's input vector per batch row (a feature's encoder vector at its MLP
input, or a demeaned unembedding vector at the final norm) and hooks on the
embeddings and MLP outputs turn the arriving gradients into edge weights: the
gradient dotted with each source's output vector.

Attention is causal, so a target at position p depends on positions <= p only:
each batch runs through the graph of the shortest prompt prefix covering its
targets (graphs of a few prefix lengths are built on demand and kept; a frozen
linear graph holds almost no saved activations).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor

from circuitscope.attribution.columns import ColumnLayout
from circuitscope.attribution.replacement import LocalReplacement
from circuitscope.attribution.writers import WriterTable, writer_table
from circuitscope.models import sites
from circuitscope.models.adapter import Replacement


@dataclass(frozen=True)
class Injection:
    """A target: the gradient `vector` [d_model] placed at `site`, `position`."""

    site: str
    position: int
    vector: Tensor


@dataclass
class _PrefixGraph:
    length: int
    outputs: dict[str, Tensor]
    leaves: list[Tensor]


class RowComputer:
    """Computes rows for up to `batch_size` targets per backward pass."""

    def __init__(
        self,
        replacement: LocalReplacement,
        layout: ColumnLayout,
        batch_size: int,
        cache_writers: bool = True,
        prefix_buckets: int = 16,
    ) -> None:
        self.replacement = replacement
        self.layout = layout
        self.batch_size = batch_size
        self.dtype = replacement.dtype
        self._rows = torch.zeros(0)
        self._cached: dict[int, WriterTable] = {}
        if cache_writers:
            for layer in range(replacement.n_layers):
                self._cached[layer] = self._writers(layer)
        self._tokens = replacement.recording.cache[sites.EMBED][0].to(self.dtype)
        self._constants = replacement.constant_outputs(with_errors=True)
        self._step = max(1, -(-replacement.seq_len // prefix_buckets))
        self._graphs: dict[int, _PrefixGraph] = {}

    def prefix_length(self, last_position: int) -> int:
        """The prefix whose graph serves targets up to `last_position`."""
        rounded = -(-(last_position + 1) // self._step) * self._step
        return min(rounded, self.replacement.seq_len)

    def rows(self, injections: list[Injection]) -> Tensor:
        """[k, n_columns] rows for k <= batch_size targets."""
        if not 0 < len(injections) <= self.batch_size:
            raise ValueError(f"between 1 and {self.batch_size} targets per pass")
        graph = self._graph(self.prefix_length(max(i.position for i in injections)))
        rep = self.replacement
        shape = (self.batch_size, graph.length, rep.adapter.d_model)
        grads: dict[str, Tensor] = {}
        for row, injection in enumerate(injections):
            grad = grads.setdefault(
                injection.site,
                torch.zeros(shape, dtype=rep.adapter.dtype, device=rep.adapter.device),
            )
            grad[row, injection.position] = injection.vector.to(grad.dtype)
        self._rows = torch.zeros(
            self.batch_size, self.layout.n_columns, dtype=self.dtype, device=rep.adapter.device
        )
        outputs = [graph.outputs[site] for site in grads]
        # Every leaf is an input, so that autograd runs the branches whose hooks read the
        # gradients (the leaves are [1, length, d]: their own gradients stay small).
        torch.autograd.grad(
            outputs, graph.leaves, list(grads.values()), retain_graph=True, allow_unused=True
        )
        return self._rows[: len(injections)].cpu()

    def _writers(self, layer: int) -> WriterTable:
        if layer in self._cached:
            return self._cached[layer]
        rep = self.replacement
        return writer_table(
            rep.transcoder, rep.features, self.layout.candidates, layer, rep.seq_len, self.dtype
        )

    def _graph(self, length: int) -> _PrefixGraph:
        if length not in self._graphs:
            self._graphs[length] = self._build_graph(length)
        return self._graphs[length]

    def _build_graph(self, length: int) -> _PrefixGraph:
        rep, batch = self.replacement, self.batch_size
        model_dtype = rep.adapter.dtype
        embed_leaf = rep.recording.cache[sites.EMBED][:, :length].detach().clone()
        embed_leaf.requires_grad_(True)
        embed = embed_leaf.expand(batch, -1, -1)
        embed.register_hook(self._token_hook)
        mlp_out: dict[int, Replacement] = {}
        leaves = [embed_leaf]
        for layer, constant in self._constants.items():
            leaf = constant[:, :length].to(model_dtype).detach().clone().requires_grad_(True)
            leaves.append(leaf)
            view = leaf.expand(batch, -1, -1)
            view.register_hook(partial(self._mlp_hook, layer))
            mlp_out[layer] = rep.with_skip(layer, view)
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
        return _PrefixGraph(length, result.cache, leaves)

    def _token_hook(self, grad: Tensor) -> None:
        length = grad.shape[1]
        edges = (grad.to(self.dtype) * self._tokens[:length]).sum(-1)
        start = self.layout.token_columns.start
        self._rows[:, start : start + length] = edges

    def _mlp_hook(self, layer: int, grad: Tensor) -> None:
        grad = grad.to(self.dtype)
        length = grad.shape[1]
        errors = self.replacement.errors[layer, :length]
        start = self.layout.error_columns(layer).start
        edges = (grad * errors).sum(-1)
        edges[:, 0] = 0.0  # BOS: the same for every prompt, so its error is a constant, not a node
        self._rows[:, start : start + length] = edges
        table = self._writers(layer).prefix(length)
        valid = table.columns >= 0
        if bool(valid.any()):
            edges = table.edges(grad)[:, valid]
            self._rows[:, table.columns[valid]] += edges
