"""Native files: round trip, and lazy loading that reads one layer's file at a time."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transcoder_fixtures import (
    ReadRecorder,
    assert_same_outputs,
    assert_same_weights,
    make_transcoder,
    random_inputs,
)

from circuitscope.transcoders.transcoder import Transcoder


def _tensor_bytes(transcoder: Transcoder, layer: int) -> int:
    return sum(t.numel() * t.element_size() for t in transcoder.read_layer_tensors(layer).values())


def test_native_round_trip_is_exact(tmp_path: Path) -> None:
    for kind in ("clt", "plt"):
        original = make_transcoder(kind, skip_connection=True)
        original.save(tmp_path / kind)
        files = sorted(p.name for p in (tmp_path / kind).iterdir())
        assert files == [
            "config.json",
            "layer_0.safetensors",
            "layer_1.safetensors",
            "layer_2.safetensors",
        ]
        loaded = Transcoder.load(tmp_path / kind)
        assert loaded.config == original.config
        assert_same_weights(original, loaded)
        inputs = random_inputs()
        assert_same_outputs(original, loaded, inputs)
        assert torch.equal(
            original.decode_sparse(original(inputs)[0], inputs)[2],
            loaded.decode_sparse(loaded(inputs)[0], inputs)[2],
        )


def test_config_json_is_readable(tmp_path: Path) -> None:
    make_transcoder("clt").save(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["format"] == "circuitscope-transcoder"
    assert data["kind"] == "clt" and data["n_features"] == [16, 16, 16]
    assert data["input_site"] == "layers.{layer}.mlp_in"
    assert data["training"] == {"steps": 10, "corpus": "unit test"}


def test_lazy_encode_and_decode_read_only_that_layers_file(
    tmp_path: Path, reads: ReadRecorder
) -> None:
    make_transcoder("plt").save(tmp_path)
    transcoder = Transcoder.load(tmp_path)
    assert transcoder.loaded_layers() == []
    assert reads.bytes_read == 0  # opening reads headers only
    reads.reset()
    x = random_inputs()[1]
    acts = transcoder.encode(1, x)
    recon = transcoder.decode({1: acts})
    assert set(reads.opened) == {"layer_1.safetensors"}
    assert transcoder.loaded_layers() == [1]
    assert recon[1].shape == x.shape


def test_lazy_clt_layer_reads_only_its_file(tmp_path: Path, reads: ReadRecorder) -> None:
    make_transcoder("clt").save(tmp_path)
    transcoder = Transcoder.load(tmp_path)
    reads.reset()
    acts = transcoder.encode(2, random_inputs()[2])
    contributions = transcoder.decode_from(2, acts)
    assert set(reads.opened) == {"layer_2.safetensors"}
    assert contributions.shape == (1, 2, 6, 8)


def test_loading_one_layer_costs_one_nth_of_the_whole(tmp_path: Path, reads: ReadRecorder) -> None:
    make_transcoder("plt", n_features=[64] * 3).save(tmp_path)
    whole = Transcoder.load(tmp_path, lazy=False)
    total = sum(_tensor_bytes(whole, layer) for layer in range(3))
    per_layer = []
    for layer in range(3):
        transcoder = Transcoder.load(tmp_path)
        reads.reset()
        transcoder.layer(layer)
        per_layer.append(reads.bytes_read)
        assert reads.opened == [f"layer_{layer}.safetensors"]
    assert per_layer == [total // 3] * 3
    materialised = sum(p.numel() * p.element_size() for p in transcoder.parameters())
    assert materialised == total // 3


def test_clt_layer_bytes_are_exactly_that_layers_tensors(
    tmp_path: Path, reads: ReadRecorder
) -> None:
    make_transcoder("clt").save(tmp_path)
    whole = Transcoder.load(tmp_path, lazy=False)
    sizes = [_tensor_bytes(whole, layer) for layer in range(3)]
    for layer in range(3):
        transcoder = Transcoder.load(tmp_path)
        reads.reset()
        transcoder.layer(layer)
        assert reads.bytes_read == sizes[layer]
    # layer l decodes to L - l layers, so earlier layers are bigger; together they are the whole
    assert sizes[0] > sizes[1] > sizes[2]


def test_release_drops_layers_and_they_come_back(tmp_path: Path) -> None:
    make_transcoder("clt").save(tmp_path)
    transcoder = Transcoder.load(tmp_path, lazy=False)
    assert transcoder.loaded_layers() == [0, 1, 2]
    before = transcoder.encode(0, random_inputs()[0])
    transcoder.release()
    assert transcoder.loaded_layers() == []
    assert torch.equal(transcoder.encode(0, random_inputs()[0]), before)


def test_sparse_decode_of_lazy_layers_reads_only_active_rows(
    tmp_path: Path, reads: ReadRecorder
) -> None:
    transcoder = make_transcoder(
        "clt", n_features=[256] * 3, activation="topk", activation_params={"k": 2}
    )
    transcoder.save(tmp_path)
    x = {layer: value[:, :1] for layer, value in random_inputs().items()}  # 2 rows per layer
    acts, dense = transcoder(x)
    lazy = Transcoder.load(tmp_path)
    reads.reset()
    sparse = lazy.decode_sparse(acts)
    assert lazy.loaded_layers() == []
    full_decoders = sum(transcoder.layer(layer).W_dec.numel() * 4 for layer in range(3))
    assert reads.bytes_read < full_decoders / 10
    for layer in range(3):
        assert torch.allclose(sparse[layer], dense[layer], atol=1e-6)


def test_lazy_encode_reads_the_encoder_alone(tmp_path: Path, reads: ReadRecorder) -> None:
    make_transcoder("clt").save(tmp_path)
    whole = Transcoder.load(tmp_path, lazy=False)
    transcoder = Transcoder.load(tmp_path)
    reads.reset()
    x = random_inputs()[0]
    assert torch.equal(transcoder.encode(0, x), whole.encode(0, x))
    assert torch.equal(transcoder.pre_activations(0, x), whole.pre_activations(0, x))
    encoder_bytes = (8 * 16 + 16 + 16) * 4  # W_enc [d, n], b_enc [n], threshold [n], fp32
    assert reads.bytes_read == encoder_bytes and transcoder.loaded_layers() == []
    rows = torch.tensor([2, 5])
    assert torch.equal(transcoder.active_decoders(0, rows), whole.layer(0).decoders()[rows])
    transcoder.layer(0)  # the whole layer replaces the encoder read alone
    assert transcoder.loaded_layers() == [0] and len(transcoder.encoders) == 0
