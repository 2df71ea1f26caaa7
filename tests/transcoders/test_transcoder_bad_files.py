"""Every bad file gets a clear CircuitscopeError naming it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transcoder_fixtures import make_transcoder

from circuitscope.errors import CircuitscopeError
from circuitscope.transcoders import safetensors_files as st
from circuitscope.transcoders.formats import write_format
from circuitscope.transcoders.transcoder import Transcoder


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    make_transcoder("clt").save(tmp_path)
    return tmp_path


def _one_line(error: pytest.ExceptionInfo[CircuitscopeError]) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_truncated_layer_file(saved: Path) -> None:
    path = saved / "layer_1.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CircuitscopeError) as error:
        Transcoder.load(saved)
    assert str(path) in _one_line(error) and "truncated or corrupt" in str(error.value)


def test_corrupt_layer_file(saved: Path) -> None:
    path = saved / "layer_0.safetensors"
    path.write_bytes(b"\x00not a safetensors file at all")
    with pytest.raises(CircuitscopeError, match="layer_0.safetensors: truncated or corrupt"):
        Transcoder.load(saved)


def test_missing_layer_file(saved: Path) -> None:
    (saved / "layer_2.safetensors").unlink()
    with pytest.raises(CircuitscopeError) as error:
        Transcoder.load(saved)
    assert "missing layer file" in _one_line(error) and "layer_2.safetensors" in str(error.value)


def test_nan_weights(saved: Path) -> None:
    path = saved / "layer_1.safetensors"
    tensors = st.read_tensors(path)
    tensors["W_dec"][3, 0, 2] = float("nan")
    st.write_tensors(path, tensors)
    lazy = Transcoder.load(saved)  # headers are fine
    lazy.encode(1, torch.zeros(8))  # encoding reads the encoder alone
    with pytest.raises(CircuitscopeError) as error:
        lazy.active_decoders(1, torch.tensor([1, 3]))  # the row with the NaN
    assert str(path) in _one_line(error) and "W_dec of layer 1 contains NaN" in str(error.value)
    with pytest.raises(CircuitscopeError, match="W_dec of layer 1 contains NaN"):
        lazy.layer(1)
    with pytest.raises(CircuitscopeError, match="contains NaN"):
        Transcoder.load(saved, lazy=False)


def test_nan_encoder_is_found_when_encoding(saved: Path) -> None:
    path = saved / "layer_2.safetensors"
    tensors = st.read_tensors(path)
    tensors["W_enc"][0, 1] = float("nan")
    st.write_tensors(path, tensors)
    with pytest.raises(CircuitscopeError, match="W_enc of layer 2 contains NaN"):
        Transcoder.load(saved).encode(2, torch.zeros(8))


def test_wrong_dtype(saved: Path) -> None:
    path = saved / "layer_0.safetensors"
    tensors = st.read_tensors(path)
    tensors["W_enc"] = tensors["W_enc"].double()
    st.write_tensors(path, tensors)
    with pytest.raises(CircuitscopeError) as error:
        Transcoder.load(saved)
    assert str(path) in _one_line(error)
    assert "W_enc is float64, but the config says float32" in str(error.value)


def test_wrong_shape(saved: Path) -> None:
    path = saved / "layer_2.safetensors"
    tensors = st.read_tensors(path)
    tensors["b_enc"] = tensors["b_enc"][:-1]
    st.write_tensors(path, tensors)
    with pytest.raises(CircuitscopeError, match=r"b_enc has shape \(15,\), expected \(16,\)"):
        Transcoder.load(saved)


def test_broken_config_json(saved: Path) -> None:
    (saved / "config.json").write_text('{"format": "circuitscope-transcoder", "kind": ')
    with pytest.raises(CircuitscopeError, match=r"config.json: invalid JSON"):
        Transcoder.load(saved)


def test_not_a_transcoder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CircuitscopeError, match="no transcoder found"):
        Transcoder.load(tmp_path)
    with pytest.raises(CircuitscopeError, match="no such file or folder"):
        Transcoder.load(tmp_path / "absent")


def test_foreign_formats_name_their_bad_files(tmp_path: Path) -> None:
    plt = make_transcoder("plt", activation="topk", activation_params={"k": 2})
    write_format(plt, tmp_path / "sp", "sparsify")
    weights = tmp_path / "sp" / "layers.1.mlp" / "sae.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    with pytest.raises(CircuitscopeError, match="layers.1.mlp/sae.safetensors: truncated"):
        Transcoder.load(tmp_path / "sp")

    write_format(make_transcoder("plt"), tmp_path / "ct", "circuit-tracer")
    (tmp_path / "ct" / "layer_1.safetensors").unlink()
    with pytest.raises(CircuitscopeError, match="missing layer file for layer 1"):
        Transcoder.load(tmp_path / "ct")

    write_format(make_transcoder("plt"), tmp_path / "gs", "gemmascope")
    npz = tmp_path / "gs" / "layer_2" / "params.npz"
    npz.write_bytes(npz.read_bytes()[:200])
    with pytest.raises(CircuitscopeError, match="layer_2/params.npz: truncated or corrupt"):
        Transcoder.load(tmp_path / "gs")

    write_format(make_transcoder("clt"), tmp_path / "clt", "circuit-tracer")
    enc = tmp_path / "clt" / "W_enc_1.safetensors"
    tensors = st.read_tensors(enc)
    tensors["b_enc_1"][0] = float("nan")
    st.write_tensors(enc, tensors)
    with pytest.raises(
        CircuitscopeError, match="W_enc_1.safetensors: b_enc of layer 1 contains NaN"
    ):
        Transcoder.load(tmp_path / "clt", lazy=False)
