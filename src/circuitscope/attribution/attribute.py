"""The attribution graph of a prompt.

The rows (see visit.py: logits, then features by influence) become the graph:
the visited features, every error node, every token, the logits; edges among them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from circuitscope.attribution.columns import ColumnLayout
from circuitscope.attribution.limits import AttributionLimits
from circuitscope.attribution.replacement import LocalReplacement
from circuitscope.attribution.rows import BackwardWork
from circuitscope.attribution.targets import LogitTarget
from circuitscope.attribution.visit import visit_rows
from circuitscope.graph.graph import ERROR, FEATURE, LOGIT, TOKEN, Graph

__all__ = ["AttributionLimits", "AttributionRun", "attribute"]


@dataclass
class AttributionRun:
    graph: Graph
    rows_computed: int
    n_active: int
    selection: dict = field(default_factory=dict)
    """How features were chosen (see visit.Selection.summary)."""
    work: BackwardWork = field(default_factory=BackwardWork)
    """What the backward passes computed, counted (see rows.BackwardWork)."""


def attribute(
    replacement: LocalReplacement,
    targets: list[LogitTarget],
    limits: AttributionLimits,
    progress: bool = True,
) -> AttributionRun:
    """Compute the graph's edges for `targets` (at least one)."""
    if not targets:
        raise ValueError("attribution needs at least one logit target")
    with _no_parameter_grads(replacement.adapter.model, replacement.transcoder):
        visit = visit_rows(replacement, targets, limits, progress)
    buffer = visit.buffer
    graph = _assemble(replacement, visit.layout, targets, buffer.values, buffer.nodes, buffer.n)
    return AttributionRun(
        graph,
        rows_computed=buffer.n,
        n_active=len(replacement.features),
        selection=visit.selection.summary(),
        work=visit.work,
    )


def _assemble(
    rep: LocalReplacement,
    layout: ColumnLayout,
    targets: list[LogitTarget],
    buffer: Tensor,
    row_nodes: Tensor,
    n_rows: int,
) -> Graph:
    """The graph of the first `n_rows` rows of `buffer` [capacity, n_columns + n_logits]
    (logit rows first, row_nodes [capacity] their nodes). Its `edges` are built straight
    as the block [n_selected + n_logits, n_selected + n_errors + n_tokens]: the feature
    rows sorted by feature, then the logit rows, over the columns of the selected features,
    then every error and token column."""
    n_logits = len(targets)
    # by feature (columns given after restricting come after the others: visit._promote)
    feature_rows = n_logits + torch.argsort(layout.candidates[row_nodes[n_logits:n_rows]])
    selected = row_nodes[feature_rows]
    columns = torch.cat([selected, torch.arange(layout.n_features, layout.n_columns)])
    rows = torch.cat([feature_rows, torch.arange(n_logits)])
    edges = torch.empty(len(rows), len(columns), dtype=buffer.dtype)
    for start in range(0, len(rows), 256):  # in chunks: no second copy of the whole buffer
        chunk = rows[start : start + 256]
        edges[start : start + len(chunk)] = buffer.index_select(0, chunk).index_select(1, columns)
    features = layout.candidates[selected]
    return _graph_tables(rep, targets, features, edges)


def _graph_tables(
    rep: LocalReplacement, targets: list[LogitTarget], features: Tensor, edges: Tensor
) -> Graph:
    seq, n_layers, n_logits = rep.seq_len, rep.n_layers, len(targets)
    active = rep.features
    error_layers = torch.arange(n_layers).repeat_interleave(seq)
    error_positions = torch.arange(seq).repeat(n_layers)
    ids = rep.input_ids[0].cpu()
    kinds = [FEATURE] * len(features) + [ERROR] * (n_layers * seq) + [TOKEN] * seq
    kinds += [LOGIT] * n_logits
    logit_ids = torch.tensor([t.token_id for t in targets])
    return Graph(
        prompt="",
        input_ids=ids,
        input_tokens=[],
        node_kind=torch.tensor(kinds, dtype=torch.long),
        node_layer=torch.cat(
            [
                active.layer[features],
                error_layers,
                torch.full((seq,), -1),
                torch.full((n_logits,), n_layers),
            ]
        ),
        node_position=torch.cat(
            [
                active.position[features],
                error_positions,
                torch.arange(seq),
                torch.full((n_logits,), seq - 1),
            ]
        ),
        node_feature=torch.cat(
            [active.index[features], torch.full((n_layers * seq,), -1), ids, logit_ids]
        ),
        node_value=torch.cat(
            [
                active.activation[features].to(edges.dtype),
                torch.zeros(n_layers * seq + seq, dtype=edges.dtype),
                torch.tensor([t.probability for t in targets], dtype=edges.dtype),
            ]
        ),
        edges=edges,
        n_layers=n_layers,
        logit_labels=[t.label for t in targets],
        logit_vectors=torch.stack([t.vector.detach().cpu() for t in targets]).to(edges.dtype),
    )


@contextmanager
def _no_parameter_grads(*modules: nn.Module) -> Iterator[None]:
    """Turn off gradients of all parameters: the backward passes need input gradients only."""
    params = [p for module in modules for p in module.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)
