"""The sparse TopK training path equals the dense one: values, reconstruction, gradients."""

from __future__ import annotations

from typing import Literal

import pytest
import torch

from circuitscope.training.forward import (
    encoder_weight_grad,
    row_topk,
    sparse_decode,
    sparse_topk_encode,
    training_forward,
)
from circuitscope.transcoders.config import TranscoderConfig
from circuitscope.transcoders.initialize import random_transcoder


def _config(kind: Literal["clt", "plt"], relu: bool) -> TranscoderConfig:
    return TranscoderConfig(
        kind=kind,
        n_layers=3,
        d_model=8,
        n_features=[5, 6, 7],
        activation="topk",
        activation_params={"k": 3, "relu": relu},
    )


def _dyadic(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Small multiples of 1/4: sums and products of a few of them are exact in float64."""
    return torch.randint(-8, 9, shape, generator=generator).double() / 4


def _run(transcoder, x: torch.Tensor, y: torch.Tensor, sparse: bool):
    for p in transcoder.parameters():
        p.grad = None
    out = training_forward(transcoder, x, sparse=sparse)
    (out.reconstruction - y).pow(2).sum().backward()
    grads = {n: p.grad.clone() for n, p in transcoder.named_parameters() if p.grad is not None}
    return out, grads


@pytest.mark.parametrize("kind", ["clt", "plt"])
@pytest.mark.parametrize("relu", [True, False])
def test_sparse_topk_path_equals_the_dense_path_exactly(kind, relu: bool):
    g = torch.Generator().manual_seed(1)
    transcoder = random_transcoder(_config(kind, relu), seed=3).double()
    with torch.no_grad():
        for p in transcoder.parameters():
            p.copy_(_dyadic(tuple(p.shape), g))
    x = _dyadic((6, 3, 8), g)
    y = _dyadic((6, 3, 8), g)
    dense, dense_grads = _run(transcoder, x, y, sparse=False)
    sparse, sparse_grads = _run(transcoder, x, y, sparse=True)
    assert all(t is not None for t in sparse.top) and all(t is None for t in dense.top)
    assert torch.equal(sparse.reconstruction, dense.reconstruction)
    for layer in range(3):
        assert torch.equal(sparse.activations[layer], dense.activations[layer])
        assert torch.equal(sparse.pre_activations[layer], dense.pre_activations[layer])
    for got, want in zip(sparse.fire_counts(), dense.fire_counts(), strict=True):
        assert torch.equal(got, want)
    assert torch.equal(sparse.l0_per_layer(), dense.l0_per_layer())
    assert sparse_grads.keys() == dense_grads.keys()
    for name, grad in dense_grads.items():
        assert torch.equal(sparse_grads[name], grad), name


def test_sparse_path_matches_dense_on_random_floats():
    transcoder = random_transcoder(_config("clt", True), seed=5).double()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(16, 3, 8, generator=g, dtype=torch.float64)
    y = torch.randn(16, 3, 8, generator=g, dtype=torch.float64)
    dense, dense_grads = _run(transcoder, x, y, sparse=False)
    sparse, sparse_grads = _run(transcoder, x, y, sparse=True)
    torch.testing.assert_close(sparse.reconstruction, dense.reconstruction, rtol=0, atol=1e-12)
    for name, grad in dense_grads.items():
        torch.testing.assert_close(sparse_grads[name], grad, rtol=0, atol=1e-11)


def test_encode_input_gradient_and_decode():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(5, 8, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, 10, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(10, generator=g, dtype=torch.float64, requires_grad=True)
    dec = torch.randn(10, 4, generator=g, dtype=torch.float64, requires_grad=True)
    values, indices, _ = sparse_topk_encode(x, w, b, 3, True)
    (sparse_decode(values, indices, dec) ** 2).sum().backward()
    sparse_grads = [t.grad.clone() for t in (x, w, b, dec)]  # type: ignore[union-attr]
    for t in (x, w, b, dec):
        t.grad = None
    h = x @ w + b
    mask = torch.zeros_like(h).scatter_(-1, h.detach().topk(3).indices, 1.0)
    ((torch.relu(h * mask) @ dec) ** 2).sum().backward()
    for got, t in zip(sparse_grads, (x, w, b, dec), strict=True):
        torch.testing.assert_close(got, t.grad, rtol=0, atol=1e-11)


def test_encoder_weight_grad_equals_dense_autograd():
    """The sparse-dense matmul gradient of W_enc equals autograd's through a dense mask."""
    g = torch.Generator().manual_seed(6)
    x = torch.randn(12, 8, generator=g)
    w = torch.randn(8, 40, generator=g, requires_grad=True)
    h = x @ w
    indices = h.detach().topk(5).indices
    grad_values = torch.randn(12, 5, generator=g)
    dense_grad = torch.zeros(12, 40).scatter_(-1, indices, grad_values)
    h.backward(dense_grad)
    got = encoder_weight_grad(x, grad_values, indices, 40)
    assert got.shape == (40, 8)
    torch.testing.assert_close(got.t(), w.grad, rtol=0, atol=1e-6)


@pytest.mark.parametrize("ties", [False, True])
def test_row_topk_equals_topk_on_wide_rows(ties: bool):
    g = torch.Generator().manual_seed(7)
    n, k = 16 * 4 * 8, 8  # wide enough for the two-stage path (n / 16 >= 4k)
    h = torch.randn(64, n, generator=g)
    if ties:
        h = (h * 2).round() / 2  # many equal values
    h[3] = -1.0  # a row of ties only
    values, indices = row_topk(h, k)
    want = h.topk(k)
    assert torch.equal(values, want.values)
    assert torch.equal(h.gather(1, indices), values)
    assert all(len(set(row.tolist())) == k for row in indices)
    if not ties:
        assert torch.equal(indices[4:], want.indices[4:])
    narrow = torch.randn(5, 7, generator=g)  # falls back to topk
    assert torch.equal(row_topk(narrow, 3)[1], narrow.topk(3).indices)


def test_sparse_path_gradients_on_wide_layers_match_dense():
    """Float32, 256 features per layer: the two-stage top-k and the sparse backward."""
    config = TranscoderConfig(
        kind="clt",
        n_layers=2,
        d_model=8,
        n_features=[256, 256],
        activation="topk",
        activation_params={"k": 4, "relu": True},
    )
    transcoder = random_transcoder(config, seed=8)
    g = torch.Generator().manual_seed(9)
    x = torch.randn(16, 2, 8, generator=g)
    y = torch.randn(16, 2, 8, generator=g)
    dense, dense_grads = _run(transcoder, x, y, sparse=False)
    sparse, sparse_grads = _run(transcoder, x, y, sparse=True)
    torch.testing.assert_close(sparse.reconstruction, dense.reconstruction, rtol=1e-6, atol=1e-6)
    assert sparse_grads.keys() == dense_grads.keys()
    for name, grad in dense_grads.items():  # float32 rounding only (gradients up to ~10)
        torch.testing.assert_close(sparse_grads[name], grad, rtol=1e-6, atol=1e-6)
