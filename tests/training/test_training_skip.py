"""Training a skip transcoder (`--skip-connection`): ŷ_l gains x_l W_skip,l, learned.

The loss by hand; the training forward equals the module's with the term; W_skip starts
at 0 and learns; the folded transcoder acts on raw activations as in training; a run
with it resumes exactly; checkpoints from before the setting resume as skip-free.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Literal

import pytest
import torch
from training_fixtures import (
    TOPK_PLT_RUN,
    rewind_to_checkpoint,
    tiny_store_fixture,  # noqa: F401
    transcoder_weights,
)

from circuitscope.cli import build_parser, main
from circuitscope.cli_args import config_from_namespace
from circuitscope.commands.training_commands import TrainConfig
from circuitscope.data.store_reader import ActivationStore
from circuitscope.training.forward import training_forward
from circuitscope.training.init import init_transcoder, training_config
from circuitscope.training.settings import TrainSettings
from circuitscope.training.sources import StoreSource
from circuitscope.training.trainer import LossModule, resume_conflicts, train
from circuitscope.transcoders.config import TranscoderConfig
from circuitscope.transcoders.initialize import random_transcoder
from circuitscope.transcoders.transcoder import Transcoder


def _hand_transcoder() -> Transcoder:
    """1 layer, d_model 2, 2 TopK (k=1) features, W_skip = [[1, 0], [2, -1]]."""
    config = TranscoderConfig(
        kind="plt",
        n_layers=1,
        d_model=2,
        n_features=[2],
        activation="topk",
        activation_params={"k": 1, "relu": True},
        skip_connection=True,
    )
    transcoder = random_transcoder(config, seed=0)
    with torch.no_grad():
        block = transcoder.layer(0)
        block.W_enc.copy_(torch.eye(2))
        block.b_enc.zero_()
        block.W_dec.copy_(torch.tensor([[1.0, 1.0], [0.0, 2.0]]))
        block.b_dec.copy_(torch.tensor([0.5, 0.0]))
        assert block.W_skip is not None
        block.W_skip.copy_(torch.tensor([[1.0, 0.0], [2.0, -1.0]]))
    return transcoder


def test_the_skip_term_in_the_loss_by_hand():
    # x = [3, 1]: TopK keeps feature 0 (3): 3·[1, 1] + b_dec [0.5, 0] = [3.5, 3];
    #   skip x W_skip = [3 + 2, -1] = [5, -1]; ŷ = [8.5, 2]; y = [8, 4]: error 0.25 + 4
    # x = [0, 2]: keeps feature 1 (2): [0, 4] + [0.5, 0] + skip [4, -2] = [4.5, 2];
    #   y = [4, 2]: error 0.25
    x = torch.tensor([[[3.0, 1.0]], [[0.0, 2.0]]])
    y = torch.tensor([[[8.0, 4.0]], [[4.0, 2.0]]])
    transcoder = _hand_transcoder()
    out = training_forward(transcoder, x)
    assert torch.equal(out.reconstruction, torch.tensor([[[8.5, 2.0]], [[4.5, 2.0]]]))
    settings = TrainSettings(kind="plt", activation="topk", k=1, skip_connection=True)
    loss, terms, _ = LossModule(transcoder, settings)(x, y, lam=0.0)
    assert float(terms["reconstruction"].detach()) == pytest.approx((4.25 + 0.25) / 2)
    loss.backward()
    # d loss / d W_skip = (1/2) Σ_tokens 2 · xᵀ (ŷ − y) = [3,1]ᵀ[0.5,-2] + [0,2]ᵀ[0.5,0]
    grad = transcoder.layer(0).W_skip.grad  # type: ignore[union-attr]
    assert grad is not None
    assert torch.allclose(grad, torch.tensor([[1.5, -6.0], [1.5, -2.0]]))


@pytest.mark.parametrize("kind", ["clt", "plt"])
@pytest.mark.parametrize("sparse", [True, False])
def test_training_forward_matches_the_module_with_a_skip_term(
    kind: Literal["clt", "plt"], sparse: bool
):
    config = TranscoderConfig(
        kind=kind,
        n_layers=3,
        d_model=8,
        n_features=[5, 6, 7],
        activation="topk",
        activation_params={"k": 2, "relu": True},
        skip_connection=True,
    )
    transcoder = random_transcoder(config, seed=3)
    x = torch.randn(4, 3, 8, generator=torch.Generator().manual_seed(0))
    out = training_forward(transcoder, x, sparse=sparse)
    _, recon = transcoder.forward({layer: x[:, layer] for layer in range(3)})
    for layer in range(3):
        skip = x[:, layer] @ transcoder.layer(layer).W_skip  # type: ignore[operator]
        assert skip.abs().max() > 0.1  # the term is there, and large enough to be missed
        assert torch.allclose(out.reconstruction[:, layer], recon[layer], atol=1e-5)


def test_w_skip_starts_at_zero_and_the_settings_reach_the_config():
    settings = TrainSettings(kind="plt", n_features=4, skip_connection=True)
    config = training_config(settings, 2, 3, "m", "llama")
    assert config.skip_connection
    transcoder = init_transcoder(config, settings, torch.zeros(2, 3))
    assert all(torch.equal(transcoder.layer(i).W_skip, torch.zeros(3, 3)) for i in range(2))  # type: ignore[arg-type]
    assert not training_config(TrainSettings(), 2, 3, "m", "llama").skip_connection
    args = build_parser().parse_args(["train", "m", "o", "--skip-connection"])
    assert config_from_namespace(TrainConfig, args).skip_connection
    assert not TrainSettings().skip_connection  # off unless asked for


FAST = dict(
    **TOPK_PLT_RUN,
    lr=2e-3,
    log_every=50,
    checkpoint_every=0,
)


def _train(store: Path, out: Path, **changes: object) -> dict:
    settings = TrainSettings(**{**FAST, **changes})  # type: ignore[arg-type]
    source = StoreSource(ActivationStore(store), settings.batch_size, settings.seed)
    return train(source, settings, out, progress=False).final


@torch.no_grad()
def _raw_nmse(transcoder: Transcoder, store: ActivationStore) -> float:
    """Normalized MSE of a saved (folded) transcoder on the store's raw activations."""
    x, y = (t.float() for t in store.read_shard(0))
    _, recon = transcoder.forward({layer: x[:, layer] for layer in range(3)})
    errors = [(recon[i] - y[:, i]).pow(2).sum(-1).mean() for i in range(3)]
    return float(torch.stack(errors).div(store.stats.out_variance().float()).mean())


def test_a_skip_transcoder_learns_w_skip_and_acts_on_raw_activations(
    tiny_store: Path, tmp_path: Path
):
    plain = _train(tiny_store, tmp_path / "plain", steps=150)
    skip = _train(tiny_store, tmp_path / "skip", steps=150, skip_connection=True)
    assert skip["nmse"] < plain["nmse"] - 0.02  # the linear part no longer costs features
    saved = Transcoder.load(tmp_path / "skip" / "transcoder", lazy=False)
    assert saved.config.skip_connection and saved.config.normalization == "folded"
    assert saved.config.training["settings"]["skip_connection"] is True
    skips = [saved.layer(i).W_skip for i in range(3)]
    assert all(w is not None and w.abs().max() > 0.01 for w in skips)
    # the folded W_skip (s_in / s_out) on raw activations: the error training logged
    store = ActivationStore(tiny_store)
    raw_nmse = _raw_nmse(saved, store)
    assert raw_nmse == pytest.approx(skip["nmse"], abs=0.08)
    with torch.no_grad():
        for w in skips:
            w.zero_()  # type: ignore[union-attr]
    assert _raw_nmse(saved, store) > raw_nmse + 0.05


def test_a_run_with_a_skip_term_resumes_exactly(tiny_store: Path, tmp_path: Path):
    flags = ["--kind", "plt", "--activation", "topk", "--k", "4", "--n-features", "64"]
    flags += ["--batch-size", "256", "--steps", "12", "--autocast", "off", "--no-progress"]
    flags += ["--skip-connection", "--log-every", "1"]
    flags += ["--checkpoint-every", "6", "--keep-checkpoints", "4"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(["train", str(tiny_store), str(whole), *flags]) == 0
    assert json.loads((whole / "train_config.json").read_text())["skip_connection"] is True
    shutil.copytree(whole, cut)
    rewind_to_checkpoint(cut, 6, 12)
    assert main(["train", str(cut), "--resume", "--no-progress"]) == 0
    a, b = transcoder_weights(whole / "transcoder"), transcoder_weights(cut / "transcoder")
    assert any("W_skip" in key for key in a) and a.keys() == b.keys()
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_checkpoints_from_before_the_setting_resume_only_without_it():
    old = dataclasses.asdict(TrainSettings())
    del old["skip_connection"]
    assert resume_conflicts(old, TrainSettings()) == []
    assert resume_conflicts(old, TrainSettings(skip_connection=True)) == ["skip_connection"]
