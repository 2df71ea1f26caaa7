"""The attribution-graph JSON: required fields, unique ids, and the round trip."""

import json

import pytest
import torch

from circuitscope.errors import CircuitscopeError
from circuitscope.graph.graph import ERROR, FEATURE
from circuitscope.graph.neuronpedia import (
    READ_REQUIRED,
    REQUIRED,
    export_neuronpedia,
    import_neuronpedia,
    node_ids,
    schema_problems,
)
from circuitscope.graph.prune import prune_graph
from circuitscope.testing.tiny_graphs import tiny_graph


@pytest.fixture(scope="module")
def pruned():
    return prune_graph(tiny_graph("llama"), 0.8, 0.98)


def test_export_has_every_required_field(pruned):
    document = json.loads(json.dumps(export_neuronpedia(pruned, "capital", "tiny-clt")))
    assert schema_problems(document) == []
    assert document["metadata"]["schema_version"] == 1
    assert document["metadata"]["prompt_tokens"] == pruned.input_tokens
    assert len(document["nodes"]) == pruned.n_nodes
    assert len(document["links"]) == pruned.n_edges > 0
    for node in document["nodes"]:
        for key in REQUIRED["node"]:
            assert key in node
    logits = [n for n in document["nodes"] if n["feature_type"] == "logit"]
    assert logits[0]["is_target_logit"] and "(p=" in logits[0]["clerp"]
    assert sum(n["is_target_logit"] for n in logits) == 1


def test_schema_check_names_what_is_missing(pruned):
    document = export_neuronpedia(pruned, "capital", "tiny-clt")
    del document["qParams"]["linkType"]
    del document["nodes"][0]["ctx_idx"]
    problems = schema_problems(document)
    assert "qParams lacks 'linkType'" in problems
    assert any("node 0 lacks ['ctx_idx']" in p for p in problems)
    assert schema_problems(document, READ_REQUIRED) == ["node 0 lacks ['ctx_idx']"]
    with pytest.raises(CircuitscopeError, match="ctx_idx"):
        import_neuronpedia(document)


def test_imports_a_document_with_only_what_neuronpedias_schema_requires(pruned):
    """circuit-tracer writes no schema_version; Neuronpedia's generator an empty qParams."""
    document = json.loads(json.dumps(export_neuronpedia(pruned, "capital", "tiny-clt")))
    document["qParams"] = {}
    for key in ("schema_version", "node_threshold", "info", "transcoder_list"):
        del document["metadata"][key]
    for node in document["nodes"]:
        for key in ("influence", "activation", "token_prob", "is_target_logit", "logit_label"):
            node.pop(key, None)
    back = import_neuronpedia(document)
    assert back.n_layers == pruned.n_layers  # from the logits' layer, n_layers + 1
    assert torch.equal(back.node_kind, pruned.node_kind)
    assert torch.equal(back.node_feature, pruned.node_feature)
    torch.testing.assert_close(back.edges, pruned.edges.double())
    assert back.logit_labels == pruned.logit_labels  # read from circuit-tracer's clerp


def test_ids_are_unique_even_where_circuit_tracer_collides(pruned):
    graph = pruned.subgraph(torch.ones(pruned.n_nodes, dtype=torch.bool))
    # A layer-0 feature whose index equals an error node's layer (circuit-tracer: "0_1_3").
    feature = int(torch.nonzero(graph.node_kind == FEATURE)[0])
    error = int(torch.nonzero(graph.node_kind == ERROR)[0])
    graph.node_layer[feature], graph.node_feature[feature] = 0, 1
    graph.node_layer[error] = 1
    graph.node_position[feature] = graph.node_position[error]
    ids = node_ids(graph)
    assert len(set(ids)) == len(ids)


def test_pruned_graph_round_trips(pruned):
    document = json.loads(json.dumps(export_neuronpedia(pruned, "capital", "tiny-clt")))
    back = import_neuronpedia(document)
    for name in ("node_kind", "node_layer", "node_position", "node_feature"):
        assert torch.equal(getattr(back, name), getattr(pruned, name)), name
    torch.testing.assert_close(back.node_value, pruned.node_value.double())
    torch.testing.assert_close(back.edges, pruned.edges.double())
    assert back.n_layers == pruned.n_layers and back.prompt == pruned.prompt
    assert back.logit_labels == pruned.logit_labels
    assert torch.equal(back.input_ids, pruned.input_ids)


def test_import_refuses_a_link_into_a_token(pruned):
    document = json.loads(json.dumps(export_neuronpedia(pruned, "capital", "tiny-clt")))
    token = next(n["node_id"] for n in document["nodes"] if n["feature_type"] == "embedding")
    document["links"].append({"source": token, "target": token, "weight": 1.0})
    with pytest.raises(CircuitscopeError, match="only features and logits have inputs"):
        import_neuronpedia(document)
