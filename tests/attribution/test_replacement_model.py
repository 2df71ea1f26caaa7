"""The local replacement model reproduces the original model, and its parts add up."""

import pytest
import torch

from circuitscope.attribution.attribute import AttributionLimits, attribute
from circuitscope.attribution.replacement import build_replacement
from circuitscope.attribution.targets import top_logit_targets
from circuitscope.errors import CircuitscopeError
from circuitscope.graph.graph import ERROR, FEATURE
from circuitscope.models import sites
from circuitscope.models.adapter import ModelAdapter
from circuitscope.testing.tiny_models import tiny_model, tiny_tokenizer
from circuitscope.testing.tiny_transcoders import VARIANTS, Variant, tiny_transcoder

PROMPT = "two plus two is four, and the river ran past the mill"


def _ids() -> torch.Tensor:
    tokenizer = tiny_tokenizer()
    return torch.tensor([[tokenizer.bos_token_id, *tokenizer(PROMPT).input_ids]])


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_with_error_nodes_it_reproduces_the_logits(arch: str, variant: Variant):
    adapter = ModelAdapter(tiny_model(arch))
    transcoder = tiny_transcoder(
        adapter, variant.kind, skip_connection=variant.skip, input_site=variant.input_site
    )
    rep = build_replacement(adapter, transcoder, _ids())
    with torch.no_grad():
        logits = adapter.run(
            rep.input_ids,
            frozen=rep.recording.frozen,
            mlp_out=rep.mlp_outputs(),
            live_input=rep.live_input,
        )
    assert (logits.logits - rep.recording.logits).abs().max().item() < 1e-5
    assert len(rep.features) > 20 and rep.errors.abs().max() > 0.1  # not vacuous


@pytest.mark.parametrize("input_site", ["mlp_in", "resid_mid"])
def test_without_error_nodes_it_is_the_spliced_transcoder(arch: str, input_site: str):
    """Errors removed = each MLP output replaced by the transcoder's own reconstruction
    (except at BOS, whose MLP outputs are constants of the model)."""
    adapter = ModelAdapter(tiny_model(arch))
    transcoder = tiny_transcoder(adapter, "clt", input_site=input_site)
    rep = build_replacement(adapter, transcoder, _ids())
    cache = rep.recording.cache
    inputs = {i: cache[sites.transcoder_input(input_site, i)][0] for i in range(adapter.n_layers)}
    activations = {i: transcoder.encode(i, x) for i, x in inputs.items()}
    for acts in activations.values():
        acts[0] = 0.0  # the BOS position carries no features
    spliced = {i: y.unsqueeze(0) for i, y in transcoder.decode(activations, inputs).items()}
    for layer, output in spliced.items():  # BOS keeps its own MLP output (a constant)
        output[0, 0] = rep.recording.cache[sites.mlp_out(layer)][0, 0]
    with torch.no_grad():
        run = dict(frozen=rep.recording.frozen, live_input=input_site)
        expected = adapter.run(rep.input_ids, mlp_out=spliced, **run).logits  # type: ignore[arg-type]
        without = adapter.run(rep.input_ids, mlp_out=rep.mlp_outputs(False), **run).logits  # type: ignore[arg-type]
    torch.testing.assert_close(without, expected, atol=1e-5, rtol=1e-5)
    assert (without - rep.recording.logits).abs().max() > 1e-2


def test_error_columns_account_for_removing_the_errors(arch):
    """Logit with errors − Σ (error edges) = logit without errors (the map is linear)."""
    adapter = ModelAdapter(tiny_model(arch, dtype=torch.float64))
    rep = build_replacement(adapter, tiny_transcoder(adapter, "clt", dtype="float64"), _ids())
    targets = top_logit_targets(adapter, tiny_tokenizer(), rep.recording.logits[0, -1], 3)
    graph = attribute(rep, targets, AttributionLimits(batch_size=8), progress=False).graph
    directions = torch.stack([t.vector for t in targets])

    def logit_values(with_errors: bool) -> torch.Tensor:
        with torch.no_grad():
            result = adapter.run(
                rep.input_ids,
                frozen=rep.recording.frozen,
                mlp_out=rep.mlp_outputs(with_errors),
                capture=[sites.FINAL_NORM],
            )
        return directions @ result.cache[sites.FINAL_NORM][0, -1]

    error_sum = graph.edges[graph.n_features :, graph.span(ERROR)].sum(dim=1)  # logit rows
    torch.testing.assert_close(logit_values(False), logit_values(True) - error_sum)
    assert error_sum.abs().max() > 1e-3


def test_budget_keeps_exact_rows_of_the_most_influential_features():
    adapter = ModelAdapter(tiny_model("llama", dtype=torch.float64))
    rep = build_replacement(adapter, tiny_transcoder(adapter, "clt", dtype="float64"), _ids())
    targets = top_logit_targets(adapter, tiny_tokenizer(), rep.recording.logits[0, -1], 3)
    full = attribute(rep, targets, AttributionLimits(batch_size=8), progress=False).graph
    limits = AttributionLimits(max_feature_nodes=24, batch_size=8, update_interval=1)
    run = attribute(rep, targets, limits, progress=False)
    budget = run.graph
    assert budget.n_features == 24 and run.rows_computed == 24 + len(targets)
    assert full.n_features == len(rep.features) > 100
    # Every edge among kept nodes is the full graph's edge.
    full_index = full.node_index()
    mapping = torch.tensor([full_index[budget.node_key(i)] for i in range(budget.n_nodes)])
    torch.testing.assert_close(budget.adjacency, full.adjacency[mapping][:, mapping])
    # The kept features are among the most influential ones of the full graph.
    from circuitscope.graph.influence import influence, normalize_rows

    scores = influence(normalize_rows(full.edges), full.logit_weights())
    features = torch.nonzero(full.node_kind == FEATURE).flatten()
    top = set(features[scores[features].argsort(descending=True)[:8]].tolist())
    assert top <= set(mapping.tolist())


def test_a_transcoder_for_another_model_is_refused():
    adapter = ModelAdapter(tiny_model("llama"))
    other = tiny_transcoder(ModelAdapter(tiny_model("gemma2")), "clt")
    with pytest.raises(CircuitscopeError, match="does not fit"):
        build_replacement(adapter, other, _ids())
