"""Training straight from model forward passes (`ModelSource`: no activation store)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from training_fixtures import tiny_documents

from circuitscope.data.collect import record_batch
from circuitscope.data.packing import pack_contexts
from circuitscope.models.adapter import ModelAdapter
from circuitscope.testing.tiny_models import tiny_model, tiny_tokenizer
from circuitscope.training.settings import TrainSettings
from circuitscope.training.sources import ModelSource
from circuitscope.training.trainer import train
from circuitscope.transcoders.transcoder import Transcoder


@torch.no_grad()
def _nmse(transcoder: Transcoder, x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean over layers of Σ‖ŷ − y‖² / Σ‖y − ȳ‖² on raw activations [tokens, layers, d]."""
    n_layers = x.shape[1]
    _, recon = transcoder.forward({layer: x[:, layer] for layer in range(n_layers)})
    values = [
        (recon[layer] - y[:, layer]).pow(2).sum() / (y[:, layer] - y[:, layer].mean(0)).pow(2).sum()
        for layer in range(n_layers)
    ]
    return float(torch.stack(values).mean())


def test_training_from_model_forward_passes_lowers_nmse(tmp_path: Path):
    adapter = ModelAdapter(tiny_model("llama"))
    tokenizer = tiny_tokenizer()
    documents = tiny_documents()

    def contexts():
        return pack_contexts(documents, tokenizer, 32)

    settings = TrainSettings(
        kind="plt",
        activation="topk",
        k=8,
        n_features=64,
        steps=120,
        batch_size=256,
        lr=2e-3,
        autocast="off",
        log_every=20,
        checkpoint_every=0,
    )
    calls: list[int] = []
    source = ModelSource(adapter, contexts, settings.batch_size, 0, "tiny-llama", "llama")
    original = source.batch

    def counting(step: int, rows: tuple[int, int] | None):
        calls.append(step)
        return original(step, rows)

    source.batch = counting  # type: ignore[method-assign]
    result = train(source, settings, tmp_path / "run", progress=False)
    assert calls == list(range(120))  # one model forward batch per step, in order
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "checkpoints",
        "train_log.jsonl",
        "transcoder",
    ]  # no activation store was written
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").open()]
    assert log[0]["nmse"] > log[-1]["nmse"]
    assert result.final["l0"] <= 8 and result.final["nmse"] < 0.6

    # On fresh text, the trained transcoder beats the untrained one (and the mean, 1.0).
    held = torch.stack(list(pack_contexts(tiny_documents(40, seed=7), tokenizer, 32))[:16])
    x, y = record_batch(adapter, held)
    trained = Transcoder.load(tmp_path / "run" / "transcoder", lazy=False)
    untrained = Transcoder.load(tmp_path / "run" / "transcoder", lazy=False)
    with torch.no_grad():
        for param in untrained.parameters():
            param.mul_(0.0)  # predicts 0 everywhere: nMSE well above 1
    after = _nmse(trained, x.float(), y.float())
    assert after < 0.6 and after < _nmse(untrained, x.float(), y.float())
