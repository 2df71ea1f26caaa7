"""Interventions on the original model agree with the graph and with removing MLPs.

Tiny random fp64 models of every architecture, with a CLT and a PLT.
"""

from typing import Literal

import pytest
import torch

from circuitscope.graph.graph import ERROR, FEATURE, LOGIT
from circuitscope.interventions.patching import PatchSettings, clean_run, intervene
from circuitscope.interventions.spec import Intervention, zero
from circuitscope.models.adapter import ModelAdapter
from circuitscope.testing.tiny_graphs import traced_tiny
from circuitscope.testing.tiny_models import tiny_model, tiny_tokenizer
from circuitscope.testing.tiny_transcoders import VARIANTS, Variant, tiny_transcoder


def _sample(indices: torch.Tensor, count: int) -> list[int]:
    step = max(1, len(indices) // count)
    return indices[::step][:count].tolist()


def _error_nodes(graph) -> torch.Tensor:
    """Error nodes after BOS (BOS has none: its MLP outputs are constants)."""
    errors = graph.indices(ERROR)
    return errors[graph.node_position[errors] > 0]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_constrained_intervention_moves_each_target_by_its_edge_weight(arch: str, variant: Variant):
    traced = traced_tiny(
        arch, variant.kind, skip=variant.skip, n_logits=3, input_site=variant.input_site
    )
    graph = traced.graph
    sources = _sample(graph.indices(FEATURE), 10) + _sample(_error_nodes(graph), 4)
    batches: list[list[Intervention]] = [[]]  # element 0: the clean baseline
    changes = []
    for node in sources:
        layer, pos = int(graph.node_layer[node]), int(graph.node_position[node])
        if int(graph.node_kind[node]) == FEATURE:
            batches.append([Intervention(layer, pos, int(graph.node_feature[node]), "add", 0.7)])
            changes.append(0.7 / float(graph.node_value[node]))  # edge per unit activation
        else:
            batches.append([Intervention(layer, pos, None, "scale", 3.0)])
            changes.append(2.0)  # the error vector added twice more
    settings = PatchSettings(
        freeze_attention=True, freeze_norms=True, constrained_layers=range(graph.n_layers)
    )
    result = intervene(traced.adapter, traced.transcoder, traced.input_ids, batches, settings)

    feature_rows = graph.indices(FEATURE).tolist()
    measured_rows = []
    for row in feature_rows:
        layer, pos = int(graph.node_layer[row]), int(graph.node_position[row])
        pre = result.pre_activations[layer][:, pos, int(graph.node_feature[row])]
        measured_rows.append(pre[1:] - pre[0])
    directions = traced.directions()
    logit_values = result.final_normed[:, -1] @ directions.T  # [batch, n_logits]
    measured = torch.cat([torch.stack(measured_rows), (logit_values[1:] - logit_values[0]).T])

    rows = torch.tensor(feature_rows + graph.indices(LOGIT).tolist())
    predicted = graph.adjacency[rows][:, sources] * torch.tensor(changes, dtype=torch.float64)
    assert predicted.abs().max() > 1e-2, "vacuous: the sampled sources have no edges"
    torch.testing.assert_close(measured, predicted, atol=1e-9, rtol=1e-7)


def test_iterative_patching_reaches_further_than_constrained():
    traced = traced_tiny("llama", "plt")
    node = int(traced.graph.indices(FEATURE)[0])
    layer, pos = int(traced.graph.node_layer[node]), int(traced.graph.node_position[node])
    item = [zero(layer, pos, int(traced.graph.node_feature[node]))]
    args = (traced.adapter, traced.transcoder, traced.input_ids, [item])
    constrained = intervene(*args, PatchSettings(constrained_layers=range(3)))
    iterative = intervene(*args, PatchSettings())
    gap = (constrained.logits - iterative.logits).abs().max()
    assert gap > 1e-4  # the later MLPs respond when they are free
    # ...and the intervened feature itself is at zero in both.
    feature = int(traced.graph.node_feature[node])
    assert constrained.activations[layer][0, pos, feature] == 0
    assert iterative.activations[layer][0, pos, feature] == 0


@pytest.mark.parametrize(("freeze", "norms"), [(True, True), (True, False), (False, False)])
def test_no_intervention_reproduces_the_clean_run(arch: str, freeze: bool, norms: bool):
    adapter = ModelAdapter(tiny_model(arch, dtype=torch.float64))
    transcoder = tiny_transcoder(adapter, "clt", dtype="float64")
    ids = torch.tensor([tiny_tokenizer()("The capital of France is").input_ids])
    settings = PatchSettings(freeze_attention=freeze, freeze_norms=norms)
    result = intervene(adapter, transcoder, ids, [[]], settings)
    assert result.clean is not None
    # Frozen mode replays attention probabilities kept in fp32; free mode is the same run.
    tolerance = 1e-5 if freeze else 1e-12
    torch.testing.assert_close(result.logits, result.clean.logits, atol=tolerance, rtol=0)
    for layer, clean_acts in result.clean.activations.items():
        got = result.activations[layer][0]
        torch.testing.assert_close(got, clean_acts, atol=tolerance, rtol=0)


def _zero_everything(adapter: ModelAdapter, transcoder, layers: range) -> list[Intervention]:
    items = []
    for layer in layers:
        n_features = transcoder.config.n_features[layer]
        items += [zero(layer, None, feature) for feature in range(n_features)]
        items.append(zero(layer, None, None))
    return items


@pytest.mark.parametrize(
    ("kind", "layers"), [("plt", range(1, 3)), ("plt", range(0, 1)), ("clt", range(0, 3))]
)
def test_zeroing_features_and_errors_equals_removing_the_mlps_after_bos(
    arch: str, kind: Literal["clt", "plt"], layers: range
):
    """A CLT's features also write past their layer, so for it the range is every layer."""
    adapter = ModelAdapter(tiny_model(arch, dtype=torch.float64))
    transcoder = tiny_transcoder(adapter, kind, dtype="float64")
    if kind == "clt":
        layers = range(adapter.n_layers)
    ids = torch.tensor([tiny_tokenizer()("The capital of France is").input_ids])
    items = _zero_everything(adapter, transcoder, layers)
    settings = PatchSettings(freeze_attention=False, keep_activations=False)
    zeroed = intervene(adapter, transcoder, ids, [items], settings).logits
    # What remains of a layer with every node zeroed is the decoder bias b_dec, and
    # BOS's MLP output (a constant of the model: BOS has no nodes).
    bos = clean_run(adapter, transcoder, ids)
    biases = {}
    for layer in layers:
        bias = transcoder.layer(layer).b_dec.reshape(1, 1, -1).repeat(1, ids.shape[1], 1)
        bias[0, 0] = bos.mlp_out(layer)[0]
        biases[layer] = bias
    with torch.no_grad():
        only_bias = adapter.run(ids, mlp_out=biases).logits
        for layer in layers:
            transcoder.layer(layer).b_dec.zero_()
        removed_outputs = {layer: torch.zeros_like(biases[layer]) for layer in layers}
        for layer in layers:  # the MLPs removed after BOS
            removed_outputs[layer][0, 0] = bos.mlp_out(layer)[0]
        removed = adapter.run(ids, mlp_out=removed_outputs)
    torch.testing.assert_close(zeroed, only_bias, atol=1e-10, rtol=0)
    zeroed_without_bias = intervene(adapter, transcoder, ids, [items], settings).logits
    torch.testing.assert_close(zeroed_without_bias, removed.logits, atol=1e-10, rtol=0)
    assert (removed.logits - clean_run(adapter, transcoder, ids).logits).abs().max() > 1e-3


def test_batch_elements_are_independent():
    traced = traced_tiny("qwen3", "clt")
    node = int(traced.graph.indices(FEATURE)[-1])
    layer, pos = int(traced.graph.node_layer[node]), int(traced.graph.node_position[node])
    item = Intervention(layer, pos, int(traced.graph.node_feature[node]), "scale", 4.0)
    args = (traced.adapter, traced.transcoder, traced.input_ids)
    together = intervene(*args, [[item], [], [zero(0, 2, None)]])
    alone = [intervene(*args, [items]) for items in ([item], [], [zero(0, 2, None)])]
    assert (together.logits[2] - together.logits[1]).abs().max() > 1e-4
    for b, single in enumerate(alone):
        torch.testing.assert_close(together.logits[b], single.logits[0], atol=1e-10, rtol=0)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_replacement_model_small_changes_follow_the_graphs_total_effects(
    arch: str, variant: Variant
):
    """Run live (features recomputed, errors held, attention and norms frozen), a small
    change of a node moves the logits by the graph's total effect through every path."""
    from circuitscope.graph.effects import total_effects_on_logits

    traced = traced_tiny(
        arch, variant.kind, skip=variant.skip, n_logits=3, input_site=variant.input_site
    )
    graph = traced.graph
    sources = _sample(graph.indices(FEATURE), 8) + _sample(_error_nodes(graph), 3)
    epsilon = 1e-4
    batches: list[list[Intervention]] = [[]]
    for node in sources:
        layer, pos = int(graph.node_layer[node]), int(graph.node_position[node])
        feature = int(graph.node_feature[node]) if int(graph.node_kind[node]) == FEATURE else None
        batches.append([Intervention(layer, pos, feature, "scale", 1 + epsilon)])
    settings = PatchSettings(freeze_norms=True, mlp="replacement", keep_activations=False)
    result = intervene(traced.adapter, traced.transcoder, traced.input_ids, batches, settings)
    directions = traced.directions()
    values = result.final_normed[:, -1] @ directions.T
    measured = (values[1:] - values[0]).T / epsilon  # [n_logits, k]
    predicted = total_effects_on_logits(graph, torch.tensor(sources))
    indirect = predicted - graph.adjacency[graph.indices(LOGIT)][:, sources]
    assert indirect.abs().max() > 1e-3, "vacuous: no paths through features"
    torch.testing.assert_close(measured, predicted, atol=1e-6, rtol=1e-5)


def test_result_lists_top_tokens_and_the_features_that_changed():
    traced = traced_tiny("llama", "clt")
    node = int(traced.graph.indices(FEATURE)[0])
    layer, pos = int(traced.graph.node_layer[node]), int(traced.graph.node_position[node])
    feature = int(traced.graph.node_feature[node])
    batches = [[], [Intervention(layer, pos, feature, "set", 9.0)]]
    args = (traced.adapter, traced.transcoder, traced.input_ids, batches)
    result = intervene(*args, PatchSettings(freeze_attention=False))
    assert result.changed_features(0) == []  # the clean run changed nothing
    changes = result.changed_features(1, count=5)
    assert (changes[0].layer, changes[0].position, changes[0].feature) == (layer, pos, feature)
    assert changes[0].after == 9.0 and changes[0].before == pytest.approx(
        float(traced.graph.node_value[node])
    )
    assert len(changes) > 1 and all(c.position >= pos for c in changes)  # causal
    top = result.top_tokens(1, k=3)
    assert len(top) == 3 and top[0][1] >= top[1][1] >= top[2][1]
