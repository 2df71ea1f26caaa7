"""`trace` from Python: typed arguments in, a complete graph out; no CLI objects."""

from __future__ import annotations

import torch

from circuitscope.attribution.limits import AttributionLimits
from circuitscope.attribution.target_choice import TargetChoice
from circuitscope.attribution.targets import demeaned_unembedding
from circuitscope.attribution.trace import trace
from circuitscope.graph.graph import LOGIT
from circuitscope.graph.pruning_thresholds import PruningThresholds
from circuitscope.models.adapter import ModelAdapter
from circuitscope.testing.tiny_models import tiny_model, tiny_tokenizer
from circuitscope.testing.tiny_transcoders import tiny_transcoder


def test_trace_from_python_fills_the_graph():
    adapter = ModelAdapter(tiny_model("qwen3"))
    tokenizer = tiny_tokenizer()
    transcoder = tiny_transcoder(adapter, "plt", input_site="resid_mid")
    result = trace(
        adapter,
        tokenizer,
        transcoder,
        "The capital of France is",
        targets=TargetChoice(contrast=[" the", " of"]),
        limits=AttributionLimits(batch_size=8, max_feature_nodes=20),
        pruning=PruningThresholds(node_threshold=0.7),
        model_id="tiny-qwen3",
        transcoder_id="tiny-plt",
    )
    graph, pruned, info = result.graph, result.pruned, result.info
    assert graph.prompt == "The capital of France is"
    assert graph.input_tokens[0] == "<bos>" and len(graph.input_tokens) == len(graph.input_ids)
    assert info.bos_prepended and info.input_site == "resid_mid" and info.architecture == "qwen3"
    assert info.rows_computed == 20 + 1 and info.n_active_features > 20
    assert graph.metadata["model"] == "tiny-qwen3" and graph.metadata["transcoder"] == "tiny-plt"
    assert graph.n_logits == 1 and int(graph.node_feature[graph.indices(LOGIT)][0]) == -1
    assert graph.logit_vectors is not None and pruned.logit_vectors is not None
    unembed = adapter.unembed_weight.detach()
    plus, minus = tokenizer.encode(" the")[0], tokenizer.encode(" of")[0]
    torch.testing.assert_close(graph.logit_vectors[0].float(), unembed[plus] - unembed[minus])
    assert pruned.metadata["pruning"]["node_threshold"] == 0.7
    assert 0 < result.scores.replacement <= 1 and info.seconds > 0
    phases = info.phase_seconds  # where the time went: the graph, then scores and pruning
    assert list(phases) == ["graph", "scores_and_pruning"]
    assert phases["graph"] > 0 and phases["scores_and_pruning"] >= 0  # may round to 0 ms
    assert sum(phases.values()) <= info.seconds + 1e-3
    assert graph.metadata["phase_seconds"] == phases
    work = info.backward  # every pass is a batch of 8 rows over the whole prompt
    assert work["passes"] >= 3 and graph.metadata["backward"] == work
    layers = adapter.n_layers  # the logit row's pass reaches every layer
    assert 8 * layers <= work["layer_rows"] <= work["passes"] * 8 * layers
    assert work["layer_row_positions"] == work["layer_rows"] * len(graph.input_ids)


def test_default_targets_carry_their_demeaned_unembedding():
    adapter = ModelAdapter(tiny_model("gpt2"))
    result = trace(adapter, tiny_tokenizer(), tiny_transcoder(adapter, "clt"), "two plus two is")
    graph = result.graph
    tokens = graph.node_feature[graph.indices(LOGIT)]
    assert graph.logit_vectors is not None
    torch.testing.assert_close(graph.logit_vectors.float(), demeaned_unembedding(adapter, tokens))
