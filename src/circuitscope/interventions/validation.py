"""Check a graph's claims on the original model.

For the top nodes of a pruned graph (features and error nodes, by influence):
the graph predicts, through every path of the full graph, how much ablating
(or doubling) each node moves the target logits (`graph.effects`); we measure
it by that intervention on the original model (iterative patching, attention
frozen by default, norms live) and compare: Spearman correlation, sign agreement, and the
worst mismatches. The edge check compares each pruned edge leaving those
features with constrained patching, where the graph is exact up to float error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor
from tqdm import tqdm

from circuitscope.attribution.targets import contrast_target, demeaned_unembedding
from circuitscope.errors import CircuitscopeError
from circuitscope.graph.effects import total_effects_on_logits
from circuitscope.graph.graph import ERROR, FEATURE, LOGIT, Graph
from circuitscope.interventions.patching import CleanRun, PatchSettings, clean_run, intervene
from circuitscope.interventions.spec import Intervention, zero
from circuitscope.interventions.statistics import pearson, sign_agreement, spearman
from circuitscope.models.adapter import ModelAdapter
from circuitscope.transcoders.transcoder import Transcoder


@dataclass(frozen=True)
class ValidationSettings:
    top_n: int = 30
    """How many of the pruned graph's most influential feature and error nodes to test."""
    freeze_attention: bool = True
    """Measure with attention frozen (as the graph assumes); norms always run live."""
    batch_size: int = 16
    """Interventions per forward pass."""
    check_edges: bool = True
    """Also compare each pruned edge leaving the tested features with constrained patching."""


@dataclass
class ValidationContext:
    adapter: ModelAdapter
    transcoder: Transcoder
    full: Graph
    pruned: Graph
    directions: Tensor
    """[n_logits, d_model] the logit targets' directions (see `logit_directions`)."""

    @property
    def input_ids(self) -> Tensor:
        return self.full.input_ids.reshape(1, -1).to(self.adapter.device)

    @property
    def weights(self) -> Tensor:
        """[n_logits] each logit target's weight, summing to 1."""
        values = self.full.node_value[self.full.indices(LOGIT)].double()
        return values / values.sum()


def logit_directions(
    adapter: ModelAdapter, tokenizer: Any, graph: Graph, settings: dict[str, Any] | None = None
) -> Tensor:
    """[n_logits, d_model] what each logit target reads: the graph's own `logit_vectors`;
    for graphs written before they were kept, rebuilt from the tokens (demeaned W_U rows)
    and, for a contrast, from the settings it was traced with (`settings`, config.json)."""
    if graph.logit_vectors is not None:
        return graph.logit_vectors.double()
    rows = []
    saved = graph.metadata.get("config") or settings or {}
    contrast = saved.get("contrast") or []
    for node in graph.indices(LOGIT).tolist():
        token = int(graph.node_feature[node])
        if token >= 0:
            rows.append(demeaned_unembedding(adapter, torch.tensor([token]))[0])
        elif len(contrast) == 2:
            rows.append(contrast_target(adapter, tokenizer, *contrast).vector)
        else:
            raise CircuitscopeError("the graph has a custom logit direction but no contrast")
    return torch.stack(rows).double()


def top_nodes(full: Graph, pruned: Graph, top_n: int) -> list[int]:
    """Full-graph indices of the pruned graph's `top_n` most influential features and errors."""
    if pruned.node_influence is None:
        raise CircuitscopeError("the pruned graph has no node influence; trace it again")
    testable = (pruned.node_kind == FEATURE) | (pruned.node_kind == ERROR)
    candidates = torch.nonzero(testable).flatten()
    order = torch.argsort(pruned.node_influence[candidates], descending=True)
    lookup = full.node_index()
    return [lookup[pruned.node_key(int(i))] for i in candidates[order[:top_n]].tolist()]


def node_intervention(graph: Graph, node: int, factor: float) -> Intervention:
    """Scale node `node` (a feature or an error node) by `factor`."""
    feature = int(graph.node_feature[node]) if int(graph.node_kind[node]) == FEATURE else None
    layer, position = int(graph.node_layer[node]), int(graph.node_position[node])
    if factor == 0:
        return zero(layer, position, feature)
    return Intervention(layer, position, feature, "scale", factor)


def measure_logit_changes(
    context: ValidationContext,
    sets: Sequence[Sequence[Intervention]],
    settings: PatchSettings,
    clean: CleanRun,
    batch_size: int,
    progress: bool = False,
) -> Tensor:
    """[len(sets), n_logits] each set's change of every logit target's value."""
    changes = []
    chunks = range(0, len(sets), batch_size)
    for start in tqdm(chunks, desc="interventions", disable=not progress, leave=False):
        batch = [[], *sets[start : start + batch_size]]  # element 0: the baseline
        result = intervene(
            context.adapter, context.transcoder, context.input_ids, batch, settings, clean
        )
        values = result.final_normed[:, -1].double() @ context.directions.T.to(
            result.final_normed.device
        )
        changes.append((values[1:] - values[0]).cpu())
    return torch.cat(changes)


def agreement(predicted: Tensor, measured: Tensor) -> dict[str, float]:
    """Spearman, Pearson and sign agreement of two [n] vectors."""
    return {
        "spearman": spearman(predicted, measured),
        "pearson": pearson(predicted, measured),
        "sign_agreement": sign_agreement(predicted, measured),
        "n": len(predicted),
    }


EXPERIMENTS: dict[str, tuple[float, Literal["model", "replacement"]]] = {
    "ablation": (0.0, "model"),
    "doubling": (2.0, "model"),
    "ablation_replacement": (0.0, "replacement"),
    "doubling_replacement": (2.0, "replacement"),
}
"""name -> (factor on the node, what recomputes downstream). The `_replacement` runs
are diagnostics: the local replacement model run live, so their mismatch with the
graph is the linearisation's alone, and the rest is the transcoder's."""


def validate_graph(
    context: ValidationContext, settings: ValidationSettings, progress: bool = False
) -> dict[str, Any]:
    """The validation report (plain JSON data); see the module docstring."""
    if settings.top_n < 1 or settings.batch_size < 1:
        raise CircuitscopeError("--top-n and --batch-size must be at least 1")
    nodes = top_nodes(context.full, context.pruned, settings.top_n)
    if not nodes:
        raise CircuitscopeError("the pruned graph has no feature or error nodes to test")
    clean = clean_run(context.adapter, context.transcoder, context.input_ids)
    doubling = total_effects_on_logits(context.full, torch.tensor(nodes)).T.double()
    report: dict[str, Any] = {"nodes": _node_rows(context.full, nodes), "experiments": {}}
    for name, (factor, mlp) in EXPERIMENTS.items():
        patch = PatchSettings(
            freeze_attention=settings.freeze_attention, mlp=mlp, keep_activations=False
        )
        sets = [[node_intervention(context.full, node, factor)] for node in nodes]
        measured = measure_logit_changes(context, sets, patch, clean, settings.batch_size, progress)
        predicted = doubling if factor else -doubling
        report["experiments"][name] = _compare(context, report["nodes"], name, predicted, measured)
    if settings.check_edges:
        report["edges"] = check_edges(context, nodes, clean, settings.batch_size, progress)
    report["settings"] = {
        "top_n": settings.top_n,
        "freeze_attention": settings.freeze_attention,
        "patching": "iterative",
    }
    return report


def _compare(
    context: ValidationContext,
    rows: list[dict[str, Any]],
    name: str,
    predicted: Tensor,
    measured: Tensor,
) -> dict[str, Any]:
    """Agreement of [k, n_logits] predictions and measurements; fills the node rows."""
    weights = context.weights
    combined_p, combined_m = predicted @ weights, measured @ weights
    for row, p, m in zip(rows, combined_p.tolist(), combined_m.tolist(), strict=True):
        row[f"predicted_{name}"], row[f"measured_{name}"] = p, m
    is_feature = torch.tensor([row["kind"] == "feature" for row in rows])
    return {
        **agreement(combined_p, combined_m),
        "features_only": agreement(combined_p[is_feature], combined_m[is_feature]),
        "errors_only": agreement(combined_p[~is_feature], combined_m[~is_feature]),
        "per_target": [agreement(predicted[:, k], measured[:, k]) for k in range(len(weights))],
        "worst": _worst(rows, name),
    }


def _node_rows(graph: Graph, nodes: list[int]) -> list[dict[str, Any]]:
    influence = graph.node_influence
    return [
        {
            "label": graph.node_label(node),
            "kind": "feature" if int(graph.node_kind[node]) == FEATURE else "error",
            "layer": int(graph.node_layer[node]),
            "position": int(graph.node_position[node]),
            "feature": int(graph.node_feature[node]),
            "activation": float(graph.node_value[node]),
            "influence": None if influence is None else float(influence[node]),
        }
        for node in nodes
    ]


def _worst(rows: list[dict[str, Any]], name: str, count: int = 5) -> list[dict[str, Any]]:
    """The nodes whose measured effect is furthest from the prediction (signs first)."""

    def badness(row: dict[str, Any]) -> tuple[bool, float]:
        p, m = row[f"predicted_{name}"], row[f"measured_{name}"]
        return ((p > 0) != (m > 0), abs(p - m))

    worst = sorted(rows, key=badness, reverse=True)[:count]
    return [
        {
            "label": r["label"],
            "predicted": r[f"predicted_{name}"],
            "measured": r[f"measured_{name}"],
        }
        for r in worst
    ]


def check_edges(
    context: ValidationContext,
    nodes: list[int],
    clean: CleanRun,
    batch_size: int,
    progress: bool = False,
) -> dict[str, Any]:
    """Each pruned edge from a tested feature, against constrained patching (ablation)."""
    full, pruned = context.full, context.pruned
    lookup = pruned.node_index()
    to_full = full.node_index()
    pairs: list[tuple[int, int]] = []  # (target, source) in the full graph
    sources = [n for n in nodes if int(full.node_kind[n]) == FEATURE]
    pruned_targets = pruned.target_nodes()
    for source in sources:
        column = pruned.edges[:, lookup[full.node_key(source)]]
        for target in pruned_targets[torch.nonzero(column).flatten()].tolist():
            pairs.append((to_full[pruned.node_key(target)], source))
    if not pairs:
        return {"n": 0}
    settings = PatchSettings(
        freeze_attention=True,
        freeze_norms=True,
        constrained_layers=range(full.n_layers),
        keep_activations=True,
    )
    measured = _measured_edges(context, sources, pairs, settings, clean, batch_size, progress)
    predicted = torch.tensor([-full.edge(t, s) for t, s in pairs], dtype=torch.float64)
    error = (predicted - measured).abs()
    return {
        **agreement(predicted, measured),
        "max_abs_error": float(error.max()),
        "relative_error": float(error.max() / predicted.abs().max().clamp_min(1e-30)),
        "predicted": predicted.tolist(),
        "measured": measured.tolist(),
    }


def _measured_edges(
    context: ValidationContext,
    sources: list[int],
    pairs: list[tuple[int, int]],
    settings: PatchSettings,
    clean: CleanRun,
    batch_size: int,
    progress: bool,
) -> Tensor:
    full = context.full
    measured: dict[tuple[int, int], float] = {}
    logit_rank = {int(node): k for k, node in enumerate(full.indices(LOGIT).tolist())}
    chunks = range(0, len(sources), batch_size)
    for start in tqdm(chunks, desc="edge checks", disable=not progress, leave=False):
        chunk = sources[start : start + batch_size]
        sets = [[], *[[node_intervention(full, s, 0.0)] for s in chunk]]
        result = intervene(
            context.adapter, context.transcoder, context.input_ids, sets, settings, clean
        )
        logit_values = result.final_normed[:, -1].double() @ context.directions.T.to(
            result.final_normed.device
        )
        for target, source in pairs:
            if source not in chunk:
                continue
            b = chunk.index(source) + 1
            if int(full.node_kind[target]) == LOGIT:
                values = logit_values[:, logit_rank[target]]
            else:
                layer, pos = int(full.node_layer[target]), int(full.node_position[target])
                values = result.pre_activations[layer][:, pos, int(full.node_feature[target])]
            measured[(target, source)] = float(values[b] - values[0])
    return torch.tensor([measured[pair] for pair in pairs], dtype=torch.float64)
