"""`Transcoder.encode_columns`: the activations of some features only."""

from __future__ import annotations

import pytest
import torch
from transcoder_fixtures import make_transcoder, random_inputs

COLUMNS = torch.tensor([13, 2, 7, 7, 0])  # any order, repeats allowed


@pytest.mark.parametrize(
    ("activation", "params"),
    [
        ("jumprelu", {"bandwidth": 0.05}),
        ("relu", {}),
        ("topk", {"k": 3}),
        ("batchtopk", {"k": 3}),
    ],
)
def test_the_columns_are_those_of_the_full_encoding(activation: str, params: dict) -> None:
    transcoder = make_transcoder("plt", activation=activation, activation_params=params)
    if activation == "jumprelu":  # thresholds that cut: some pre-activations fall below
        for layer in range(3):
            threshold = transcoder.encoder(layer).activation.threshold
            assert isinstance(threshold, torch.Tensor)
            threshold.data.fill_(0.2)
    for layer, x in random_inputs(rows=40).items():
        full = transcoder.encode(layer, x)[..., COLUMNS]
        some = transcoder.encode_columns(layer, x, COLUMNS)
        assert some.shape == (2, 40, 5)
        torch.testing.assert_close(some, full, rtol=0, atol=1e-6)
        assert torch.equal(some != 0, full != 0)  # the same features fire at the same tokens
        assert 0 < int((full != 0).sum()) < full.numel()  # the check can see a difference


def test_a_jumprelu_threshold_applies_per_column() -> None:
    transcoder = make_transcoder("plt")
    encoder = transcoder.encoder(0)
    threshold = encoder.activation.threshold
    assert isinstance(threshold, torch.Tensor)
    threshold.data = torch.arange(16, dtype=torch.float32) / 4
    x = random_inputs(rows=50)[0]
    pre = x @ encoder.W_enc + encoder.b_enc
    some = transcoder.encode_columns(0, x, torch.tensor([1, 9]))
    assert torch.equal(some[..., 0] != 0, pre[..., 1] > 0.25)
    assert torch.equal(some[..., 1] != 0, pre[..., 9] > 2.25)
