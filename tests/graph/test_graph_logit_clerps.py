"""Logit clerps as circuit-tracer's page and Neuronpedia read them, and old files.

`page_logit_token` and `page_logit_probability` mirror the page's parse, from
circuit-tracer 0.5.0 `frontend/assets/attribution_graph/util-cg.js`:
`d.logitToken = d.clerp?.split('"')[1]?.split('" k(p=')[0]` (addVirtualDiff) and
`d.logitPct = +d.clerp.split('(p=')[1].split(')')[0]` (formatData). Neuronpedia's
`app/[modelId]/graph/utils.ts` parses the token the same way.
"""

import dataclasses
import json

import pytest

from circuitscope.graph.graph import Graph
from circuitscope.graph.logit_clerps import (
    QUOTE_STAND_IN,
    label_from_clerp,
    label_text,
    logit_clerp,
)
from circuitscope.graph.neuronpedia import export_neuronpedia, import_neuronpedia
from circuitscope.graph.prune import prune_graph
from circuitscope.testing.tiny_graphs import tiny_graph

TOKENS = [
    " Au", "Au", "", " ", '"', '""', ' "quoted"', "it's", "it's \"both\"", "back\\slash",
    "\\n", "\n", "\r\n\t", " x\n", "é", " 日本", "🙂", "Ġ", "＂", "'", "(p=", "a) (b",
]  # fmt: skip


def page_logit_token(clerp: str) -> str | None:
    parts = clerp.split('"')
    return parts[1].split('" k(p=')[0] if len(parts) > 1 else None


def page_logit_probability(clerp: str) -> float:
    return float(clerp.split("(p=")[1].split(")")[0])


def token_label(token: str, probability: float) -> str:
    """The label attribution gives a token target (attribution/targets.py)."""
    return f"{token!r} (p={probability:.3f})"


@pytest.fixture(scope="module")
def pruned() -> Graph:
    return prune_graph(tiny_graph("llama"), 0.8, 0.98)


@pytest.mark.parametrize("token", TOKENS)
def test_the_page_reads_the_token_back(token):
    clerp = logit_clerp(token_label(token, 0.346), 0.346)
    assert clerp == f'Output "{token.replace(chr(34), QUOTE_STAND_IN)}" (p=0.346)'
    expected = token.replace('"', QUOTE_STAND_IN)
    if token != "(p=" and "(p=" not in token:
        assert page_logit_probability(clerp) == 0.346
    assert page_logit_token(clerp) == expected
    if '"' not in token:
        assert page_logit_token(clerp) == token  # exactly what circuit-tracer writes


def test_circuit_tracers_own_clerp_loses_a_quoted_token():
    # Why the stand-in: the page cuts circuit-tracer's `Output """ (p=0.100)` short.
    assert page_logit_token('Output """ (p=0.100)') == ""
    assert page_logit_token(logit_clerp(token_label('"', 0.1), 0.1)) == QUOTE_STAND_IN


def test_labels_that_are_not_token_labels_are_quoted_whole():
    contrast = "' Austin' − ' Dallas'"
    assert label_text(contrast) == contrast
    assert page_logit_token(logit_clerp(contrast, 1.0)) == "' Austin' − ' Dallas'"
    assert page_logit_probability(logit_clerp(contrast, 1.0)) == 1.0


def _with_labels(graph: Graph, tokens: list[str]) -> Graph:
    labels = [token_label(token, 0.1 * (k + 1)) for k, token in enumerate(tokens)]
    return dataclasses.replace(graph, logit_labels=labels)


def _documents(graph: Graph):
    """Export with every token of TOKENS as some logit's label, a few logits at a time."""
    n = graph.n_logits
    assert n >= 2
    for start in range(0, len(TOKENS), n):
        tokens = (TOKENS[start : start + n] + TOKENS[:n])[:n]
        labelled = _with_labels(graph, tokens)
        document = json.loads(json.dumps(export_neuronpedia(labelled, "t", "tiny")))
        yield labelled, tokens, document


def test_export_import_round_trips_every_label(pruned):
    for labelled, tokens, document in _documents(pruned):
        logits = [node for node in document["nodes"] if node["feature_type"] == "logit"]
        for node, token in zip(logits, tokens, strict=True):
            assert page_logit_token(node["clerp"]) == token.replace('"', QUOTE_STAND_IN)
        assert import_neuronpedia(document).logit_labels == labelled.logit_labels


def _as_old_circuitscope_file(document: dict, n_layers: int) -> dict:
    """What the export wrote before `logit_label` (circuitscope 0.1.0, November 2026)."""
    old = json.loads(json.dumps(document))
    old["metadata"]["info"] = {"generator": "circuitscope", "n_layers": n_layers}
    for node in old["nodes"]:
        if node["feature_type"] == "logit":
            node["clerp"] = "Output " + node.pop("logit_label")
            node["layer"] = str(n_layers)
    return old


def test_old_files_still_import(pruned):
    for labelled, _, document in _documents(pruned):
        old = _as_old_circuitscope_file(document, pruned.n_layers)
        back = import_neuronpedia(old)
        assert back.logit_labels == labelled.logit_labels
        assert back.n_layers == pruned.n_layers


def test_circuit_tracer_files_import_with_our_labels(pruned):
    for _, tokens, document in _documents(pruned):
        theirs = json.loads(json.dumps(document))
        del theirs["metadata"]["info"]
        logits = [node for node in theirs["nodes"] if node["feature_type"] == "logit"]
        for node, token in zip(logits, tokens, strict=True):
            del node["logit_label"]
            node["clerp"] = f'Output "{token}" (p={node["token_prob"]:.3f})'  # as they write
        back = import_neuronpedia(theirs)
        expected = [token_label(token, p) for token, p in
                    zip(tokens, [n["token_prob"] for n in logits], strict=True)]  # fmt: skip
        assert back.logit_labels == expected
        assert back.n_layers == pruned.n_layers  # from the logits' layer, n_layers + 1


@pytest.mark.parametrize(
    ("clerp", "old", "label"),
    [
        ('Output " Au" (p=0.346)', False, "' Au' (p=0.346)"),
        ('Output """ (p=0.100)', False, "'\"' (p=0.100)"),
        ('Output "a\\b" (p=0.100)', False, "'a\\\\b' (p=0.100)"),
        ("Output ' Au' (p=0.346)", True, "' Au' (p=0.346)"),
        ('Output "it\'s\\n" (p=0.100)', True, '"it\'s\\n" (p=0.100)'),
        ("Output ' Au' (p=0.346)", False, "' Au' (p=0.346)"),
        ("", False, ""),
    ],
)
def test_label_from_clerp(clerp, old, label):
    assert label_from_clerp(clerp, old) == label
