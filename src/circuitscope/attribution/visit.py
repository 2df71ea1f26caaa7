"""Which rows to compute, in which order: logits first, then features by influence.

1. Rows of the logit targets.
2. Feature targets in order of their influence on the logits, estimated from the
   rows computed so far (recomputed every `update_interval` batches), until
   `max_feature_nodes` features have rows (all of them without a budget).
The same visiting scheme as circuit-tracer, so graphs agree where inputs agree.

Memory. Rows span every active feature as a column, and long prompts have
hundreds of thousands of them: 4096 rows of a 1024-token prompt would take
about 25 GB. When the rows would not fit in `row_buffer_mb`, the first rows are
computed over every column (as many as a quarter of it holds); then only the
features ranked highest by the influence estimated so far keep a column (as
many as the other three quarters hold), and the others are only summed per row, so every
row's normalisation stays exact and the scores of the kept features are the
ones the full computation would give. An uncounted feature cannot score more
than a bound computed at each update from its |edges| into the rows computed over
every column (kept whole, in their quarter) and its largest |edge| in every block
of a few passes' rows since (`OutsideBlocks`, charged to the other three quarters);
while the bound stays below the lowest score picked, the visited features are
exactly those of the full computation (`Selection.exact`). Where a feature's bound
reaches that score, the feature gets its column after all, exact over the rows so far
(`source_columns`, in room kept spare). Restricting keeps the schedule of picks: when
the exploring rows run out within a pick, its remaining features keep their columns
and are computed after, with no new estimate in between.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from circuitscope.allocator import release_pass_memory
from circuitscope.attribution.columns import ColumnLayout, all_columns
from circuitscope.attribution.influence_estimate import influence_scores
from circuitscope.attribution.limits import AttributionLimits
from circuitscope.attribution.replacement import LocalReplacement
from circuitscope.attribution.row_buffer import RowBuffer
from circuitscope.attribution.rows import BackwardWork, Injection, RowComputer
from circuitscope.attribution.source_columns import source_columns
from circuitscope.attribution.targets import LogitTarget
from circuitscope.errors import CircuitscopeError
from circuitscope.models import sites

MB = 2**20


@dataclass(frozen=True)
class RowPlan:
    budget: int
    """Feature rows to compute."""
    kept_columns: int | None
    """Features that keep a column after exploring; None: all of them, throughout."""
    exploration_rows: int
    """Feature rows computed over every column before the columns are restricted."""
    block_rows: int = 0
    """Rows per block of the outside maxima (`OutsideBlocks`) once restricted."""
    spare_columns: int = 0
    """Room for columns given later to features whose bound says they might matter."""


@dataclass
class Selection:
    """How the features were chosen, for the graph's metadata."""

    n_active: int
    kept_columns: int | None
    exploration_rows: int
    bound_ratios: list[float] = field(default_factory=list)
    """Per update after restricting: the outside bound over the lowest score picked."""
    promoted: int = 0
    """Features given a column after restricting (`source_columns`), as their bound said
    they might matter."""

    @property
    def exact(self) -> bool:
        """True when the visited features are those of the unrestricted computation."""
        return all(ratio < 1.0 for ratio in self.bound_ratios)

    def summary(self) -> dict:
        return {
            "n_active": self.n_active,
            "kept_columns": self.kept_columns,
            "exploration_rows": self.exploration_rows,
            "exact": self.exact,
            "worst_bound_ratio": max(self.bound_ratios, default=0.0),
            "promoted_columns": self.promoted,
        }


@dataclass
class Visit:
    buffer: RowBuffer
    layout: ColumnLayout
    selection: Selection
    work: BackwardWork = field(default_factory=BackwardWork)
    """What the backward passes computed (see `BackwardWork`)."""


BLOCK_BATCHES = 4
"""Backward passes per block of outside maxima."""

PROMOTION_BATCH = 32
"""Features per forward pass when columns are given after restricting."""

SPARE_SHARE = 8
"""Of the columns the restricted rows can hold, one in this many is kept free for
features given a column later (`source_columns`)."""


def plan_rows(
    n_active: int, n_other: int, n_logits: int, limits: AttributionLimits, itemsize: int
) -> RowPlan:
    """How many rows, and whether columns must be restricted to fit `row_buffer_mb`.

    n_other: the error and token columns."""
    budget = n_active if limits.max_feature_nodes is None else limits.max_feature_nodes
    budget = min(budget, n_active)
    limit = limits.row_buffer_mb * MB
    row_bytes = (n_active + n_other + n_logits) * itemsize
    needed = (n_logits + budget) * row_bytes
    if needed <= limit:
        return RowPlan(budget, None, 0)
    if budget == n_active:
        _check_available(needed, n_active)
        return RowPlan(budget, None, 0)
    # While the columns are restricted both buffers exist: a quarter of the limit for the
    # rows over every column, three quarters for the restricted ones and the outside maxima.
    block_rows = BLOCK_BATCHES * limits.batch_size
    blocks_bytes = _most_blocks(budget, block_rows, limits.batch_size) * n_active * itemsize
    restricted = 0.75 * limit - blocks_bytes
    kept = int(restricted // ((n_logits + budget) * itemsize)) - n_other - n_logits
    if kept < budget:
        rows_bytes = (n_logits + budget) * (budget + n_other + n_logits) * itemsize
        least = (rows_bytes + blocks_bytes) / MB / 0.75
        raise CircuitscopeError(
            f"row_buffer_mb={limits.row_buffer_mb:g} cannot hold {budget} feature rows of this "
            f"prompt; raise it to at least {least:.0f} or lower max_feature_nodes"
        )
    explore = int((limit - 0.75 * limit) // row_bytes) - n_logits
    explore = min(max(explore // limits.batch_size * limits.batch_size, 0), budget)
    kept = min(kept, n_active)
    spare = min(kept // SPARE_SHARE, kept - budget)
    return RowPlan(budget, kept - spare, explore, block_rows, spare)


def _most_blocks(budget: int, block_rows: int, batch_size: int) -> int:
    """Blocks of outside maxima for `budget` feature rows after restricting (the rows
    before it are kept whole): a block closes when a pass (at most batch_size rows) would
    take it past block_rows, so each closed one has more than block_rows - batch_size
    rows; then the last, open one."""
    return 1 + -(-budget // (block_rows - batch_size + 1))


def _check_available(needed: float, n_active: int) -> None:
    available = _available_memory()
    if available is not None and needed > 0.9 * available:
        raise CircuitscopeError(
            f"rows for all {n_active} active features need {needed / 2**30:.1f} GB, more than "
            f"the {available / 2**30:.1f} GB available; set max_feature_nodes (e.g. 4096)"
        )


def _available_memory() -> float | None:
    """MemAvailable from /proc/meminfo in bytes (None where there is none)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def visit_rows(
    rep: LocalReplacement,
    targets: list[LogitTarget],
    limits: AttributionLimits,
    progress: bool = True,
) -> Visit:
    """Compute the logit rows, then the feature rows in order of influence."""
    layout = all_columns(len(rep.features), rep.n_layers, rep.seq_len)
    n_logits = len(targets)
    itemsize = torch.empty((), dtype=rep.dtype).element_size()
    n_other = layout.n_columns - layout.n_features
    plan = plan_rows(layout.n_features, n_other, n_logits, limits, itemsize)
    selection = Selection(layout.n_features, plan.kept_columns, plan.exploration_rows)
    computer = RowComputer(rep, layout, limits.batch_size, limits.writer_cache_mb * MB)
    rows = plan.budget if plan.kept_columns is None else plan.exploration_rows
    buffer = RowBuffer.empty(n_logits + rows, layout.n_columns, n_logits, rep.dtype)
    logit_injections = [Injection(sites.FINAL_NORM, rep.seq_len - 1, t.vector) for t in targets]
    for start, chunk in _chunks(logit_injections, limits.batch_size):
        nodes = torch.arange(start, start + len(chunk)) + layout.n_columns
        buffer.add(computer.rows(chunk), nodes)
    probabilities = torch.tensor([t.probability for t in targets], dtype=rep.dtype)
    visited = torch.zeros(layout.n_features, dtype=torch.bool)
    bar = tqdm(total=plan.budget, desc="feature rows", unit="row", disable=not progress)
    while int(visited.sum()) < plan.budget:
        if buffer.full and buffer.capacity < n_logits + plan.budget:  # explored before a pick
            weights = _weights(buffer, probabilities)
            buffer, layout, visited, _ = _restrict(buffer, layout, visited, weights, plan)
            computer.set_layout(layout)
        weights = _weights(buffer, probabilities)
        restricted = layout.n_features < selection.n_active
        pending = _next_features(buffer, weights, visited, plan.budget, limits, restricted)
        if restricted and pending.bound_ratio >= 1.0 and buffer.spare_columns:
            before = layout.n_features
            layout, visited = _promote(
                rep, buffer, layout, visited, pending, logit_injections, progress
            )
            selection.promoted += layout.n_features - before
            computer.set_layout(layout)
            weights = _weights(buffer, probabilities)
            pending = _next_features(buffer, weights, visited, plan.budget, limits, restricted)
            bar.set_postfix(promoted=selection.promoted)
        if restricted:
            selection.bound_ratios.append(pending.bound_ratio)
        ordered = _batch_order(rep, layout, pending.features)
        for start in range(0, len(ordered), limits.batch_size):
            if buffer.full and buffer.capacity < n_logits + plan.budget:  # exploring ends
                # within a pick: its other features keep their place (the same picks, at
                # the same points, as without restricting)
                weights = _weights(buffer, probabilities)
                buffer, layout, visited, ordered = _restrict(
                    buffer, layout, visited, weights, plan, ordered
                )
                computer.set_layout(layout)
            chunk = ordered[start : start + limits.batch_size].tolist()
            injections = [_feature_injection(rep, layout, column) for column in chunk]
            buffer.add(computer.rows(injections), torch.tensor(chunk))
            visited[chunk] = True
            bar.update(len(chunk))
    bar.close()
    release_pass_memory()  # assembly needs memory of its own
    return Visit(buffer, layout, selection, computer.work)


def _weights(buffer: RowBuffer, probabilities: Tensor) -> Tensor:
    """[n_columns + n_logits] the logit probabilities on the logit nodes."""
    weights = torch.zeros(buffer.n_columns + len(probabilities), dtype=probabilities.dtype)
    weights[buffer.n_columns :] = probabilities
    return weights


def _restrict(
    buffer: RowBuffer,
    layout: ColumnLayout,
    visited: Tensor,
    weights: Tensor,
    plan: RowPlan,
    picked: Tensor | None = None,
) -> tuple[RowBuffer, ColumnLayout, Tensor, Tensor]:
    """Keep columns for the visited features, the `picked` ones [k] (columns of the pick
    under way) and the unvisited ones scoring highest. Returns the buffer, the layout,
    `visited` and `picked` in the new columns."""
    release_pass_memory()
    assert plan.kept_columns is not None
    values, nodes, totals, outside_max = buffer.filled()
    scores = influence_scores(values, nodes, weights, totals, outside_max, buffer.blocks).scores
    scores = scores[: layout.n_features].clone()
    scores[visited] = torch.inf
    picked = torch.zeros(0, dtype=torch.long) if picked is None else picked
    scores[picked] = torch.inf
    ranked = torch.argsort(scores, descending=True, stable=True)
    kept = torch.sort(ranked[: plan.kept_columns]).values
    n_logits = len(weights) - buffer.n_columns
    capacity = n_logits + plan.budget
    restricted = buffer.restricted(
        kept, layout.n_features, n_logits, capacity, plan.block_rows, plan.spare_columns
    )
    new_layout = ColumnLayout(layout.candidates[kept], layout.n_layers, layout.seq_len)
    return restricted, new_layout, visited[kept], torch.searchsorted(kept, picked)


@dataclass(frozen=True)
class _Pending:
    features: Tensor
    """[k] candidate columns to compute next."""
    bound_ratio: float
    """No feature without a column scores more than this times the lowest one picked."""
    lowest: float = 0.0
    """The lowest score picked."""
    coefficients: Tensor | None = None
    """[r] the rows' weights in the scores (`InfluenceEstimate.coefficients`)."""


def _next_features(
    buffer: RowBuffer,
    weights: Tensor,
    visited: Tensor,
    budget: int,
    limits: AttributionLimits,
    restricted: bool,
) -> _Pending:
    """The unvisited candidates to compute next, most influential first."""
    wanted = min(limits.update_interval * limits.batch_size, budget - int(visited.sum()))
    n_candidates = len(visited)
    if budget == n_candidates and not restricted:
        return _Pending(torch.nonzero(~visited).flatten()[:wanted], 0.0)
    values, nodes, totals, outside_max = buffer.filled()
    result = influence_scores(values, nodes, weights, totals, outside_max, buffer.blocks)
    scores = result.scores[:n_candidates]
    ranked = torch.argsort(scores, descending=True, stable=True)
    chosen = ranked[~visited[ranked]][:wanted]
    lowest = float(scores[chosen].min()) if len(chosen) else 0.0
    if result.outside_bound == 0.0:
        return _Pending(chosen, 0.0, lowest, result.coefficients)
    ratio = result.outside_bound / lowest if lowest > 0 else float("inf")
    return _Pending(chosen, ratio, lowest, result.coefficients)


def _promote(
    rep: LocalReplacement,
    buffer: RowBuffer,
    layout: ColumnLayout,
    visited: Tensor,
    pending: _Pending,
    logit_injections: list[Injection],
    progress: bool,
) -> tuple[ColumnLayout, Tensor]:
    """Give a column to each feature without one whose bound reaches the lowest score
    picked (the highest bounds first, as many as the buffer has room for), its edges
    into every row so far computed exactly by forward passes (`source_columns`).
    Returns the layout and `visited` with the new candidates appended."""
    release_pass_memory()  # the column passes need memory of their own
    blocks = buffer.blocks
    assert blocks is not None and pending.coefficients is not None
    bounds = blocks.feature_bounds(pending.coefficients)
    reaching = torch.nonzero(bounds >= pending.lowest).flatten()
    order = torch.argsort(bounds[reaching], descending=True, stable=True)
    reaching = reaching[order][: buffer.spare_columns]
    outside = torch.ones(len(rep.features), dtype=torch.bool)
    outside[layout.candidates] = False
    features = torch.nonzero(outside).flatten()[reaching]  # blocks keep this order
    rows = [
        logit_injections[node - buffer.n_columns]
        if node >= buffer.n_columns
        else _feature_injection(rep, layout, node)
        for node in buffer.nodes[: buffer.n].tolist()
    ]
    columns = source_columns(rep, features, rows, PROMOTION_BATCH, progress)
    buffer.insert_columns(layout.n_features, columns)
    blocks.drop(reaching)
    candidates = torch.cat([layout.candidates, features])
    new_layout = ColumnLayout(candidates, layout.n_layers, layout.seq_len)
    return new_layout, torch.cat([visited, torch.zeros(len(features), dtype=torch.bool)])


def _batch_order(rep: LocalReplacement, layout: ColumnLayout, pending: Tensor) -> Tensor:
    """pending [k] candidate columns, reordered: by layer, highest first, positions
    ascending within a layer, so each pass (batch_size consecutive targets) runs through
    the layers below its own highest target's only, and through the prompt prefix its
    targets need. Cut into consecutive passes, this order makes the sum over passes of
    their highest layer the least that any split of the k into passes of at most
    batch_size has (the i-th highest pass maximum is at least the ((i-1)*batch_size+1)-th
    highest layer). A row is the same whichever pass computes it: the order changes
    nothing in the graph beyond rounding (test_backward_work.py checks it)."""
    features = layout.candidates[pending]
    pending = pending[torch.argsort(rep.features.position[features], stable=True)]
    layers = rep.features.layer[layout.candidates[pending]]
    return pending[torch.argsort(layers, descending=True, stable=True)]


def _feature_injection(rep: LocalReplacement, layout: ColumnLayout, column: int) -> Injection:
    feature = int(layout.candidates[column])
    layer = int(rep.features.layer[feature])
    encoder = rep.transcoder.encoder(layer).W_enc[:, int(rep.features.index[feature])]
    position = int(rep.features.position[feature])
    return Injection(rep.input_site(layer), position, encoder.detach())


def _chunks(items: list, size: int) -> Iterator[tuple[int, list]]:
    for start in range(0, len(items), size):
        yield start, items[start : start + size]
