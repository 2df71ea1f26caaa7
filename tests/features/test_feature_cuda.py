"""`circuitscope features` on CUDA (run with `pytest -m gpu` where a GPU is): the same
cards as on the CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from circuitscope.cli import main
from circuitscope.features.files import card_ids, read_feature, read_manifest
from circuitscope.testing.tiny_graphs import write_tiny_corpus, write_tiny_folders

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

COMMON = ["--tokens", "900", "--context-length", "16", "--batch-size", "4", "--no-progress"]
COMMON += ["--top-k", "4", "--intervals", "4", "--per-interval", "2", "--input-tokens", "3"]


def test_cuda_cards_equal_cpu_cards(tmp_path: Path):
    model, transcoder = write_tiny_folders(tmp_path)
    corpus = write_tiny_corpus(tmp_path)
    for device in ("cpu", "cuda"):
        args = ["features", str(model), str(transcoder), "-o", str(tmp_path / device)]
        assert main([*args, "--corpus", str(corpus), "--device", device, *COMMON]) == 0
    ids = card_ids(tmp_path / "cpu")
    assert ids == card_ids(tmp_path / "cuda") and len(ids) == 3 * 24
    tokens = read_manifest(tmp_path / "cpu")["tokens_seen"]
    assert read_manifest(tmp_path / "cuda")["tokens_seen"] == tokens
    for layer, index in ids:
        cpu = read_feature(tmp_path / "cpu", layer, index)
        cuda = read_feature(tmp_path / "cuda", layer, index)
        top_cpu, top_cuda = (c["examples_quantiles"][0]["examples"] for c in (cpu, cuda))
        assert [e["tokens"] for e in top_cuda] == [e["tokens"] for e in top_cpu]
        for a, b in zip(top_cpu, top_cuda, strict=True):
            assert b["train_token_ind"] == a["train_token_ind"]
            torch.testing.assert_close(
                torch.tensor(b["tokens_acts_list"]),
                torch.tensor(a["tokens_acts_list"]),
                rtol=1e-4,
                atol=1e-5,
            )
        assert cuda["activation_frequency"] == pytest.approx(cpu["activation_frequency"])
        assert cuda["top_logits"] == cpu["top_logits"]
