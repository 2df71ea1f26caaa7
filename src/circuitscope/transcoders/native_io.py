"""The native transcoder folder: config.json plus layer_{l}.safetensors per layer.

Each layer file holds that layer's tensors under the names of
`circuitscope.transcoders.layer` (W_enc, b_enc, threshold, W_dec, b_dec, W_skip).
Nothing is pickled. Opening a folder reads config.json and every file's header
(cheap), so a missing, truncated or mistyped file fails at once with its name;
tensor data is read when a layer is first used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import Tensor

from circuitscope.errors import CircuitscopeError
from circuitscope.transcoders import safetensors_files as st
from circuitscope.transcoders.checks import check_layer_header
from circuitscope.transcoders.config import FORMAT_NAME, TranscoderConfig
from circuitscope.transcoders.layer import expected_shapes
from circuitscope.transcoders.source import LayerSource, LayerTensors

CONFIG_FILE = "config.json"


def layer_file(folder: Path, layer: int) -> Path:
    return folder / f"layer_{layer}.safetensors"


def is_native(folder: Path) -> bool:
    """Whether `folder` holds a native transcoder (a config.json naming our format)."""
    path = folder / CONFIG_FILE
    if not path.is_file():
        return False
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT_NAME


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`, or a CircuitscopeError naming it."""
    try:
        data = json.loads(path.read_text())
    except OSError as error:
        raise CircuitscopeError(f"cannot read {path}: {error.strerror}") from None
    except ValueError as error:
        raise CircuitscopeError(f"{path}: invalid JSON ({error})") from None
    if not isinstance(data, dict):
        raise CircuitscopeError(f"{path}: expected a JSON object")
    return data


class NativeSource(LayerSource):
    """Layers of a native folder, read one file per layer on demand."""

    def __init__(self, folder: Path) -> None:
        self.location = folder
        config_path = folder / CONFIG_FILE
        self.config = TranscoderConfig.from_dict(read_json(config_path), where=str(config_path))

    def describe(self) -> str:
        return "native"

    def layer_files(self, layer: int) -> dict[str, Path]:
        path = layer_file(self.location, layer)
        return {name: path for name in expected_shapes(self.config, layer)}

    def check_files(self) -> None:
        for layer in range(self.config.n_layers):
            path = layer_file(self.location, layer)
            if not path.is_file():
                raise CircuitscopeError(
                    f"missing layer file {path} ({CONFIG_FILE} says {self.config.n_layers} layers)"
                )
            check_layer_header(self.config, layer, st.header(path), self.layer_files(layer))

    def read_layer(self, layer: int) -> dict[str, Tensor]:
        names = list(expected_shapes(self.config, layer))
        return st.read_tensors(layer_file(self.location, layer), names)

    def read_named(self, layer: int, names: list[str]) -> dict[str, Tensor]:
        present = [name for name in names if name in expected_shapes(self.config, layer)]
        return st.read_tensors(layer_file(self.location, layer), present)

    def read_rows(self, layer: int, name: str, rows: Tensor) -> Tensor:
        return st.read_rows(layer_file(self.location, layer), name, rows)


def write_native(transcoder: LayerTensors, folder: Path) -> Path:
    """Write `transcoder` to `folder` layer by layer (a lazy one is never fully in memory)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = transcoder.config
    for layer in range(config.n_layers):
        tensors = transcoder.read_layer_tensors(layer)
        metadata = {"format": FORMAT_NAME, "layer": str(layer)}
        st.write_tensors(layer_file(folder, layer), tensors, metadata)
    (folder / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    return folder
