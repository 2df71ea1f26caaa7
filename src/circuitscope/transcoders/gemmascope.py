"""GemmaScope transcoders: one `params.npz` per layer.

Each file holds W_enc [d_model, d_sae], W_dec [d_sae, d_model], b_enc [d_sae],
b_dec [d_model] and threshold [d_sae] (JumpReLU: relu(h) · 1[h > θ], which is
h · 1[h > θ] for θ ≥ 0). The hub layout is
`layer_{l}/width_{w}/average_l0_{n}/params.npz`; a folder here must hold exactly
one params.npz per layer, and a single file is a one-layer transcoder (layer 0).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from circuitscope.errors import CircuitscopeError
from circuitscope.transcoders.config import TranscoderConfig
from circuitscope.transcoders.foreign import (
    check_contiguous,
    float_dtype,
    merge_side_config,
    write_side_config,
)
from circuitscope.transcoders.layer import B_DEC, B_ENC, THRESHOLD, W_DEC, W_ENC
from circuitscope.transcoders.source import LayerSource, LayerTensors

KEYS = ("W_enc", "W_dec", "b_enc", "b_dec", "threshold")


def npz_header(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """Name -> (shape, dtype name) of every array, reading only the array headers."""
    out: dict[str, tuple[tuple[int, ...], str]] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                with archive.open(member) as f:
                    version = np.lib.format.read_magic(f)
                    read = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read(f)
                out[member.removesuffix(".npy")] = (tuple(shape), str(dtype))
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise CircuitscopeError(f"{path}: truncated or corrupt npz file ({error})") from None
    return out


def read_params(path: Path) -> dict[str, Tensor]:
    """One layer's tensors under native names (no pickles are loaded)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise CircuitscopeError(f"{path}: truncated or corrupt npz file ({error})") from None
    missing = [key for key in KEYS if key not in arrays]
    if missing:
        raise CircuitscopeError(f"{path}: not a GemmaScope transcoder (no {', '.join(missing)})")
    tensors = {key: torch.from_numpy(np.ascontiguousarray(arrays[key])) for key in KEYS}
    if bool((tensors["threshold"] < 0).any()):
        raise CircuitscopeError(f"{path}: negative JumpReLU thresholds are not supported")
    names = {"W_enc": W_ENC, "W_dec": W_DEC, "b_enc": B_ENC, "b_dec": B_DEC}
    return {names.get(key, THRESHOLD): value for key, value in tensors.items()}


def find_params(path: Path) -> list[Path]:
    """The params.npz of layers 0..n-1 under `path` (or `path` itself, layer 0)."""
    if path.is_file():
        return [path]
    found: dict[int, Path] = {}
    for file in sorted(path.rglob("*.npz")):
        match = re.search(r"layer[_-]?(\d+)", str(file.relative_to(path)))
        layer = int(match.group(1)) if match else 0
        if layer in found:
            raise CircuitscopeError(
                f"{path}: several npz files for layer {layer} ({found[layer]}, {file}); "
                "point at a folder with one params.npz per layer"
            )
        found[layer] = file
    return check_contiguous(found, "params.npz", path)


class GemmaScopeSource(LayerSource):
    """Layers of GemmaScope params.npz files."""

    def __init__(self, path: Path) -> None:
        self.location = path
        self.files = find_params(path)
        headers = [npz_header(file) for file in self.files]
        for file, head in zip(self.files, headers, strict=True):
            if "W_enc" not in head:
                raise CircuitscopeError(f"{file}: not a GemmaScope transcoder (no W_enc)")
        d_model = headers[0]["W_enc"][0][0]
        inferred = TranscoderConfig(
            kind="plt",
            n_layers=len(self.files),
            d_model=d_model,
            n_features=[head["W_enc"][0][1] for head in headers],
            activation="jumprelu",
            activation_params={},
            dtype=float_dtype(headers[0]["W_enc"][1], self.files[0], "W_enc"),
            source_format="gemmascope",
        )
        folder = path if path.is_dir() else path.parent
        self.config = merge_side_config(folder, inferred)

    def describe(self) -> str:
        return "gemmascope"

    def layer_files(self, layer: int) -> dict[str, Path]:
        return {name: self.files[layer] for name in (W_ENC, B_ENC, THRESHOLD, W_DEC, B_DEC)}

    def read_layer(self, layer: int) -> dict[str, Tensor]:
        return read_params(self.files[layer])


def write_gemmascope(transcoder: LayerTensors, folder: Path) -> Path:
    """Write layer_{l}/params.npz per layer (float32 when the weights are bfloat16)."""
    config = transcoder.config
    _check_writable(config)
    folder.mkdir(parents=True, exist_ok=True)
    for layer in range(config.n_layers):
        tensors = transcoder.read_layer_tensors(layer)
        if THRESHOLD not in tensors:  # ReLU is JumpReLU with θ = 0
            tensors[THRESHOLD] = torch.zeros_like(tensors[B_ENC])
        if bool((tensors[THRESHOLD] < 0).any()):
            raise CircuitscopeError("GemmaScope's JumpReLU differs for negative thresholds")
        arrays = {key: _numpy(tensors[key]) for key in KEYS}
        target = folder / f"layer_{layer}" / "params.npz"
        target.parent.mkdir(parents=True, exist_ok=True)
        np.savez(target, **arrays)  # type: ignore[arg-type]
    write_side_config(folder, config)
    return folder


def _check_writable(config: TranscoderConfig) -> None:
    if config.kind != "plt":
        raise CircuitscopeError("GemmaScope holds per-layer transcoders; this is a CLT")
    if config.activation not in ("jumprelu", "relu"):
        raise CircuitscopeError(
            f"GemmaScope uses JumpReLU; this transcoder uses {config.activation}"
        )
    if config.skip_connection:
        raise CircuitscopeError("GemmaScope params.npz has no skip connection (W_skip)")


def _numpy(tensor: Tensor) -> np.ndarray:
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return tensor.detach().cpu().numpy()
