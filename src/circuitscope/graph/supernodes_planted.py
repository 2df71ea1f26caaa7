"""Graphs whose supernodes are known: planted ground truth for grouping methods.

A planted circuit is a small layered network of roles (a role is one thing the
circuit computes). Each role becomes several feature nodes of the graph, which a
grouping method should put together:

- "repeated": one transcoder feature at two or three token positions;
- "split": one feature split into two or three near-duplicates (its decoder direction
  shared in fractions: each copy reads the same inputs and writes its share), at one
  or two positions;
- "two_circuits": two independent circuits (each of mixed roles, each with its own
  logits) wired into one graph.

Node-level edges follow the role-level ones: a member at position p feeds a member
of a downstream role at position q ≥ p (fully when p = q, a quarter across
positions), scaled by the source's share, times log-normal noise. Every feature also
reads its own token, error nodes add small noise, and a few singleton distractor
features are wired at random. Pure tensors; no model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from circuitscope.graph.graph import ERROR, FEATURE, LOGIT, TOKEN, Graph

PlantedKind = Literal["repeated", "split", "two_circuits"]
PLANTED_KINDS: tuple[PlantedKind, ...] = ("repeated", "split", "two_circuits")
N_LAYERS, N_POSITIONS = 4, 7  # position 0 is BOS, as in a traced graph
ROLES_PER_LAYER = (3, 3, 2, 2)
DISTRACTOR = 10_000  # distractor roles (and their features) are numbered from here


@dataclass
class PlantedGraph:
    graph: Graph
    truth: Tensor
    """[n_features] the planted group of each feature node (distractors are alone)."""
    kind: str


@dataclass
class _Member:
    role: int
    layer: int
    position: int
    feature: int
    share: float


@dataclass
class _Circuit:
    roles: list[tuple[int, int]] = field(default_factory=list)
    """(role id, layer) of each role."""
    inputs: dict[int, list[tuple[int, float]]] = field(default_factory=dict)
    """role -> [(upstream role, weight)]."""
    logits: dict[int, list[tuple[int, float]]] = field(default_factory=dict)
    """role -> [(logit rank, weight)]."""


def planted_graph(kind: PlantedKind, seed: int, noise: float = 0.3) -> PlantedGraph:
    """A planted graph of `kind` (see the module); the same seed gives the same graph."""
    gen = torch.Generator().manual_seed(seed)
    members: list[_Member] = []
    circuits: list[_Circuit] = []
    n_circuits = 2 if kind == "two_circuits" else 1
    for c in range(n_circuits):
        logit_ranks = [2 * c, 2 * c + 1]
        circuits.append(_plant_circuit(kind, gen, members, logit_ranks, len(circuits) * 100))
    for d in range(6):  # distractors: a role each
        layer = int(torch.randint(0, N_LAYERS, (1,), generator=gen))
        position = int(torch.randint(1, N_POSITIONS, (1,), generator=gen))
        members.append(_Member(DISTRACTOR + d, layer, position, DISTRACTOR + d, 1.0))
    members.sort(key=lambda m: (m.layer, m.position, m.feature))
    graph = _build_graph(members, circuits, 2 * n_circuits, gen, noise)
    truth = torch.tensor([m.role for m in members])
    return PlantedGraph(graph, truth, kind)


def _plant_circuit(
    kind: PlantedKind, gen: torch.Generator, members: list[_Member], logits: list[int], base: int
) -> _Circuit:
    circuit = _Circuit()
    for layer, count in enumerate(ROLES_PER_LAYER):
        for _ in range(count):
            role = base + len(circuit.roles)
            circuit.roles.append((role, layer))
            style = kind if kind != "two_circuits" else ("repeated", "split")[role % 2]
            members.extend(_role_members(style, role, layer, gen))
            upstream = [r for r, l_ in circuit.roles if l_ < layer]
            if upstream:
                picks = torch.randperm(len(upstream), generator=gen)[:2].tolist()
                circuit.inputs[role] = [(upstream[i], _signed_weight(gen)) for i in picks]
            if layer >= N_LAYERS - 2:
                circuit.logits[role] = [(k, _signed_weight(gen)) for k in logits]
    _connect_dead_ends(circuit, gen)
    return circuit


def _connect_dead_ends(circuit: _Circuit, gen: torch.Generator) -> None:
    """Give each role that feeds nothing a downstream role (a pruned graph keeps only
    nodes with a path to the logits)."""
    for role, layer in circuit.roles:
        used = any(role == r for inputs in circuit.inputs.values() for r, _ in inputs)
        if used or role in circuit.logits:
            continue
        later = [r for r, l_ in circuit.roles if l_ > layer]
        pick = later[int(torch.randint(0, len(later), (1,), generator=gen))]
        circuit.inputs.setdefault(pick, []).append((role, _signed_weight(gen)))


def _role_members(style: str, role: int, layer: int, gen: torch.Generator) -> list[_Member]:
    first = 1 + layer  # later layers sit at later positions, nearer the logits
    positions = (torch.randperm(N_POSITIONS - first, generator=gen) + first).tolist()
    if style == "repeated":
        count = int(torch.randint(2, 4, (1,), generator=gen))
        return [_Member(role, layer, p, role, 1.0) for p in sorted(positions[:count])]
    copies = int(torch.randint(2, 4, (1,), generator=gen))
    shares = torch.rand(copies, generator=gen) + 0.5
    shares = (shares / shares.sum()).tolist()
    n_positions = int(torch.randint(1, 3, (1,), generator=gen))
    return [
        _Member(role, layer, position, 10 * role + copy, shares[copy])
        for copy in range(copies)
        for position in positions[:n_positions]
    ]


def _signed_weight(gen: torch.Generator) -> float:
    sign = 1.0 if float(torch.rand(1, generator=gen)) < 0.5 else -1.0
    return sign * (0.5 + float(torch.rand(1, generator=gen)))


def _build_graph(
    members: list[_Member],
    circuits: list[_Circuit],
    n_logits: int,
    gen: torch.Generator,
    noise: float,
) -> Graph:
    k = len(members)
    n_errors = N_LAYERS * (N_POSITIONS - 1)
    n_sources = k + n_errors + N_POSITIONS
    adjacency = torch.zeros(k + n_logits, n_sources, dtype=torch.float64)
    role_inputs = {r: i for c in circuits for r, i in c.inputs.items()}
    role_logits = {r: i for c in circuits for r, i in c.logits.items()}
    for t, target in enumerate(members):
        if target.layer == 0:
            adjacency[t, k + n_errors + target.position] = 0.5  # its own token
        for role, weight in role_inputs.get(target.role, []):
            for s, source in enumerate(members):
                if source.role == role and source.position <= target.position:
                    reach = 1.0 if source.position == target.position else 0.25
                    adjacency[t, s] = weight * reach * source.share
        for s, source in enumerate(members):
            if source.role == target.role or source.layer >= target.layer:
                continue
            distractor = max(source.role, target.role) >= DISTRACTOR  # random links
            if distractor and float(torch.rand(1, generator=gen)) < 0.15:
                adjacency[t, s] = _signed_weight(gen) * 0.5
        for s, source in enumerate(members):
            for rank, weight in role_logits.get(source.role, []):
                reach = 1.0 if source.position == N_POSITIONS - 1 else 0.25
                adjacency[k + rank, s] = weight * reach * source.share
    mask = adjacency != 0
    adjacency *= torch.exp(noise * torch.randn(adjacency.shape, generator=gen, dtype=torch.float64))
    adjacency *= mask
    errors = 0.1 * torch.randn(k + n_logits, n_errors, generator=gen, dtype=torch.float64)
    adjacency[:, k : k + n_errors] = errors * _error_mask(members, n_logits)
    kept = _drop_dead_ends(members, adjacency, n_logits)
    rows = torch.tensor(kept + list(range(k, k + n_logits)))
    columns = torch.tensor(kept + list(range(k, n_sources)))
    members[:] = [members[i] for i in kept]
    return _graph(members, n_logits, adjacency[rows[:, None], columns])


def _error_mask(members: list[_Member], n_logits: int) -> Tensor:
    """[k + n_logits, n_errors] error node (layer, position) -> a later-layer feature at the
    same position, or any logit from the last position."""
    error_layer = torch.arange(N_LAYERS).repeat_interleave(N_POSITIONS - 1)
    error_position = torch.arange(1, N_POSITIONS).repeat(N_LAYERS)
    layer = torch.tensor([m.layer for m in members] + [N_LAYERS] * n_logits)
    position = torch.tensor([m.position for m in members] + [N_POSITIONS - 1] * n_logits)
    return (error_layer[None] < layer[:, None]) & (error_position[None] == position[:, None])


def _drop_dead_ends(members: list[_Member], edges: Tensor, n_logits: int) -> list[int]:
    """The members kept when features without outgoing edges are dropped, repeatedly
    (as pruning keeps only nodes with a path to the logits)."""
    kept = list(range(len(members)))
    while True:
        rows = kept + list(range(len(members), len(members) + n_logits))
        alive = [s for s in kept if bool(edges[rows, s].any())]
        if len(alive) == len(kept):
            return kept
        kept = alive


def _graph(members: list[_Member], n_logits: int, edges: Tensor) -> Graph:
    n_errors = N_LAYERS * (N_POSITIONS - 1)
    kind = [FEATURE] * len(members) + [ERROR] * n_errors + [TOKEN] * N_POSITIONS
    kind += [LOGIT] * n_logits
    error_layers = [layer for layer in range(N_LAYERS) for _ in range(1, N_POSITIONS)]
    error_positions = [p for _ in range(N_LAYERS) for p in range(1, N_POSITIONS)]
    layer = [m.layer for m in members] + error_layers + [-1] * N_POSITIONS
    layer += [N_LAYERS] * n_logits
    position = [m.position for m in members] + error_positions + list(range(N_POSITIONS))
    position += [N_POSITIONS - 1] * n_logits
    feature = [m.feature for m in members] + [-1] * n_errors + list(range(N_POSITIONS))
    feature += list(range(n_logits))
    value = [2.0 * m.share for m in members] + [0.0] * (n_errors + N_POSITIONS)
    value += [1.0 / n_logits] * n_logits
    tokens = ["<bos>"] + [f"t{p}" for p in range(1, N_POSITIONS)]
    return Graph(
        prompt=" ".join(tokens[1:]),
        input_ids=torch.arange(N_POSITIONS),
        input_tokens=tokens,
        node_kind=torch.tensor(kind),
        node_layer=torch.tensor(layer),
        node_position=torch.tensor(position),
        node_feature=torch.tensor(feature),
        node_value=torch.tensor(value, dtype=torch.float64),
        edges=edges,
        n_layers=N_LAYERS,
        logit_labels=[f"logit{r}" for r in range(n_logits)],
    )
