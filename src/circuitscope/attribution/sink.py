"""Position 0, the attention sink (the BOS token), has no nodes: the one place of the rule.

Attention is causal, so the residual stream at position 0 is the same for every prompt
that starts with the same token: its MLP outputs are constants of the model, not part of
any prompt's computation. So position 0 carries no features and no error node, in graphs
and in interventions alike (as in circuit-tracer); its MLP outputs are kept whole.
"""

from __future__ import annotations

from torch import Tensor

from circuitscope.errors import CircuitscopeError

SINK = 0
"""The attention sink's position."""
NODE_POSITIONS = slice(SINK + 1, None)
"""Every position that can hold a node."""


def clear_sink(activations: Tensor) -> Tensor:
    """Zero the sink's feature activations in place. activations: [..., seq, n_features]."""
    activations[..., SINK, :] = 0.0
    return activations


def check_node_position(position: int, where: str) -> None:
    """Refuse an intervention or a node at the sink, with the reason."""
    if position == SINK:
        raise CircuitscopeError(
            f"{where}: position 0 is the BOS attention sink; it has no features or error "
            "nodes (its MLP outputs are the same for every prompt)"
        )
