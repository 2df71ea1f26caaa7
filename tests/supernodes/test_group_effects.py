"""A group's predicted effect: the graph's linear model, and the local replacement model."""

import dataclasses

import pytest
import torch

from circuitscope.graph.effects import total_effects_on_logits, unit_effects
from circuitscope.graph.graph import FEATURE
from circuitscope.graph.supernodes_effects import group_effects_on_logits
from circuitscope.interventions.patching import PatchSettings, clean_run
from circuitscope.interventions.spec import Intervention
from circuitscope.interventions.validation import ValidationContext, measure_logit_changes
from circuitscope.testing.tiny_graphs import traced_tiny


@pytest.fixture(scope="module")
def traced():
    return traced_tiny("llama", "clt")


def chain_group(graph) -> list[int]:
    """Two features where the second reads the first strongly, plus a third unrelated one."""
    k = graph.n_features
    block = graph.edges[:k, :k].abs()
    reach = total_effects_on_logits(graph, torch.arange(k)).abs().sum(dim=0)
    target = int(torch.where(block.sum(dim=1) > 0, reach, 0.0).argmax())
    source = int(block[target].argmax())
    other = next(i for i in range(k) if i not in (target, source) and block[target, i] == 0)
    return sorted([source, target, other])


def looped_effect(graph, members: list[int], factor: float) -> torch.Tensor:
    """The linear model in layer order, one feature at a time (the definition)."""
    k = graph.n_features
    unit = unit_effects(graph, torch.arange(k))
    change = torch.zeros(k, dtype=unit.dtype)
    for i in range(k):
        upstream = float(unit[i, :k] @ change)
        if i in members:
            change[i] = (factor - 1) * float(graph.node_value[i]) + factor * upstream
        else:
            change[i] = upstream
    return unit[k:] @ change


def test_one_member_ablated_is_minus_its_doubling_effect(traced):
    graph = traced.graph
    nodes = torch.tensor([3, 17, 40])
    single = group_effects_on_logits(graph, [nodes[i : i + 1] for i in range(3)])
    assert torch.allclose(single, -total_effects_on_logits(graph, nodes), atol=1e-12)


@pytest.mark.parametrize("factor", [0.0, 0.5, 3.0])
def test_group_effect_is_the_linear_model_run_feature_by_feature(traced, factor):
    graph = traced.graph
    members = chain_group(graph)
    predicted = group_effects_on_logits(graph, [torch.tensor(members)], factor)[:, 0]
    assert torch.allclose(predicted, looped_effect(graph, members, factor), atol=1e-10)
    if factor == 0.0:  # a clamped chain is not the sum of single ablations
        summed = -total_effects_on_logits(graph, torch.tensor(members)).sum(dim=1)
        assert (predicted - summed).abs().max() > 1e-3 * predicted.abs().max()


def test_group_effect_matches_the_local_replacement_model(traced):
    """Frozen attention and norms, the replacement model run live: exactly linear while no
    feature crosses its threshold, so a small scaling of the group moves the logits as
    the graph says."""
    graph = traced.graph
    members = chain_group(graph)
    factor = 0.999
    predicted = group_effects_on_logits(graph, [torch.tensor(members)], factor)[:, 0]
    context = ValidationContext(
        traced.adapter, traced.transcoder, graph, graph, traced.directions()
    )
    group = [
        Intervention(
            int(graph.node_layer[m]), int(graph.node_position[m]),
            int(graph.node_feature[m]), "scale", factor,
        )
        for m in members
    ]  # fmt: skip
    assert all(int(graph.node_kind[m]) == FEATURE for m in members)
    settings = PatchSettings(
        freeze_attention=True, freeze_norms=True, mlp="replacement", keep_activations=False
    )
    clean = clean_run(traced.adapter, traced.transcoder, traced.input_ids)
    measured = measure_logit_changes(context, [group], settings, clean, 4)[0]
    assert predicted.abs().max() > 1e-6
    assert torch.allclose(measured, predicted, rtol=1e-6, atol=1e-9 * float(predicted.abs().max()))


def test_one_node_groups_check_as_validate_measures_them(traced):
    """check_groups on single features gives validate's ablation prediction and measurement."""
    from circuitscope.interventions.group_validation import GroupCheckSettings, check_groups
    from circuitscope.interventions.validation import ValidationSettings, top_nodes, validate_graph

    ranked = torch.linspace(1.0, 0.0, traced.graph.n_nodes)  # validate ranks nodes by it
    graph = dataclasses.replace(traced.graph, node_influence=ranked)
    context = ValidationContext(
        traced.adapter, traced.transcoder, graph, graph, traced.directions()
    )
    report = validate_graph(context, ValidationSettings(top_n=6, check_edges=False))
    nodes = top_nodes(graph, graph, 6)
    assert all(int(graph.node_kind[n]) == FEATURE for n in nodes)
    checked = check_groups(context, [torch.tensor([n]) for n in nodes], GroupCheckSettings())
    rows = checked["groups"]
    expected = report["nodes"]
    assert [r["predicted"] for r in rows] == pytest.approx(
        [e["predicted_ablation"] for e in expected]
    )
    assert [r["measured"] for r in rows] == pytest.approx(
        [e["measured_ablation"] for e in expected]
    )
    assert checked["agreement"]["n"] == 6
