"""`--encoder-init data`: each feature's encoder starts along one training token's input.

The weights by hand; a run reads them from its first batches and resumes exactly; the
setting must match to resume, and checkpoints from before it resume as uniform.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from training_fixtures import (
    TOPK_PLT_RUN,
    rewind_to_checkpoint,
    tiny_store_fixture,  # noqa: F401
    transcoder_weights,
)

from circuitscope.cli import main
from circuitscope.data.store_reader import ActivationStore
from circuitscope.training.init import data_encoders, init_transcoder, training_config
from circuitscope.training.settings import TrainSettings
from circuitscope.training.sources import StoreSource
from circuitscope.training.trainer import (
    input_samples,
    normalization_scales,
    resume_conflicts,
    train,
)


def test_data_encoders_by_hand():
    # samples [2, 0], [0, 2], [4, 4]: mean [2, 2]; the first two centred: [0, -2], [-2, 0]
    samples = torch.tensor([[2.0, 0.0], [0.0, 2.0], [4.0, 4.0]])
    weights, bias = data_encoders(samples, 2)
    s = 3**-0.5
    torch.testing.assert_close(weights, torch.tensor([[0.0, -s], [-s, 0.0]]))
    torch.testing.assert_close(bias, torch.tensor([2 * s, 2 * s]))
    x = torch.tensor([[5.0, 1.0]])  # (x - mean) = [3, -1]: pre-activations [s, -3s]
    torch.testing.assert_close(x @ weights + bias, torch.tensor([[s, -3 * s]]))
    with pytest.raises(ValueError, match="3 features need as many samples, got 2"):
        data_encoders(samples[:2], 3)


def test_a_run_starts_from_its_first_tokens_inputs(tiny_store: Path):
    settings = TrainSettings(**TOPK_PLT_RUN, encoder_init="data")  # type: ignore[arg-type]
    source = StoreSource(ActivationStore(tiny_store), settings.batch_size, settings.seed)
    s_in, _ = normalization_scales(source)
    samples = input_samples(source, settings, s_in)
    assert samples.shape == (64, 3, 32)
    first = source.batch(0, None)[0][:64] * s_in[None, :, None]
    torch.testing.assert_close(samples, first)
    config = training_config(settings, 3, 32, "tiny", "llama")
    transcoder = init_transcoder(config, settings, torch.zeros(3, 32), samples)
    for layer in range(3):
        weights, bias = data_encoders(samples[:, layer], 64)
        assert torch.equal(transcoder.layer(layer).W_enc, weights)
        assert torch.equal(transcoder.layer(layer).b_enc, bias)
    with pytest.raises(ValueError, match="needs input samples"):
        init_transcoder(config, settings, torch.zeros(3, 32))


def test_a_run_with_data_encoders_resumes_exactly(tiny_store: Path, tmp_path: Path):
    flags = ["--kind", "plt", "--activation", "topk", "--k", "4", "--n-features", "300"]
    flags += ["--batch-size", "256", "--steps", "12", "--autocast", "off", "--no-progress"]
    flags += ["--encoder-init", "data", "--log-every", "1"]
    flags += ["--checkpoint-every", "6", "--keep-checkpoints", "4"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(["train", str(tiny_store), str(whole), *flags]) == 0
    assert json.loads((whole / "train_config.json").read_text())["encoder_init"] == "data"
    shutil.copytree(whole, cut)
    rewind_to_checkpoint(cut, 6, 12)
    assert main(["train", str(cut), "--resume", "--no-progress"]) == 0
    a, b = transcoder_weights(whole / "transcoder"), transcoder_weights(cut / "transcoder")
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def test_the_setting_must_match_to_resume_and_old_checkpoints_were_uniform():
    old = dataclasses.asdict(TrainSettings())
    del old["encoder_init"]
    assert resume_conflicts(old, TrainSettings()) == []
    assert resume_conflicts(old, TrainSettings(encoder_init="data")) == ["encoder_init"]


@pytest.mark.slow
def test_data_encoders_leave_fewer_features_dead_on_the_tiny_store(
    tiny_store: Path, tmp_path: Path
):
    """Measured: 300 steps, 64 TopK features (k = 4), dead after 5,000 tokens: uniform
    30% dead, normalized MSE 0.467; data 17%, 0.446."""
    finals = {}
    for init in ("uniform", "data"):
        settings = TrainSettings(
            **TOPK_PLT_RUN,  # type: ignore[arg-type]
            steps=300,
            encoder_init=init,  # type: ignore[arg-type]
            dead_after_tokens=5000,
        )
        source = StoreSource(ActivationStore(tiny_store), settings.batch_size, settings.seed)
        finals[init] = train(source, settings, tmp_path / init, progress=False)
    uniform, data = finals["uniform"].final, finals["data"].final
    assert data["dead"] < uniform["dead"] - 0.08
    assert data["nmse"] < uniform["nmse"] - 0.01
