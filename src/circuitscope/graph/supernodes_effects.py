"""What a graph predicts for a group of features scaled together (a supernode's claim).

Scaling the members of a group by `factor` on the graph's linear model (see `effects`):
each member's activation becomes factor · (its activation + the change of its input),
every other feature moves one-for-one with its input. With B the per-unit edge block,
D = diag(factor on members, 1 elsewhere) and e = (factor − 1) · a on members:

    x = (I − D B_ff)⁻¹ e,        the logits move by   B_lf x.

Ablation (factor 0) clamps the members at zero, so a path through two members counts
once; the group's effect is not the sum of its members' single effects.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from circuitscope.graph.effects import unit_effects
from circuitscope.graph.graph import FEATURE, Graph


def group_effects_on_logits(graph: Graph, groups: Sequence[Tensor], factor: float = 0.0) -> Tensor:
    """[n_logits, len(groups)] each logit's change when the feature nodes of groups[g] (node
    indices [k_g]) are scaled together by `factor` (0: ablated). Raises ValueError for a
    member that is not a feature."""
    n_features = graph.n_features
    unit = unit_effects(graph, torch.arange(n_features))
    b_ff, b_lf = unit[:n_features], unit[n_features:]
    activation = graph.node_value[:n_features].to(unit.dtype)
    lower = not bool(torch.triu(b_ff).any())
    system = torch.eye(n_features, dtype=unit.dtype) - b_ff  # I − D B_ff, D = 1 to start
    columns = []
    for members in groups:
        if bool((graph.node_kind[members] != FEATURE).any()):
            raise ValueError("a group's members must be feature nodes")
        system[members] = -factor * b_ff[members]  # the members' rows of I − D B_ff ...
        system[members, members] += 1.0
        injected = torch.zeros(n_features, 1, dtype=unit.dtype)
        injected[members, 0] = (factor - 1.0) * activation[members]
        if lower:
            moved = torch.linalg.solve_triangular(system, injected, upper=False)
        else:
            moved = torch.linalg.solve(system, injected)
        columns.append(b_lf @ moved)
        system[members] = -b_ff[members]  # ... and back
        system[members, members] += 1.0
    if not columns:
        return torch.zeros(graph.n_logits, 0, dtype=unit.dtype)
    return torch.cat(columns, dim=1)
