"""TopK → JumpReLU thresholds: the calibration's θ by brute force, and the converted layers."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from training_fixtures import model_and_corpus_folders

from circuitscope.cli import main
from circuitscope.errors import CircuitscopeError
from circuitscope.models.adapter import ModelAdapter
from circuitscope.testing.tiny_models import tiny_model
from circuitscope.testing.tiny_transcoders import config_for
from circuitscope.training.thresholds import LargestValues, threshold_calibration, with_thresholds
from circuitscope.transcoders.initialize import random_transcoder
from circuitscope.transcoders.transcoder import Transcoder

K = 3


def _topk_pair() -> tuple[ModelAdapter, Transcoder]:
    adapter = ModelAdapter(tiny_model("llama"))
    config = config_for(adapter, "plt", 24, skip_connection=True)
    config = dataclasses.replace(
        config, activation="topk", activation_params={"k": K, "relu": True}
    )
    return adapter, random_transcoder(config, seed=1)


def test_largest_values_keeps_the_largest_over_batches():
    kept = LargestValues(3)
    kept.add(torch.tensor([3.0, 1.0, 2.0]))
    kept.add(torch.tensor([[5.0], [0.0]]))
    assert sorted(kept.values.tolist()) == [2.0, 3.0, 5.0] and kept.smallest() == 2.0
    with pytest.raises(CircuitscopeError, match="fewer than the 4"):
        LargestValues(4).smallest()


def test_each_layers_threshold_is_the_k_n_plus_first_largest_pre_activation():
    adapter, transcoder = _topk_pair()
    ids = torch.randint(3, 300, (3, 7), generator=torch.Generator().manual_seed(0))
    ids[:, 0] = 1
    n_tokens = 14  # the first 14 of the 18 non-BOS positions, across two batches
    thresholds = threshold_calibration(adapter, transcoder, [ids[:2], ids[2:]], n_tokens)
    result = adapter.run(ids, capture=[f"layers.{i}.mlp_in" for i in range(3)])
    assert min(thresholds) > 0  # so every layer's count below is checked
    for layer, theta in enumerate(thresholds):
        x = result.cache[f"layers.{layer}.mlp_in"][:, 1:].reshape(-1, adapter.d_model)[:n_tokens]
        h = transcoder.pre_activations(layer, x).detach()
        expected = h.reshape(-1).sort(descending=True).values[K * n_tokens]
        assert theta == pytest.approx(max(0.0, float(expected)), abs=1e-6)
        if theta > 0:  # exactly k per token on average above it
            assert int((h > theta).sum()) == K * n_tokens


def test_the_converted_layers_are_jumprelu_at_those_thresholds():
    _, transcoder = _topk_pair()
    thresholds = [0.1, 0.0, 0.3]
    converted = with_thresholds(transcoder, thresholds)
    assert converted.config.activation == "jumprelu"
    assert converted.config.training["thresholds"]["per_layer"] == thresholds
    x = torch.randn(5, transcoder.config.d_model, generator=torch.Generator().manual_seed(2))
    for layer, theta in enumerate(thresholds):
        h = transcoder.pre_activations(layer, x)
        assert torch.equal(converted.encode(layer, x), h * (h > theta))
        old, new = transcoder.read_layer_tensors(layer), converted.read_layer_tensors(layer)
        assert all(torch.equal(old[name], new[name]) for name in old)
    with pytest.raises(CircuitscopeError, match="need 3 thresholds"):
        with_thresholds(transcoder, [0.1])
    with pytest.raises(CircuitscopeError, match="replace a TopK activation"):
        threshold_calibration(ModelAdapter(tiny_model("llama")), converted, [], 4)


def test_the_command_writes_a_jumprelu_transcoder_that_eval_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    model, corpus = model_and_corpus_folders(tmp_path, 60, seed=4)
    adapter = ModelAdapter(tiny_model("llama"))
    topk = dataclasses.replace(
        config_for(adapter, "plt", 24), activation="topk", activation_params={"k": K, "relu": True}
    )
    random_transcoder(topk, seed=1).save(tmp_path / "topk")
    out = tmp_path / "jumprelu"
    args = ["thresholds", str(model), str(tmp_path / "topk"), str(out), "--corpus", str(corpus)]
    args += ["--tokens", "200", "--context-length", "16"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert (
        "thresholds from 200 tokens" in printed
        and f"wrote the JumpReLU transcoder to {out}" in printed
    )
    config = json.loads((out / "config.json").read_text())
    assert config["activation"] == "jumprelu"
    saved = json.loads((out / "thresholds_config.json").read_text())
    assert saved["tokens"] == 200 and saved["transcoder"] == str(tmp_path / "topk")
    assert len(config["training"]["thresholds"]["per_layer"]) == 3
    eval_args = ["eval", str(model), str(out), "--corpus", str(corpus), "--context-length", "16"]
    assert main([*eval_args, "--tokens", "64"]) == 0

    assert main(args) == 2  # OUT is not empty now
    assert "exists and is not empty (pass --force" in capsys.readouterr().err
    assert main(["thresholds", str(model), str(out), str(tmp_path / "again")] + args[4:]) == 2
    assert "thresholds replace a TopK one" in capsys.readouterr().err
