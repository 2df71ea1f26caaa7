"""What the readers and writers of other people's formats share.

Other formats store weights but little else, so a writer also leaves a
`circuitscope.json` beside them (which their own loaders ignore); a reader uses
it for what the weights cannot say (model id, architecture, sites, bandwidth,
normalisation, provenance), while everything the weights do say comes from them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from circuitscope.errors import CircuitscopeError
from circuitscope.transcoders.config import TranscoderConfig

SIDE_FILE = "circuitscope.json"
WEIGHT_FIELDS = (
    "kind",
    "n_layers",
    "d_model",
    "n_features",
    "activation",
    "skip_connection",
    "dtype",
)


def write_side_config(folder: Path, config: TranscoderConfig) -> None:
    (folder / SIDE_FILE).write_text(json.dumps(config.to_dict(), indent=2) + "\n")


def merge_side_config(folder: Path, inferred: TranscoderConfig) -> TranscoderConfig:
    """`inferred`, completed by the circuitscope.json in `folder` when there is one."""
    path = folder / SIDE_FILE
    if not path.is_file():
        return inferred
    from circuitscope.transcoders.native_io import read_json

    saved = TranscoderConfig.from_dict(read_json(path), where=str(path))
    keep = {name: getattr(inferred, name) for name in WEIGHT_FIELDS}
    params = dict(saved.activation_params) if saved.activation == inferred.activation else {}
    params.update(inferred.activation_params)
    return saved.with_changes(**keep, activation_params=params)


def layer_index(name: str) -> int | None:
    """The layer number in a path or hook point name (layer_3, layers.3.mlp, h.3), if any."""
    match = re.search(r"(?:^|[._/-])(?:layers?[._-]?|h\.)?(\d+)(?:$|[._/-])", name)
    return int(match.group(1)) if match else None


def check_contiguous(found: dict[int, Path], what: str, folder: Path) -> list[Path]:
    """Files of layers 0..n-1 in order; a gap is a missing layer file."""
    if not found:
        raise CircuitscopeError(f"{folder}: no {what} files found")
    for layer in range(max(found) + 1):
        if layer not in found:
            raise CircuitscopeError(f"{folder}: missing layer file for layer {layer} ({what})")
    return [found[layer] for layer in range(len(found))]


def dtype_name(dtype: object) -> str:
    """'float32' for torch.float32, numpy float32, or 'F32'."""
    text = str(dtype).removeprefix("torch.")
    return {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}.get(
        text, text
    )


def float_dtype(dtype: object, where: Path, tensor: str) -> str:
    """The dtype name of a weight tensor, which must be floating point."""
    name = dtype_name(dtype)
    if name not in ("float32", "float16", "bfloat16", "float64"):
        raise CircuitscopeError(f"{where}: {tensor} is {name}, expected floating-point weights")
    return name
