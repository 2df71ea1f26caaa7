"""The Graph type: a node table and its edges, nothing else.

Nodes are ordered by kind: features, then error nodes, then token embeddings,
then logit targets. Only features and logits have incoming edges, and only
features, errors and tokens have outgoing ones, so the edges are stored as the
one block of the square adjacency that can be nonzero:

    n = n_nodes,  n_sources = n − n_logits,  n_targets = n_features + n_logits
    edges: [n_targets, n_sources]
    row r < n_features       -> target node r (a feature)
    row n_features + k       -> target node n_sources + k (logit k)
    column s                 -> source node s (features, errors, tokens)

`edges[r, s]` is the direct effect of source s on the target of row r. The square
`adjacency[t, s]` (rows are targets) is built only on request, for small graphs.
A full graph from attribution and a pruned one share this type; a pruned graph
simply has fewer nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

FEATURE, ERROR, TOKEN, LOGIT = 0, 1, 2, 3
KIND_NAMES = {FEATURE: "feature", ERROR: "error", TOKEN: "token", LOGIT: "logit"}


def target_nodes(node_kind: Tensor) -> Tensor:
    """[n_features + n_logits] the node of each row of `edges`: features, then logits."""
    return torch.nonzero((node_kind == FEATURE) | (node_kind == LOGIT)).flatten()


def target_rows(node_kind: Tensor) -> Tensor:
    """[n] the row of `edges` of each node; -1 for errors and tokens (they have no inputs)."""
    rows = torch.full((len(node_kind),), -1, dtype=torch.long)
    targets = target_nodes(node_kind)
    rows[targets] = torch.arange(len(targets))
    return rows


def count_sources(node_kind: Tensor) -> int:
    """Nodes that can have outgoing edges: every node but the logits (which come last)."""
    return int((node_kind != LOGIT).sum())


def edges_from_adjacency(adjacency: Tensor, node_kind: Tensor) -> Tensor:
    """The edge block [n_targets, n_sources] of a square adjacency [n, n] (see the module).

    Raises ValueError if the square has an edge outside the block: into an error or a
    token, or out of a logit."""
    n = len(node_kind)
    if tuple(adjacency.shape) != (n, n):
        raise ValueError(f"adjacency is {tuple(adjacency.shape)}, expected ({n}, {n})")
    targets, n_src = target_nodes(node_kind), count_sources(node_kind)
    inputs = (node_kind == ERROR) | (node_kind == TOKEN)
    if bool(adjacency[inputs].any()):
        raise ValueError("the adjacency has edges into error or token nodes")
    if bool(adjacency[:, n_src:].any()):
        raise ValueError("the adjacency has edges out of logit nodes")
    return adjacency[targets, :n_src]


def adjacency_from_edges(edges: Tensor, node_kind: Tensor) -> Tensor:
    """The square adjacency [n, n] (adjacency[target, source]) of an edge block."""
    n = len(node_kind)
    adjacency = torch.zeros(n, n, dtype=edges.dtype, device=edges.device)
    adjacency[target_nodes(node_kind), : edges.shape[1]] = edges
    return adjacency


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
    edges: Tensor
    """[n_features + n_logits, n_sources] direct effects, n_sources = n − n_logits.
    Row r < n_features is feature node r, row n_features + k is logit node n_sources + k;
    column s is source node s (features, errors, tokens). See the module docstring."""
    n_layers: int
    """Layers of the model."""
    logit_labels: list[str] = field(default_factory=list)
    """A label for each logit node, in order."""
    node_influence: Tensor | None = None
    """[n] each node's influence on the logits, once computed."""
    logit_vectors: Tensor | None = None
    """[n_logits, d_model] what each logit target reads from the final norm's output
    (a demeaned unembedding row, or a contrast of two); None in graphs from files that
    predate it or from other tools."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Model, transcoder, settings, scores and timings."""

    def __post_init__(self) -> None:
        if torch.any(self.node_kind[1:] < self.node_kind[:-1]):
            raise ValueError("nodes must be ordered features, errors, tokens, logits")
        expected = (self.n_targets, self.n_sources)
        if tuple(self.edges.shape) != expected:
            raise ValueError(f"edges are {tuple(self.edges.shape)}, expected {expected}")
        if len(self.logit_labels) not in (0, self.n_logits):
            raise ValueError(f"{len(self.logit_labels)} logit labels for {self.n_logits} logits")
        if self.logit_vectors is not None and len(self.logit_vectors) != self.n_logits:
            raise ValueError(f"{len(self.logit_vectors)} logit vectors for {self.n_logits} logits")

    @classmethod
    def from_adjacency(cls, adjacency: Tensor, **fields: Any) -> Graph:
        """A graph from a square adjacency [n, n] (adjacency[target, source]) and the other
        fields; raises ValueError if it has edges outside the block `edges` can hold."""
        return cls(edges=edges_from_adjacency(adjacency, fields["node_kind"]), **fields)

    @property
    def adjacency(self) -> Tensor:
        """[n, n] a new square matrix, adjacency[target, source]: for small graphs only."""
        return adjacency_from_edges(self.edges, self.node_kind)

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

    @property
    def n_sources(self) -> int:
        """Columns of `edges`: features, errors and tokens."""
        return self.n_nodes - self.n_logits

    @property
    def n_targets(self) -> int:
        """Rows of `edges`: features, then logits."""
        return self.n_features + self.n_logits

    def indices(self, kind: int) -> Tensor:
        """[k] the node indices of one kind (a contiguous range)."""
        return torch.nonzero(self.node_kind == kind).flatten()

    def span(self, kind: int) -> slice:
        """The contiguous range of node indices of one kind, as a slice (a view of columns)."""
        indices = self.indices(kind)
        start = int(indices[0]) if len(indices) else int((self.node_kind < kind).sum())
        return slice(start, start + len(indices))

    def target_nodes(self) -> Tensor:
        """[n_targets] the node of each row of `edges`."""
        return target_nodes(self.node_kind)

    def target_row(self, node: int) -> int | None:
        """The row of `edges` of a node; None for errors and tokens."""
        kind = int(self.node_kind[node])
        if kind == FEATURE:
            return node
        if kind == LOGIT:
            return node - self.n_sources + self.n_features
        return None

    def edge(self, target: int, source: int) -> float:
        """The direct effect of node `source` on node `target` (0 where no edge can be)."""
        row = self.target_row(target)
        if row is None or source >= self.n_sources:
            return 0.0
        return float(self.edges[row, source])

    def logit_weights(self) -> Tensor:
        """[n_logits] the logit probabilities: the weights of the logit rows of `edges`."""
        return self.node_value[self.n_sources :].to(self.edges.dtype)

    @property
    def n_edges(self) -> int:
        return int(torch.count_nonzero(self.edges))

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
        logit_kept = keep[self.n_sources :].tolist()  # labels are all there or none
        labels = [label for label, kept in zip(self.logit_labels, logit_kept, strict=False) if kept]
        influence = None if self.node_influence is None else self.node_influence[index]
        vectors = self.logit_vectors
        if vectors is not None:
            vectors = vectors[torch.tensor(logit_kept, dtype=torch.bool)]
        rows = torch.nonzero(keep[self.target_nodes()]).flatten()
        columns = torch.nonzero(keep[: self.n_sources]).flatten()
        return Graph(
            prompt=self.prompt,
            input_ids=self.input_ids,
            input_tokens=self.input_tokens,
            node_kind=self.node_kind[index],
            node_layer=self.node_layer[index],
            node_position=self.node_position[index],
            node_feature=self.node_feature[index],
            node_value=self.node_value[index],
            edges=self.edges[rows[:, None], columns],  # one copy, of the kept part only
            n_layers=self.n_layers,
            logit_labels=labels,
            node_influence=influence,
            logit_vectors=vectors,
            metadata=dict(self.metadata),
        )
