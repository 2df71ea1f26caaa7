"""Rows of the adjacency matrix by batched backward passes through the frozen model.

One forward pass of the local replacement model, with attention and norm scales
frozen and every MLP output held at its constant (features + error), batch B,
builds a graph that is linear from the token embeddings and MLP outputs to every
MLP input and to the final norm's output. Each later backward injects one
target's input vector per batch row (a feature's encoder vector at its MLP
input, or a demeaned unembedding vector at the final norm) and hooks on the
embeddings and MLP outputs turn the arriving gradients into edge weights: the
gradient dotted with each source's output vector.
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


class RowComputer:
    """Computes rows for up to `batch_size` targets per backward pass."""

    def __init__(
        self,
        replacement: LocalReplacement,
        layout: ColumnLayout,
        batch_size: int,
        cache_writers: bool = True,
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
        self._build_graph()

    def _writers(self, layer: int) -> WriterTable:
        if layer in self._cached:
            return self._cached[layer]
        rep = self.replacement
        return writer_table(
            rep.transcoder, rep.features, self.layout.candidates, layer, rep.seq_len, self.dtype
        )

    def _build_graph(self) -> None:
        rep, batch = self.replacement, self.batch_size
        model_dtype = rep.adapter.dtype
        embed_leaf = rep.recording.cache[sites.EMBED].detach().clone().requires_grad_(True)
        embed = embed_leaf.expand(batch, -1, -1)
        embed.register_hook(self._token_hook)
        mlp_out: dict[int, Replacement] = {}
        leaves = [embed_leaf]
        for layer, constant in rep.constant_outputs(with_errors=True).items():
            leaf = constant.to(model_dtype).detach().clone().requires_grad_(True)
            leaves.append(leaf)
            view = leaf.expand(batch, -1, -1)
            view.register_hook(partial(self._mlp_hook, layer))
            mlp_out[layer] = rep.with_skip(layer, view)
        targets = [sites.mlp_in(layer) for layer in range(rep.n_layers)] + [sites.FINAL_NORM]
        with torch.enable_grad():
            result = rep.adapter.run(
                rep.input_ids.expand(batch, -1),
                frozen=rep.recording.frozen,
                mlp_out=mlp_out,
                embed=embed,
                capture=targets,
                keep_graph=True,
                unembed=False,
            )
        self._outputs = result.cache
        # Every leaf is an input of each backward, so that autograd runs the branches
        # whose hooks read the gradients (the leaves are [1, seq, d]: grads stay small).
        self._leaves = leaves

    def rows(self, injections: list[Injection]) -> Tensor:
        """[k, n_columns] rows for k <= batch_size targets."""
        if not 0 < len(injections) <= self.batch_size:
            raise ValueError(f"between 1 and {self.batch_size} targets per pass")
        rep = self.replacement
        shape = (self.batch_size, rep.seq_len, rep.adapter.d_model)
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
        outputs = [self._outputs[site] for site in grads]
        torch.autograd.grad(
            outputs, self._leaves, list(grads.values()), retain_graph=True, allow_unused=True
        )
        return self._rows[: len(injections)].cpu()

    def _token_hook(self, grad: Tensor) -> None:
        edges = (grad.to(self.dtype) * self._tokens).sum(-1)
        self._rows[:, self.layout.token_columns] = edges

    def _mlp_hook(self, layer: int, grad: Tensor) -> None:
        grad = grad.to(self.dtype)
        errors = self.replacement.errors[layer]
        self._rows[:, self.layout.error_columns(layer)] = (grad * errors).sum(-1)
        table = self._writers(layer)
        valid = table.columns >= 0
        if bool(valid.any()):
            edges = table.edges(grad)[:, valid]
            self._rows[:, table.columns[valid]] += edges
