"""JumpReLU layers decode only the entries whose gradients matter in training (active,
or in θ's straight-through window): the same reconstruction and gradients (thresholds'
included) as the dense matmul."""

from __future__ import annotations

from typing import Literal

import pytest
import torch

from circuitscope.training import forward
from circuitscope.training.forward import decode_entries, jumprelu_entries, training_forward
from circuitscope.transcoders.activations import JumpReLU
from circuitscope.transcoders.config import TranscoderConfig
from circuitscope.transcoders.initialize import random_transcoder


def _dyadic(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Small multiples of 1/4: sums and products of a few of them are exact in float64."""
    return torch.randint(-8, 9, shape, generator=generator).double() / 4


def _jumprelu_transcoder(kind: Literal["clt", "plt"], seed: int):
    config = TranscoderConfig(
        kind=kind,
        n_layers=3,
        d_model=8,
        n_features=[5, 6, 7],
        activation="jumprelu",
        activation_params={"bandwidth": 1.0},
    )
    g = torch.Generator().manual_seed(seed)
    transcoder = random_transcoder(config, seed=seed).double()
    with torch.no_grad():
        for p in transcoder.parameters():
            p.copy_(_dyadic(tuple(p.shape), g))
        for layer in range(3):  # thresholds from 0.25 to 2: some features fire, most not
            threshold = _threshold(transcoder, layer)
            threshold.copy_(torch.randint(1, 9, threshold.shape, generator=g).double() / 4)
    return transcoder, g


def _threshold(transcoder, layer: int) -> torch.Tensor:
    activation = transcoder.layer(layer).activation
    assert isinstance(activation, JumpReLU)
    return activation.threshold


def _run(transcoder, x: torch.Tensor, y: torch.Tensor, sparse: bool):
    for p in transcoder.parameters():
        p.grad = None
    out = training_forward(transcoder, x, sparse=sparse)
    # the reconstruction's error plus a term on the activations (as the sparsity loss)
    penalty = sum((a * a).sum() for a in out.activations)
    ((out.reconstruction - y).pow(2).sum() + penalty).backward()
    grads = {n: p.grad.clone() for n, p in transcoder.named_parameters() if p.grad is not None}
    return out, grads


@pytest.mark.parametrize("kind", ["clt", "plt"])
def test_decoding_the_nonzero_activations_equals_the_dense_path_exactly(kind, monkeypatch):
    monkeypatch.setattr(forward, "SPARSE_DECODE_DENSITY", 1.0)  # every layer decodes sparsely
    calls = []
    original = forward.decode_entries
    monkeypatch.setattr(
        forward, "decode_entries", lambda a, e, d: calls.append(int(e.sum())) or original(a, e, d)
    )
    transcoder, g = _jumprelu_transcoder(kind, seed=3)
    x, y = _dyadic((6, 3, 8), g), _dyadic((6, 3, 8), g)
    dense, dense_grads = _run(transcoder, x, y, sparse=False)
    assert calls == []
    sparse, sparse_grads = _run(transcoder, x, y, sparse=True)
    assert len(calls) == 3
    fired = sum(int((a != 0).sum()) for a in sparse.activations)
    # the decoded entries: more than the active ones (the window's), fewer than all
    assert 0 < fired < sum(calls) < sum(a.numel() for a in sparse.activations)
    assert torch.equal(sparse.reconstruction, dense.reconstruction)
    assert sparse_grads.keys() == dense_grads.keys()
    assert any(name.endswith("threshold") for name in dense_grads)
    for name, grad in dense_grads.items():
        assert torch.equal(sparse_grads[name], grad), name


def test_dense_activations_keep_the_matmul(monkeypatch):
    """Above SPARSE_DECODE_DENSITY nonzero, a layer decodes by the dense matmul."""
    monkeypatch.setattr(forward, "decode_entries", lambda *_: pytest.fail("sparse decode"))
    transcoder, g = _jumprelu_transcoder("plt", seed=4)
    with torch.no_grad():
        for layer in range(3):
            _threshold(transcoder, layer).fill_(-100.0)  # every feature fires
    training_forward(transcoder, _dyadic((6, 3, 8), g), sparse=True)


def test_decode_entries_with_empty_rows_and_none_at_all():
    decoder = torch.arange(12.0).reshape(4, 3).requires_grad_()
    a = torch.tensor([[0.0, 2.0, 0.0, -1.0], [0.0, 0.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0]])
    a.requires_grad_()
    entries = a.detach() != 0
    entries[2, 3] = True  # an entry at 0 whose gradient is wanted
    out = decode_entries(a, entries, decoder)
    torch.testing.assert_close(out, a.detach() @ decoder.detach(), rtol=0, atol=0)
    out.sum().backward()
    assert decoder.grad is not None and a.grad is not None
    torch.testing.assert_close(decoder.grad, a.detach().sum(0).unsqueeze(1).expand(4, 3))
    # the entries get their gradient (each the sum of its decoder row), the others 0
    expected = torch.where(entries, decoder.detach().sum(1).expand(3, 4), 0.0)
    torch.testing.assert_close(a.grad, expected)
    nothing = decode_entries(torch.zeros(2, 4), torch.zeros(2, 4, dtype=torch.bool), decoder)
    assert torch.equal(nothing, torch.zeros(2, 3))


def test_jumprelu_entries_are_the_active_and_the_window():
    activation = JumpReLU(3, bandwidth=0.5)
    with torch.no_grad():
        activation.threshold.copy_(torch.tensor([0.0, 1.0, 2.0]))
    h = torch.tensor([[0.3, 0.7, 1.0], [-0.2, 2.0, 2.24], [-0.3, 0.74, 1.74]])
    # θ 0 / 1 / 2, window ±0.25: active h > θ, or |h - θ| < 0.25
    expected = [[True, False, False], [True, True, True], [False, False, False]]
    assert jumprelu_entries(h, activation).tolist() == expected
