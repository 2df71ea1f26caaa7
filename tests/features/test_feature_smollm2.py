"""SmolLM2-135M (bundled): cards for the features of the "The capital of France is" graph."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from circuitscope.cli import main
from circuitscope.features.card import format_card, load_card
from circuitscope.features.files import card_ids, read_manifest
from circuitscope.features.graph_features import graph_features


@pytest.mark.slow
def test_cards_for_the_capital_of_france_graph(tmp_path: Path) -> None:
    transcoder = os.environ.get("CIRCUITSCOPE_SMOLLM2_CLT")
    random = transcoder is None
    if transcoder is None:  # no trained CLT at hand: a random one with realistic sparsity
        from circuitscope.models.loading import load_model
        from circuitscope.testing.sparse_random import sparse_random_transcoder

        loaded = load_model("smollm2-135m")
        random_clt = sparse_random_transcoder(loaded.adapter, loaded.tokenizer, "clt", 256, 8.0)
        transcoder = str(random_clt.save(tmp_path / "clt"))
    trace = tmp_path / "trace"
    prompt = "The capital of France is"
    assert main(["trace", "smollm2-135m", transcoder, prompt, "-o", str(trace)]) == 0
    cards = tmp_path / "features"
    args = ["features", "smollm2-135m", transcoder, "-o", str(cards), "--features-of", str(trace)]
    nodes = "graph" if random else "pruned"  # a random CLT's pruned graph keeps no feature
    args += ["--all-graph-nodes"] if random else []
    assert main([*args, "--tokens", "2048", "--batch-size", "8", "--no-progress"]) == 0
    wanted = graph_features([trace], nodes)
    expected = sorted((layer, int(i)) for layer, idx in wanted.items() for i in idx)
    assert card_ids(cards) == expected and len(expected) > 5
    assert read_manifest(cards)["tokens_seen"] == 17 * 127  # ceil(2048 / 127) contexts
    fired = 0
    for layer, index in expected:
        card = load_card(cards, layer, index)
        assert len(card.top_logits) == 10 and len(card.top_input_tokens) == 10  # the default
        scores = [v for _, v in card.top_input_tokens]
        assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
        if card.top_examples:
            fired += 1
            assert card.top_examples[0].value == pytest.approx(card.act_max, abs=1e-5)
            assert "«" in format_card(card)
    assert fired > len(expected) // 2
