"""The Graph type: a node table and an adjacency matrix, nothing else.

Nodes are ordered by kind: features, then error nodes, then token embeddings,
then logit targets. `adjacency[t, s]` is the direct effect of source s on target
t (rows are targets). A full graph from attribution and a pruned one share this
type; a pruned graph simply has fewer nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

FEATURE, ERROR, TOKEN, LOGIT = 0, 1, 2, 3
KIND_NAMES = {FEATURE: "feature", ERROR: "error", TOKEN: "token", LOGIT: "logit"}


@dataclass
class Graph:
    prompt: str
    """The prompt as given (without any prepended BOS)."""
    input_ids: Tensor
    """[seq] token ids the model saw, BOS included when one was prepended."""
    input_tokens: list[str]
    """[seq] each token as text."""
    node_kind: Tensor
    """[n] FEATURE, ERROR, TOKEN or LOGIT, in that order."""
    node_layer: Tensor
    """[n] a feature's or error's layer; -1 for tokens; n_layers for logits."""
    node_position: Tensor
    """[n] the token position a node sits at (logits: the last position)."""
    node_feature: Tensor
    """[n] feature index; token id for tokens and logits (-1 for a custom direction);
    -1 for errors."""
    node_value: Tensor
    """[n] a feature's activation; a logit's probability (its weight); else 0."""
    adjacency: Tensor
    """[n, n] direct effects, adjacency[target, source]."""
    n_layers: int
    """Layers of the model."""
    logit_labels: list[str] = field(default_factory=list)
    """A label for each logit node, in order."""
    node_influence: Tensor | None = None
    """[n] each node's influence on the logits, once computed."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Model, transcoder, settings, scores and timings."""

    def __post_init__(self) -> None:
        n = len(self.node_kind)
        if tuple(self.adjacency.shape) != (n, n):
            raise ValueError(f"adjacency is {tuple(self.adjacency.shape)}, expected ({n}, {n})")
        if torch.any(self.node_kind[1:] < self.node_kind[:-1]):
            raise ValueError("nodes must be ordered features, errors, tokens, logits")
        if len(self.logit_labels) not in (0, self.n_logits):
            raise ValueError(f"{len(self.logit_labels)} logit labels for {self.n_logits} logits")

    # --- sizes and slices ---------------------------------------------------------------
    @property
    def n_nodes(self) -> int:
        return len(self.node_kind)

    def count(self, kind: int) -> int:
        return int((self.node_kind == kind).sum())

    @property
    def n_features(self) -> int:
        return self.count(FEATURE)

    @property
    def n_logits(self) -> int:
        return self.count(LOGIT)

    def indices(self, kind: int) -> Tensor:
        """[k] the node indices of one kind (a contiguous range)."""
        return torch.nonzero(self.node_kind == kind).flatten()

    def logit_weights(self) -> Tensor:
        """[n] logit probabilities on logit nodes, 0 elsewhere."""
        return torch.where(self.node_kind == LOGIT, self.node_value, 0.0).to(self.adjacency.dtype)

    @property
    def n_edges(self) -> int:
        return int(torch.count_nonzero(self.adjacency))

    def node_key(self, index: int) -> tuple[int, int, int, int]:
        """(kind, layer, position, feature): what a node is, the same in any graph of the prompt."""
        return (
            int(self.node_kind[index]),
            int(self.node_layer[index]),
            int(self.node_position[index]),
            int(self.node_feature[index]),
        )

    def node_index(self) -> dict[tuple[int, int, int, int], int]:
        """node_key -> index, to find a node of another graph of the prompt in this one."""
        return {self.node_key(i): i for i in range(self.n_nodes)}

    def node_label(self, index: int) -> str:
        """A short human-readable name of node `index`."""
        kind = int(self.node_kind[index])
        layer, pos = int(self.node_layer[index]), int(self.node_position[index])
        if kind == FEATURE:
            return f"L{layer}/F{int(self.node_feature[index])}@{pos}"
        if kind == ERROR:
            return f"err L{layer}@{pos}"
        if kind == TOKEN:
            return f"tok {self.input_tokens[pos]!r}@{pos}"
        logit_rank = index - int(self.indices(LOGIT)[0])
        return f"logit {self.logit_labels[logit_rank]!r}"

    def subgraph(self, keep: Tensor) -> Graph:
        """The graph restricted to nodes where `keep` [n] bool is True (order kept)."""
        index = torch.nonzero(keep).flatten()
        logit_rows = torch.nonzero(self.node_kind == LOGIT).flatten()
        kept_logits = [
            label
            for label, row in zip(self.logit_labels, logit_rows.tolist(), strict=True)
            if bool(keep[row])
        ]
        influence = None if self.node_influence is None else self.node_influence[index]
        return Graph(
            prompt=self.prompt,
            input_ids=self.input_ids,
            input_tokens=self.input_tokens,
            node_kind=self.node_kind[index],
            node_layer=self.node_layer[index],
            node_position=self.node_position[index],
            node_feature=self.node_feature[index],
            node_value=self.node_value[index],
            adjacency=self.adjacency[index][:, index],
            n_layers=self.n_layers,
            logit_labels=kept_logits,
            node_influence=influence,
            metadata=dict(self.metadata),
        )
