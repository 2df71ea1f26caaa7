"""circuit-tracer's per-layer transcoder set: config.yaml + layer_{i}.safetensors.

A layer file holds W_enc [n, d] (applied as F.linear: h = x W_encᵀ + b_enc),
W_dec [n, d], b_enc [n], b_dec [d], and optionally `activation_function.threshold`
[n] (JumpReLU), W_skip [d, d] (applied as x W_skipᵀ) and k (a scalar, TopK).
circuit-tracer's TopK keeps the k largest pre-activations without a ReLU.
config.yaml may instead list the per-layer files under `transcoders` (local paths,
hf:// URIs, or GemmaScope params.npz files).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
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
from circuitscope.transcoders.gemmascope import npz_header, read_params
from circuitscope.transcoders.hub import download_file
from circuitscope.transcoders.layer import B_DEC, B_ENC, THRESHOLD, W_DEC, W_ENC, W_SKIP
from circuitscope.transcoders.source import LayerSource, LayerTensors

CT_THRESHOLD = "activation_function.threshold"


def layer_paths(folder: Path, data: dict[str, Any]) -> list[Path]:
    """The file of each layer, from the `transcoders` list or layer_{i}.safetensors."""
    if "transcoders" in data:
        entries = data["transcoders"]
        paths = [e["filepath"] if isinstance(e, dict) else str(e) for e in entries]
        return [_local(folder, path) for path in paths]
    found: dict[int, Path] = {}
    for file in folder.glob("layer_*.safetensors"):
        index = layer_index(file.stem)
        if index is not None:
            found[index] = file
    return check_contiguous(found, "layer_{i}.safetensors", folder)


def _local(folder: Path, path: str) -> Path:
    if path.startswith("hf://"):
        return download_file(path)
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else folder / candidate


def _header(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    if path.suffix == ".npz":
        return npz_header(path)
    if not path.is_file():
        raise CircuitscopeError(f"missing layer file {path}")
    return st.header(path)


class CircuitTracerSetSource(LayerSource):
    """Layers of a circuit-tracer transcoder set."""

    def __init__(self, folder: Path, data: dict[str, Any]) -> None:
        self.location = folder
        self.files = layer_paths(folder, data)
        headers = [_header(path) for path in self.files]
        for path, head in zip(self.files, headers, strict=True):
            if "W_enc" not in head:
                raise CircuitscopeError(f"{path}: not a transcoder layer file (no W_enc)")
        self.npz = self.files[0].suffix == ".npz"
        self.config = merge_side_config(folder, self._infer(data, headers))

    def _infer(self, data: dict[str, Any], headers: list[dict[str, Any]]) -> TranscoderConfig:
        first = headers[0]
        n_feature_axis = 1 if self.npz else 0
        activation, params = _activation(data, first, self.npz, self.files[0])
        return TranscoderConfig(
            kind="plt",
            n_layers=len(headers),
            d_model=first["W_enc"][0][1 - n_feature_axis],
            n_features=[head["W_enc"][0][n_feature_axis] for head in headers],
            activation=activation,
            activation_params=params,
            model_id=str(data.get("model_name", "")),
            input_site=site_of_hook(str(data.get("feature_input_hook", "mlp.hook_in"))),
            output_site=site_of_hook(str(data.get("feature_output_hook", "hook_mlp_out"))),
            skip_connection="W_skip" in first,
            dtype=float_dtype(first["W_enc"][1], self.files[0], "W_enc"),
            source_format="circuit-tracer",
        )

    def describe(self) -> str:
        return "circuit-tracer transcoder set"

    def layer_files(self, layer: int) -> dict[str, Path]:
        names = (W_ENC, B_ENC, THRESHOLD, W_DEC, B_DEC, W_SKIP)
        return {name: self.files[layer] for name in names}

    def read_layer(self, layer: int) -> dict[str, Tensor]:
        path = self.files[layer]
        if self.npz:
            return read_params(path)
        raw = st.read_tensors(path)
        tensors = {
            W_ENC: raw["W_enc"].T.contiguous(),
            B_ENC: raw["b_enc"],
            W_DEC: raw["W_dec"],
            B_DEC: raw["b_dec"],
        }
        if CT_THRESHOLD in raw and self.config.activation == "jumprelu":
            tensors[THRESHOLD] = raw[CT_THRESHOLD].reshape(-1)
        if "W_skip" in raw:
            tensors[W_SKIP] = raw["W_skip"].T.contiguous()
        return tensors


def _activation(
    data: dict[str, Any], header: dict[str, Any], npz: bool, path: Path
) -> tuple[str, dict[str, Any]]:
    """circuit-tracer's rules: config `activation` (topk, relu), else JumpReLU iff a threshold."""
    name = data.get("activation")
    if name == "topk":
        k = data.get("k")
        if k is None and "k" in header:
            k = int(st.read_tensors(path, ["k"])["k"].item())
        if k is None:
            raise CircuitscopeError(f"{path}: TopK transcoder without k (in config.yaml or file)")
        return "topk", {"k": int(k), "relu": False}
    if name == "relu":
        return "relu", {}
    if npz or CT_THRESHOLD in header:
        return "jumprelu", {}
    return "relu", {}


def write_circuit_tracer_set(transcoder: LayerTensors, folder: Path) -> Path:
    """Write config.yaml and layer_{i}.safetensors (circuit-tracer's layout)."""
    config = transcoder.config
    extra = _activation_yaml(config)
    folder.mkdir(parents=True, exist_ok=True)
    for layer in range(config.n_layers):
        st.write_tensors(folder / f"layer_{layer}.safetensors", _ct_tensors(transcoder, layer))
    write_yaml(folder, config, "transcoder_set", **extra)
    write_side_config(folder, config)
    return folder


def _ct_tensors(transcoder: Any, layer: int) -> dict[str, Tensor]:
    tensors = transcoder.read_layer_tensors(layer)
    out = {
        "W_enc": tensors[W_ENC].T,
        "W_dec": tensors[W_DEC],
        "b_enc": tensors[B_ENC],
        "b_dec": tensors[B_DEC],
    }
    if THRESHOLD in tensors:
        out[CT_THRESHOLD] = tensors[THRESHOLD]
    if W_SKIP in tensors:
        out["W_skip"] = tensors[W_SKIP].T
    if transcoder.config.activation == "topk":
        out["k"] = torch.tensor(int(transcoder.config.activation_params["k"]))
    return out


def _activation_yaml(config: TranscoderConfig) -> dict[str, Any]:
    if config.kind != "plt":
        raise CircuitscopeError("a transcoder set holds per-layer transcoders; this is a CLT")
    if config.activation == "jumprelu":
        return {}
    if config.activation == "relu":
        return {"activation": "relu"}
    if config.activation == "topk" and not config.activation_params.get("relu", True):
        return {"activation": "topk", "k": int(config.activation_params["k"])}
    raise CircuitscopeError(
        f"circuit-tracer cannot express this activation ({config.activation} with "
        f"{config.activation_params}); its TopK keeps negative values, without a ReLU"
    )
