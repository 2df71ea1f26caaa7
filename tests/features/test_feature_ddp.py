"""Two processes (torchrun, gloo) write exactly the cards of one process."""

from __future__ import annotations

from pathlib import Path

import pytest
from ddp_runs import run_one_and_two

from circuitscope.features.files import card_ids, read_feature, read_labels, read_manifest
from circuitscope.testing.tiny_graphs import write_tiny_corpus, write_tiny_folders

ARGS = ["--tokens", "900", "--context-length", "16", "--batch-size", "3", "--no-progress"]
ARGS += ["--top-k", "4", "--intervals", "4", "--per-interval", "2", "--input-tokens", "3"]


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path: Path) -> None:
    model, transcoder = write_tiny_folders(tmp_path)
    corpus = write_tiny_corpus(tmp_path)
    common = ["features", str(model), str(transcoder), "--corpus", str(corpus), *ARGS]
    one, two = (common + ["-o", str(tmp_path / name)] for name in ("one", "two"))
    _, two_output = run_one_and_two(["-m", "circuitscope"], one, two)
    assert two_output.count("wrote 72 cards") == 1  # rank 0 alone writes
    a, b = tmp_path / "one", tmp_path / "two"
    assert read_manifest(a) == read_manifest(b)
    assert card_ids(a) == card_ids(b) and len(card_ids(a)) == 72
    fired = 0
    for layer, index in card_ids(a):
        card = read_feature(a, layer, index)
        assert card == read_feature(b, layer, index)
        fired += card["act_max"] > 0
    assert fired > 10
    assert read_labels(a) == read_labels(b)
