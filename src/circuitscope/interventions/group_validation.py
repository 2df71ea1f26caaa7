"""Check a group of nodes (a supernode) on the original model, as `validation` checks one.

The graph predicts how ablating every member of a group at once moves the target logits
(`graph.supernodes_effects`: members clamped at zero, every path of the full graph); we
ablate the group on the original model (iterative patching, attention frozen by default,
norms live: `validation.measure_logit_changes`) and compare. Both are combined over the
logit targets by their weights. A group passes when the measured change has the
predicted sign and lies within `tolerance` · |predicted| of it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from circuitscope.graph.graph import Graph
from circuitscope.graph.supernodes_effects import group_effects_on_logits
from circuitscope.interventions.patching import PatchSettings, clean_run
from circuitscope.interventions.validation import (
    ValidationContext,
    agreement,
    measure_logit_changes,
    node_intervention,
)


@dataclass(frozen=True)
class GroupCheckSettings:
    freeze_attention: bool = True
    """Measure with attention frozen, as the graph assumes (norms run live)."""
    batch_size: int = 16
    """Groups per forward pass."""
    tolerance: float = 0.5
    """A group passes when |measured − predicted| ≤ tolerance · |predicted|, signs equal."""


def full_graph_members(full: Graph, pruned: Graph, members: Sequence[int]) -> Tensor:
    """[k] the full graph's indices of pruned-graph nodes `members`."""
    lookup = full.node_index()
    return torch.tensor([lookup[pruned.node_key(m)] for m in members], dtype=torch.long)


def check_groups(
    context: ValidationContext,
    groups: Sequence[Tensor],
    settings: GroupCheckSettings,
    progress: bool = False,
) -> dict[str, Any]:
    """{"groups": one row per group (predicted, measured, per target, passed), "agreement":
    Spearman/Pearson/signs over groups (None where undefined)}. groups: full-graph feature
    node indices [k_g] each."""
    predicted = group_effects_on_logits(context.full, groups).T.double()  # [n_groups, n_logits]
    sets = [[node_intervention(context.full, int(n), 0.0) for n in g] for g in groups]
    patch = PatchSettings(freeze_attention=settings.freeze_attention, keep_activations=False)
    clean = clean_run(context.adapter, context.transcoder, context.input_ids)
    measured = measure_logit_changes(context, sets, patch, clean, settings.batch_size, progress)
    combined_p, combined_m = predicted @ context.weights, measured @ context.weights
    rows = [
        {
            "predicted": p,
            "measured": m,
            "predicted_per_target": predicted[g].tolist(),
            "measured_per_target": measured[g].tolist(),
            "passed": passes(p, m, settings.tolerance),
        }
        for g, (p, m) in enumerate(zip(combined_p.tolist(), combined_m.tolist(), strict=True))
    ]
    summary = agreement(combined_p, combined_m) if rows else {"n": 0}
    summary = {
        k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in summary.items()
    }
    summary["passed"] = sum(row["passed"] for row in rows)
    return {
        "groups": rows,
        "agreement": summary,
        "settings": settings.__dict__ | {"patching": "iterative"},
    }


def passes(predicted: float, measured: float, tolerance: float) -> bool:
    """The measured change has the predicted sign and is within tolerance · |predicted|."""
    same_sign = (predicted > 0) == (measured > 0) and predicted != 0
    return same_sign and abs(measured - predicted) <= tolerance * abs(predicted)
