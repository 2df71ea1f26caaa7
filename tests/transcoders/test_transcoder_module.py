"""The Transcoder module: CLT vs PLT, dense vs sparse decoding, decoder geometry."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from transcoder_fixtures import D_MODEL, make_config, make_transcoder, random_inputs

from circuitscope.configs import missing_field_docs
from circuitscope.errors import CircuitscopeError
from circuitscope.transcoders.config import TranscoderConfig
from circuitscope.transcoders.layer import W_DEC
from circuitscope.transcoders.normalization import fold_scales
from circuitscope.transcoders.transcoder import Transcoder


def test_every_config_field_is_documented() -> None:
    assert missing_field_docs(TranscoderConfig) == []


def test_config_round_trips_through_dict_and_rejects_nonsense() -> None:
    config = make_config("clt")
    assert TranscoderConfig.from_dict(config.to_dict()) == config
    with pytest.raises(CircuitscopeError, match="unknown keys colour"):
        TranscoderConfig.from_dict({**config.to_dict(), "colour": "red"})
    with pytest.raises(CircuitscopeError, match="one positive count per layer"):
        make_config("clt", n_features=[4, 4])
    with pytest.raises(CircuitscopeError, match="kind must be"):
        make_config("sae")


def test_clt_with_zero_later_decoders_equals_plt() -> None:
    plt = make_transcoder("plt", seed=3)
    clt_config = dataclasses.replace(plt.config, kind="clt")
    layers = []
    for layer in range(plt.config.n_layers):
        tensors = plt.read_layer_tensors(layer)
        n_out = clt_config.n_outputs(layer)
        w_dec = torch.zeros(tensors[W_DEC].shape[0], n_out, D_MODEL)
        w_dec[:, 0] = tensors[W_DEC]
        layers.append({**tensors, W_DEC: w_dec})
    clt = Transcoder.from_layers(clt_config, layers)
    inputs = random_inputs()
    acts_p, rec_p = plt(inputs)
    acts_c, rec_c = clt(inputs)
    for layer in inputs:
        assert torch.equal(acts_p[layer], acts_c[layer])
        assert torch.equal(rec_p[layer], rec_c[layer])
    assert torch.equal(plt.decoder_norms(1), clt.decoder_norms(1))


def test_clt_decode_is_sum_over_earlier_layers() -> None:
    clt = make_transcoder("clt", seed=4)
    inputs = random_inputs()
    acts, rec = clt(inputs)
    for out in range(3):
        expected = clt.layer(out).b_dec.clone()
        for source in range(out + 1):
            w = clt.layer(source).W_dec[:, out - source]
            expected = expected + acts[source] @ w
        assert torch.allclose(rec[out], expected, atol=1e-6)


def test_sparse_decode_equals_dense() -> None:
    for kind in ("clt", "plt"):
        transcoder = make_transcoder(kind, seed=5, skip_connection=True)
        inputs = random_inputs()
        acts, dense = transcoder(inputs)
        sparse = transcoder.decode_sparse(acts, inputs)
        for layer in inputs:
            assert torch.allclose(dense[layer], sparse[layer], atol=1e-6)


def test_skip_connection_adds_mlp_in_times_w_skip() -> None:
    plt = make_transcoder("plt", seed=6, skip_connection=True)
    inputs = random_inputs()
    acts, rec = plt(inputs)
    block = plt.layer(2)
    assert block.W_skip is not None
    expected = acts[2] @ block.W_dec + block.b_dec + inputs[2] @ block.W_skip
    assert torch.allclose(rec[2], expected, atol=1e-6)
    with pytest.raises(ValueError, match="skip connection"):
        plt.decode(acts)


def test_clt_decode_needs_every_earlier_layer() -> None:
    clt = make_transcoder("clt")
    acts, _ = clt(random_inputs())
    with pytest.raises(ValueError, match=r"needs the activations of layers \[0\]"):
        clt.decode({1: acts[1]})


def test_decoder_vectors_and_norms() -> None:
    clt = make_transcoder("clt", seed=7)
    vectors = clt.decoder_vectors(1, 5)
    assert vectors.shape == (2, D_MODEL)
    assert torch.equal(vectors, clt.layer(1).W_dec[5])
    norms = clt.decoder_norms(1)
    assert norms.shape == (16,)
    assert torch.allclose(norms[5], vectors.flatten().norm())
    assert clt.decoder_vectors(2, 0).shape == (1, D_MODEL)
    assert make_transcoder("plt").decoder_vectors(0, 3).shape == (1, D_MODEL)


def test_topk_transcoder_keeps_k_features() -> None:
    transcoder = make_transcoder("plt", activation="topk", activation_params={"k": 3})
    acts, _ = transcoder(random_inputs())
    assert bool(((acts[0] != 0).sum(-1) <= 3).all())


def test_folding_scales_keeps_activations_and_scales_outputs() -> None:
    for kind in ("clt", "plt"):
        transcoder = make_transcoder(kind, seed=8, skip_connection=True)
        inputs = random_inputs()
        s_in, s_out = [2.0, 0.5, 4.0], [0.25, 3.0, 2.0]
        scaled = {layer: x * s_in[layer] for layer, x in inputs.items()}
        acts_scaled, rec_scaled = transcoder(scaled)
        fold_scales(transcoder, s_in, s_out)
        acts_raw, rec_raw = transcoder(inputs)
        assert transcoder.config.normalization == "folded"
        for layer in inputs:
            assert torch.allclose(acts_raw[layer], acts_scaled[layer], atol=1e-5)
            assert torch.allclose(rec_raw[layer] * s_out[layer], rec_scaled[layer], atol=1e-5)


def test_n_parameters_counts_every_tensor() -> None:
    clt = make_transcoder("clt")
    counted = sum(p.numel() for p in clt.parameters())
    assert clt.n_parameters() == counted
    assert sum(clt.n_parameters(layer) for layer in range(3)) == counted
