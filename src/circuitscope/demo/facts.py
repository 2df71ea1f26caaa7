"""What the demo found for each case, as plain JSON data read back from its files.

The report is written from these facts alone, so report.json holds every figure the
Markdown and HTML show.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from circuitscope.demo.suite import Screened
from circuitscope.graph.graph import FEATURE, Graph
from circuitscope.graph.trace_folder import TraceFolder

TOP_FEATURES = 5
TOP_GROUPS = 5


def case_facts(
    screened: Screened, folder: Path, labels: dict[tuple[int, int], str]
) -> dict[str, Any]:
    """The figures of one case: screening, graph scores, validation, supernodes, features.
    labels: {(layer, index): label} from the feature cards."""
    case = screened.case
    facts: dict[str, Any] = {
        "slug": case.slug,
        "category": case.category,
        "prompt": case.prompt,
        "expected": case.expected,
        "look_for": case.look_for,
        "pair": case.pair,
        "kept": screened.kept,
        "screening": screened.reason,
        "top_token": screened.top_token,
        "top_probability": screened.top_probability,
    }
    if not screened.kept:
        return facts
    pruned = TraceFolder.open(folder).pruned()
    facts["graph"] = _graph_facts(pruned, labels)
    facts["picture"] = f"graphs/{case.slug}/pruned.png"
    facts["validation"] = _validation_facts(folder / "validation" / "validation.json")
    facts["supernodes"] = _supernode_facts(folder / "supernodes.json")
    return facts


def _graph_facts(pruned: Graph, labels: dict[tuple[int, int], str]) -> dict[str, Any]:
    scores = pruned.metadata.get("scores", {})
    features = (pruned.node_kind == FEATURE).nonzero().flatten()
    top: list[dict[str, Any]] = []
    if pruned.node_influence is not None and len(features):
        order = pruned.node_influence[features].argsort(descending=True)[:TOP_FEATURES]
        for node in features[order].tolist():
            key = (int(pruned.node_layer[node]), int(pruned.node_feature[node]))
            top.append(
                {
                    "node": pruned.node_label(node),
                    "token": pruned.input_tokens[int(pruned.node_position[node])],
                    "label": labels.get(key, ""),
                    "influence": float(pruned.node_influence[node]),
                }
            )
    return {
        "logit": pruned.logit_labels[0] if pruned.logit_labels else "",
        "nodes": pruned.n_nodes,
        "features": len(features),
        "edges": pruned.n_edges,
        "replacement": scores.get("replacement"),
        "completeness": scores.get("completeness"),
        "top_features": top,
    }


def _validation_facts(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    experiments = json.loads(path.read_text())["experiments"]
    ablation = experiments["ablation"]
    return {
        "ablation_spearman": ablation["spearman"],
        "ablation_spearman_replacement": experiments.get("ablation_replacement", {}).get(
            "spearman"
        ),
        "sign_agreement": ablation["sign_agreement"],
        "nodes_tested": ablation["n"],
    }


def _supernode_facts(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    document = json.loads(path.read_text())
    groups = document["groups"]
    check = document.get("check") or {}
    agreement = check.get("agreement", {})
    rows = []
    for group in groups[:TOP_GROUPS]:
        checked = group.get("check") or {}
        rows.append(
            {
                "label": group["label"],
                "size": len(group["members"]),
                "predicted": checked.get("predicted"),
                "measured": checked.get("measured"),
                "passed": checked.get("passed"),
            }
        )
    return {
        "groups": len(groups),
        "coverage": document["coverage"]["fraction"],
        "passed": agreement.get("passed"),
        "spearman": agreement.get("spearman"),
        "top": rows,
    }


def reading(facts: dict[str, Any]) -> str:
    """A short reading of the case's circuit, in words, from its figures."""
    graph, validation, groups = facts["graph"], facts["validation"], facts["supernodes"]
    text = [
        f"SmolLM2 predicts {facts['top_token']!r} (p = {facts['top_probability']:.2f}). "
        f"The pruned graph keeps {graph['features']} feature nodes; replacement score "
        f"{fmt(graph['replacement'])}, completeness {fmt(graph['completeness'])}."
    ]
    if graph["top_features"]:
        strongest = graph["top_features"][0]
        named = f" ({strongest['label']})" if strongest["label"] else ""
        text.append(
            f"The most influential feature is {strongest['node']}{named} on {strongest['token']!r}."
        )
    if groups and groups["top"]:
        first = groups["top"][0]
        verdict = {True: "as the graph predicts", False: "unlike the graph's prediction"}.get(
            first["passed"], "not checked"
        )
        text.append(
            f'Its strongest suggested group, "{first["label"]}" ({first["size"]} nodes), moves '
            f"the target logit by {fmt(first['measured'], '+.2f')} when ablated on the model "
            f"(graph: {fmt(first['predicted'], '+.2f')}), {verdict}."
        )
    if validation:
        text.append(
            f"Over the {validation['nodes_tested']} most influential nodes, predicted and "
            f"measured ablation effects agree at Spearman {fmt(validation['ablation_spearman'])}."
        )
    return " ".join(text)


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "n/a" if value is None or value != value else format(value, spec)
