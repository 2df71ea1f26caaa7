"""Loss terms against hand-computed values; schedules; the training forward pass."""

from __future__ import annotations

import math
from typing import Literal

import pytest
import torch

from circuitscope.training.forward import decoder_norms, sum_layer_outputs, training_forward
from circuitscope.training.losses import (
    learning_rate,
    pre_activation_loss,
    reconstruction_loss,
    tanh_sparsity_loss,
    warmup_factor,
)
from circuitscope.transcoders.config import TranscoderConfig
from circuitscope.transcoders.initialize import random_transcoder


def test_reconstruction_loss_by_hand():
    recon = torch.tensor([[[1.0, 2.0], [0.0, 0.0]], [[0.0, 1.0], [3.0, -1.0]]])  # [2, 2, 2]
    target = torch.tensor([[[0.0, 2.0], [1.0, 1.0]], [[0.0, 0.0], [1.0, 1.0]]])
    # token 0: (1)² + 0 + (1)² + (1)² = 3; token 1: 0 + 1 + 4 + 4 = 9; mean = 6
    assert reconstruction_loss(recon, target).item() == pytest.approx(6.0)


def test_tanh_sparsity_loss_by_hand():
    acts = [torch.tensor([[0.5, 0.0], [0.0, 2.0]]), torch.tensor([[1.0], [0.0]])]
    norms = [torch.tensor([2.0, 0.25]), torch.tensor([0.1])]
    c = 4.0
    token0 = math.tanh(4 * 2.0 * 0.5) + math.tanh(4 * 0.1 * 1.0)
    token1 = math.tanh(4 * 0.25 * 2.0)
    expected = (token0 + token1) / 2
    assert tanh_sparsity_loss(acts, norms, c).item() == pytest.approx(expected, rel=1e-6)


def test_pre_activation_loss_by_hand():
    pre = [torch.tensor([[0.01, 0.5], [-0.2, 0.02]])]
    theta = [torch.tensor([0.03, 0.03])]
    norms = [torch.tensor([2.0, 3.0])]
    # ReLU(θ − h)·‖W‖: token 0: 0.02·2 + 0 = 0.04; token 1: 0.23·2 + 0.01·3 = 0.49
    assert pre_activation_loss(pre, theta, norms).item() == pytest.approx((0.04 + 0.49) / 2)


def test_schedules():
    assert [warmup_factor(s, 100, 0.5) for s in (0, 25, 50, 99)] == [0.0, 0.5, 1.0, 1.0]
    assert warmup_factor(0, 100, 0.0) == 1.0
    lrs = [learning_rate(s, 100, 1.0, 0.1, 0.2) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[50] == 1.0 and lrs[80] == pytest.approx(1.0) and lrs[90] == pytest.approx(0.5)
    assert lrs[99] == pytest.approx(0.05)


@pytest.mark.parametrize("kind", ["clt", "plt"])
def test_training_forward_matches_the_module(kind: Literal["clt", "plt"]):
    config = TranscoderConfig(
        kind=kind, n_layers=3, d_model=8, n_features=[5, 6, 7], activation_params={"bandwidth": 0.1}
    )
    transcoder = random_transcoder(config, seed=3, threshold=0.0)
    x = torch.randn(4, 3, 8, generator=torch.Generator().manual_seed(0))
    out = training_forward(transcoder, x)
    acts, recon = transcoder.forward({layer: x[:, layer] for layer in range(3)})
    for layer in range(3):
        assert torch.allclose(out.activations[layer], acts[layer])
        assert torch.allclose(out.reconstruction[:, layer], recon[layer], atol=1e-6)
        assert torch.allclose(decoder_norms(transcoder)[layer], transcoder.decoder_norms(layer))


def test_sum_layer_outputs_values_and_gradients_by_hand():
    g = torch.Generator().manual_seed(1)
    parts = [torch.randn(2, 3 - i, 4, generator=g, requires_grad=True) for i in range(3)]
    total = sum_layer_outputs(parts, (0, 1, 2), 3)
    expected = torch.zeros(2, 3, 4)
    for start, part in enumerate(parts):
        for slot in range(part.shape[1]):
            expected[:, start + slot] += part[:, slot].detach()
    assert torch.equal(total, expected)
    weights = torch.randn(2, 3, 4, generator=g)
    (total * weights).sum().backward()
    for start, part in enumerate(parts):
        assert part.grad is not None
        assert torch.equal(part.grad, weights[:, start:])


def test_sum_layer_outputs_keeps_bf16_parts_gradients_in_bf16():
    part = torch.ones(2, 1, 3, dtype=torch.bfloat16, requires_grad=True)
    total = sum_layer_outputs([part], (1,), 2)
    assert total.dtype == torch.float32 and float(total.detach()[:, 0].abs().sum()) == 0.0
    total.sum().backward()
    assert part.grad is not None and part.grad.dtype == torch.bfloat16
