"""`supernodes`: suggest groups of a traced graph's features, each checked on the model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from circuitscope.cli_args import positional
from circuitscope.commands import Command

if TYPE_CHECKING:
    from circuitscope.graph.graph import Graph
    from circuitscope.graph.supernodes import SuggestedGroup


@dataclass(kw_only=True)
class SupernodesConfig:
    graph: str = positional()
    """A folder written by `circuitscope trace`; supernodes.json is written into it."""
    features: str = ""
    """Feature cards (`circuitscope features`): label groups from their members' cards
    (default: GRAPH/features when it holds cards)."""
    method: Literal["ours", "baseline"] = "ours"
    """ours (same feature + pooled edge profiles) or baseline (Neuronpedia's draft)."""
    threshold: float | None = None
    """Similarity at which groups stop merging (default: 0.25 ours, 0.5 baseline)."""
    min_size: int = 2
    """Smallest group suggested."""
    check: bool = True
    """Ablate each group on the original model and compare with the graph's prediction."""
    tolerance: float = 0.5
    """A group passes when |measured − predicted| ≤ tolerance · |predicted|, signs equal."""
    model: str = ""
    """The model for the check (default: the one the graph was traced with)."""
    transcoder: str = ""
    """The transcoder for the check (default: the one the graph was traced with)."""
    freeze_attention: bool = True
    """Measure with attention frozen, as the graph assumes (norms run live)."""
    batch_size: int = 16
    """Groups ablated per forward pass."""
    device: str = "cpu"
    """cpu, cuda, cuda:N, or auto."""
    progress: bool = True
    """Show a progress bar."""


def supernodes_command(config: SupernodesConfig) -> int:
    """Suggest supernodes for a traced graph and write them to GRAPH/supernodes.json."""
    from circuitscope.graph.supernodes import SupernodeSettings, suggest_supernodes
    from circuitscope.graph.supernodes_files import suggestions_document, write_suggestions
    from circuitscope.graph.trace_folder import TraceFolder

    folder = TraceFolder.open(config.graph)
    pruned = folder.pruned()
    settings = SupernodeSettings(config.method, config.threshold, config.min_size)
    groups = suggest_supernodes(pruned, settings)
    cards = Path(config.features) if config.features else folder.path / "features"
    if config.features or (cards / "index.json.gz").is_file():
        label_from_cards(pruned, groups, cards)
    document = suggestions_document(pruned, groups, settings)
    if config.check and groups:
        add_checks(document, config, groups)
    path = write_suggestions(document, folder.path)
    print_suggestions(document)
    print(f"\nwritten to {path}")
    return 0


def label_from_cards(graph: Graph, groups: list[SuggestedGroup], features: Path) -> None:
    """Replace each group's label by what its members' cards say, where they say something."""
    from circuitscope.errors import CircuitscopeError
    from circuitscope.features.files import read_feature, read_labels
    from circuitscope.graph.supernodes_labels import card_label

    if not features.is_dir():
        raise CircuitscopeError(f"--features {features}: no such folder")
    labels = read_labels(features)
    for group in groups:
        names, logits = [], []
        for layer, index in sorted({_feature(graph, m) for m in group.members}):
            names.append(labels.get((layer, index), ""))
            try:
                logits.append(list(read_feature(features, layer, index).get("top_logits", [])))
            except CircuitscopeError:  # no card for this feature
                continue
        group.label = card_label(names, logits) or group.label


def _feature(graph: Graph, node: int) -> tuple[int, int]:
    return int(graph.node_layer[node]), int(graph.node_feature[node])


def add_checks(
    document: dict[str, Any], config: SupernodesConfig, groups: list[SuggestedGroup]
) -> None:
    """Ablate each group on the model; put each result in its group, the summary on top."""
    from circuitscope.interventions.group_validation import (
        GroupCheckSettings,
        check_groups,
        full_graph_members,
    )
    from circuitscope.interventions.validation_files import open_context

    context = open_context(config.graph, config.model, config.transcoder, config.device)
    members = [full_graph_members(context.full, context.pruned, g.members) for g in groups]
    settings = GroupCheckSettings(config.freeze_attention, config.batch_size, config.tolerance)
    report = check_groups(context, members, settings, progress=config.progress)
    for row, checked in zip(document["groups"], report["groups"], strict=True):
        row["check"] = checked
    document["check"] = {"agreement": report["agreement"], "settings": report["settings"]}


def print_suggestions(document: dict[str, Any], top: int = 15) -> None:
    groups = document["groups"]
    coverage = document["coverage"]
    print(
        f"{len(groups)} groups ({document['method']}, threshold {document['threshold']:g}) cover "
        f"{coverage['grouped_features']} of {coverage['features']} features"
    )
    for row in groups[:top]:
        check = row["check"]
        mark = (
            ""
            if check is None
            else (
                f"  predicted {check['predicted']:+.4f} measured {check['measured']:+.4f} "
                + ("pass" if check["passed"] else "FAIL")
            )
        )
        print(f"  {len(row['members']):>3} nodes  {row['label'][:48]:<48}{mark}")
    if document["check"]:
        summary = document["check"]["agreement"]
        rho = summary.get("spearman")
        print(
            f"group ablations: {summary['passed']}/{len(groups)} pass; Spearman over groups "
            + ("n/a" if rho is None else f"{rho:.3f}")
        )


COMMANDS = [Command("supernodes", SupernodesConfig, supernodes_command)]
