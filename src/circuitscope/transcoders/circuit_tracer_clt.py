"""circuit-tracer's cross-layer transcoder: config.yaml + W_enc_{i} / W_dec_{i} files.

W_enc_{i}.safetensors holds W_enc_{i} [n, d] (h = x W_encᵀ + b_enc), b_enc_{i} [n],
b_dec_{i} [d] and, for JumpReLU, threshold_{i} [n]; W_dec_{i}.safetensors holds
W_dec_{i} [n, L - i, d] (slot j decodes to layer i + j), the same layout as ours.
Every layer has the same n; circuit-tracer does not save a CLT's W_skip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from circuitscope.errors import CircuitscopeError
from circuitscope.transcoders import safetensors_files as st
from circuitscope.transcoders.circuit_tracer_common import site_of_hook, write_yaml
from circuitscope.transcoders.config import TranscoderConfig
from circuitscope.transcoders.foreign import (
    check_contiguous,
    float_dtype,
    layer_index,
    merge_side_config,
    write_side_config,
)
from circuitscope.transcoders.layer import B_DEC, B_ENC, THRESHOLD, W_DEC, W_ENC
from circuitscope.transcoders.source import LayerSource, LayerTensors


def enc_file(folder: Path, layer: int) -> Path:
    return folder / f"W_enc_{layer}.safetensors"


def dec_file(folder: Path, layer: int) -> Path:
    return folder / f"W_dec_{layer}.safetensors"


class CircuitTracerCltSource(LayerSource):
    """Layers of a circuit-tracer CLT, each read from its two files."""

    def __init__(self, folder: Path, data: dict[str, Any]) -> None:
        self.location = folder
        found = {layer_index(f.stem) or 0: f for f in folder.glob("W_enc_*.safetensors")}
        n_layers = len(check_contiguous(found, "W_enc_{i}.safetensors", folder))
        head = st.header(enc_file(folder, 0))
        if "W_enc_0" not in head:
            raise CircuitscopeError(f"{enc_file(folder, 0)}: no tensor W_enc_0")
        (n_features, d_model), dtype = head["W_enc_0"]
        jumprelu = "threshold_0" in head
        inferred = TranscoderConfig(
            kind="clt",
            n_layers=n_layers,
            d_model=d_model,
            n_features=[n_features] * n_layers,
            activation="jumprelu" if jumprelu else "relu",
            activation_params={},
            model_id=str(data.get("model_name", "")),
            input_site=site_of_hook(str(data.get("feature_input_hook", "hook_resid_mid"))),
            output_site=site_of_hook(str(data.get("feature_output_hook", "hook_mlp_out"))),
            dtype=float_dtype(dtype, enc_file(folder, 0), "W_enc_0"),
            source_format="circuit-tracer",
        )
        self.config = merge_side_config(folder, inferred)

    def describe(self) -> str:
        return "circuit-tracer CLT"

    def layer_files(self, layer: int) -> dict[str, Path]:
        enc = enc_file(self.location, layer)
        files = {W_ENC: enc, B_ENC: enc, B_DEC: enc, THRESHOLD: enc}
        return {**files, W_DEC: dec_file(self.location, layer)}

    def check_files(self) -> None:
        for layer in range(self.config.n_layers):
            for path in (enc_file(self.location, layer), dec_file(self.location, layer)):
                if not path.is_file():
                    raise CircuitscopeError(f"missing layer file {path}")
                st.header(path)

    def read_layer(self, layer: int) -> dict[str, Tensor]:
        tensors = self._read_encoder_file(layer)
        dec = st.read_tensors(dec_file(self.location, layer), [f"W_dec_{layer}"])
        tensors[W_DEC] = dec[f"W_dec_{layer}"]
        return tensors

    def read_named(self, layer: int, names: list[str]) -> dict[str, Tensor]:
        if W_DEC in names:
            return super().read_named(layer, names)
        tensors = self._read_encoder_file(layer)  # no decoder: its file is not opened
        return {name: tensors[name] for name in names if name in tensors}

    def _read_encoder_file(self, i: int) -> dict[str, Tensor]:
        enc_names = [f"W_enc_{i}", f"b_enc_{i}", f"b_dec_{i}"]
        if self.config.activation == "jumprelu":
            enc_names.append(f"threshold_{i}")
        enc = st.read_tensors(enc_file(self.location, i), enc_names)
        tensors = {
            W_ENC: enc[f"W_enc_{i}"].T.contiguous(),
            B_ENC: enc[f"b_enc_{i}"],
            B_DEC: enc[f"b_dec_{i}"],
        }
        if self.config.activation == "jumprelu":
            tensors[THRESHOLD] = enc[f"threshold_{i}"].reshape(-1)
        return tensors

    def read_rows(self, layer: int, name: str, rows: Tensor) -> Tensor:
        if name == W_DEC:
            return st.read_rows(dec_file(self.location, layer), f"W_dec_{layer}", rows)
        return super().read_rows(layer, name, rows)


def write_circuit_tracer_clt(transcoder: LayerTensors, folder: Path) -> Path:
    """Write config.yaml, W_enc_{i}.safetensors and W_dec_{i}.safetensors."""
    config = transcoder.config
    _check_writable(config)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(config.n_layers):
        tensors = transcoder.read_layer_tensors(i)
        enc = {f"W_enc_{i}": tensors[W_ENC].T, f"b_enc_{i}": tensors[B_ENC]}
        enc[f"b_dec_{i}"] = tensors[B_DEC]
        if THRESHOLD in tensors:
            enc[f"threshold_{i}"] = tensors[THRESHOLD]
        st.write_tensors(enc_file(folder, i), enc)
        st.write_tensors(dec_file(folder, i), {f"W_dec_{i}": tensors[W_DEC]})
    write_yaml(folder, config, "cross_layer_transcoder")
    write_side_config(folder, config)
    return folder


def _check_writable(config: TranscoderConfig) -> None:
    if config.kind != "clt":
        raise CircuitscopeError("circuit-tracer's CLT layout needs a CLT; this is a PLT")
    if config.activation not in ("jumprelu", "relu"):
        raise CircuitscopeError(
            f"circuit-tracer CLTs use JumpReLU or ReLU, not {config.activation}"
        )
    if len(set(config.n_features)) != 1:
        raise CircuitscopeError("circuit-tracer CLTs need the same number of features per layer")
    if config.skip_connection:
        raise CircuitscopeError("circuit-tracer does not save a CLT's skip connection")
