"""The attribution graph of a prompt: logit rows, then feature rows by influence.

1. Rows of the logit targets.
2. Feature targets in order of their influence on the logits, estimated from the
   rows computed so far (recomputed every `update_interval` batches), until
   `max_feature_nodes` features have rows (all of them without a budget).
3. The graph: the visited features, every error node, every token, the logits;
   edges among them.
The same visiting scheme as circuit-tracer, so graphs agree where inputs agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from circuitscope.attribution.columns import ColumnLayout, all_columns
from circuitscope.attribution.replacement import LocalReplacement
from circuitscope.attribution.rows import Injection, RowComputer
from circuitscope.attribution.targets import LogitTarget
from circuitscope.graph.graph import ERROR, FEATURE, LOGIT, TOKEN, Graph
from circuitscope.graph.influence import partial_influence
from circuitscope.models import sites


@dataclass(frozen=True)
class AttributionLimits:
    max_feature_nodes: int | None = None
    """Feature rows to compute (the most influential first); None: every active feature."""
    batch_size: int = 32
    """Targets per backward pass."""
    update_interval: int = 4
    """Batches between re-estimates of feature influence."""


@dataclass
class AttributionRun:
    graph: Graph
    rows_computed: int
    n_active: int


def attribute(
    replacement: LocalReplacement,
    targets: list[LogitTarget],
    limits: AttributionLimits,
    progress: bool = True,
) -> AttributionRun:
    """Compute the graph's edges for `targets` (at least one)."""
    if not targets:
        raise ValueError("attribution needs at least one logit target")
    layout = all_columns(len(replacement.features), replacement.n_layers, replacement.seq_len)
    with _no_parameter_grads(replacement.adapter.model, replacement.transcoder):
        computer = RowComputer(replacement, layout, limits.batch_size)
        buffer, row_nodes, n_rows = _visit(replacement, layout, computer, targets, limits, progress)
    graph = _assemble(replacement, layout, targets, buffer, row_nodes, n_rows)
    return AttributionRun(graph, rows_computed=n_rows, n_active=len(replacement.features))


def _visit(
    rep: LocalReplacement,
    layout: ColumnLayout,
    computer: RowComputer,
    targets: list[LogitTarget],
    limits: AttributionLimits,
    progress: bool,
) -> tuple[Tensor, Tensor, int]:
    n_logits, n_candidates = len(targets), layout.n_features
    budget = n_candidates if limits.max_feature_nodes is None else limits.max_feature_nodes
    budget = min(budget, n_candidates)
    n_nodes = layout.n_columns + n_logits
    buffer = torch.zeros(n_logits + budget, n_nodes, dtype=rep.dtype)
    row_nodes = torch.zeros(n_logits + budget, dtype=torch.long)
    last = rep.seq_len - 1
    logit_injections = [Injection(sites.FINAL_NORM, last, t.vector) for t in targets]
    n_rows = 0
    for chunk in _chunks(logit_injections, limits.batch_size):
        rows = computer.rows(chunk)
        buffer[n_rows : n_rows + len(chunk), : layout.n_columns] = rows
        n_rows += len(chunk)
    row_nodes[:n_logits] = torch.arange(layout.n_columns, n_nodes)
    weights = torch.zeros(n_nodes, dtype=rep.dtype)
    weights[layout.n_columns :] = torch.tensor([t.probability for t in targets], dtype=rep.dtype)
    visited = torch.zeros(n_candidates, dtype=torch.bool)
    bar = tqdm(total=budget, desc="feature rows", unit="row", disable=not progress)
    while int(visited.sum()) < budget:
        pending = _next_features(buffer, row_nodes, n_rows, weights, visited, budget, limits)
        pending = _batch_order(rep, layout, pending)
        for chunk in _chunks(pending.tolist(), limits.batch_size):
            injections = [_feature_injection(rep, layout, column) for column in chunk]
            buffer[n_rows : n_rows + len(chunk), : layout.n_columns] = computer.rows(injections)
            row_nodes[n_rows : n_rows + len(chunk)] = torch.tensor(chunk)
            visited[chunk] = True
            n_rows += len(chunk)
            bar.update(len(chunk))
    bar.close()
    return buffer, row_nodes, n_rows


def _batch_order(rep: LocalReplacement, layout: ColumnLayout, pending: Tensor) -> Tensor:
    """Group targets by layer, positions ascending within it: a backward from layer l runs
    through layers below l only, and through the prompt prefix its targets need."""
    features = layout.candidates[pending]
    pending = pending[torch.argsort(rep.features.position[features], stable=True)]
    layers = rep.features.layer[layout.candidates[pending]]
    return pending[torch.argsort(layers, descending=True, stable=True)]


def _next_features(
    buffer: Tensor,
    row_nodes: Tensor,
    n_rows: int,
    weights: Tensor,
    visited: Tensor,
    budget: int,
    limits: AttributionLimits,
) -> Tensor:
    """The unvisited candidates to compute next, most influential first."""
    wanted = min(limits.update_interval * limits.batch_size, budget - int(visited.sum()))
    n_candidates = len(visited)
    if budget == n_candidates:
        return torch.nonzero(~visited).flatten()[:wanted]
    scores = partial_influence(buffer[:n_rows], row_nodes[:n_rows], weights)[:n_candidates]
    ranked = torch.argsort(scores, descending=True, stable=True)
    return ranked[~visited[ranked]][:wanted]


def _feature_injection(rep: LocalReplacement, layout: ColumnLayout, column: int) -> Injection:
    feature = int(layout.candidates[column])
    layer = int(rep.features.layer[feature])
    encoder = rep.transcoder.encoder(layer).W_enc[:, int(rep.features.index[feature])]
    return Injection(sites.mlp_in(layer), int(rep.features.position[feature]), encoder.detach())


def _assemble(
    rep: LocalReplacement,
    layout: ColumnLayout,
    targets: list[LogitTarget],
    buffer: Tensor,
    row_nodes: Tensor,
    n_rows: int,
) -> Graph:
    n_logits = len(targets)
    feature_rows = torch.arange(n_logits, n_rows)
    order = torch.argsort(row_nodes[feature_rows])
    feature_rows = feature_rows[order]
    selected = row_nodes[feature_rows]
    columns = torch.cat([selected, torch.arange(layout.n_features, layout.n_columns)])
    n_sel, n_src = len(selected), len(columns)
    n = n_src + n_logits
    adjacency = torch.zeros(n, n, dtype=buffer.dtype)
    kept = buffer[:n_rows].index_select(1, columns)  # the graph's columns only: no full copy
    adjacency[:n_sel, :n_src] = kept[feature_rows]
    adjacency[n_src:, :n_src] = kept[:n_logits]
    features = layout.candidates[selected]
    return _graph_tables(rep, targets, features, adjacency)


def _graph_tables(
    rep: LocalReplacement, targets: list[LogitTarget], features: Tensor, adjacency: Tensor
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
                active.activation[features].to(adjacency.dtype),
                torch.zeros(n_layers * seq + seq, dtype=adjacency.dtype),
                torch.tensor([t.probability for t in targets], dtype=adjacency.dtype),
            ]
        ),
        adjacency=adjacency,
        n_layers=n_layers,
        logit_labels=[t.label for t in targets],
    )


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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
