"""The activation store's files: a JSON manifest, safetensors shards, statistics.

    folder/
      manifest.json          what was recorded, from where, and every shard's checksum
      stats.safetensors      per-layer statistics (see `stats.ActivationStats`)
      shard_00000.safetensors  mlp_in [n, n_layers, d_model], mlp_out [n, n_layers, d_model]
      ...

Tokens are shuffled across contexts before they are written (see `store_writer`);
sink (BOS) positions are not recorded (`Manifest.bos`). Shards are float16 or bfloat16.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from circuitscope.data.bos import BOS_POLICIES, BosPolicy
from circuitscope.errors import CircuitscopeError

MANIFEST = "manifest.json"
STATS_FILE = "stats.safetensors"
FORMAT_NAME = "circuitscope-activations"
FORMAT_VERSION = 1
MLP_IN, MLP_OUT = "mlp_in", "mlp_out"
STORE_DTYPES = ("float16", "bfloat16", "float32")


@dataclass
class ShardInfo:
    file: str
    """File name inside the store folder."""
    n_tokens: int
    """Rows of the shard."""
    sha256: str
    """Hex SHA-256 of the file."""


@dataclass
class Manifest:
    """Everything about a store except the activations."""

    model: str
    architecture: str
    n_layers: int
    d_model: int
    dtype: str
    context_length: int
    n_tokens: int = 0
    seed: int = 0
    corpus: dict[str, Any] = field(default_factory=dict)
    shards: list[ShardInfo] = field(default_factory=list)
    input_site: str = "mlp_in"
    """What the stored inputs are: "mlp_in" (the MLP's input) or "resid_mid" (the
    residual stream before the MLP's norm). Stores written before it existed: mlp_in."""
    stats_sha256: str = ""
    bos: BosPolicy = "auto"
    """The BOS policy contexts were packed with (`data.bos`): auto or always, each context
    starts with the sink token and its position is not recorded; never, no sink and every
    position recorded. Stores written before it existed: auto (they started with the sink)."""
    sink_token_id: int | None = None
    """The sink token at each context's position 0 (None: never, or a store written before
    it was recorded)."""

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> Manifest:
        data = dict(data)
        if data.pop("format", None) != FORMAT_NAME:
            raise CircuitscopeError(f"{where}: not a circuitscope activation store manifest")
        if data.pop("format_version", 0) > FORMAT_VERSION:
            raise CircuitscopeError(f"{where}: written by a newer circuitscope")
        try:
            data["shards"] = [ShardInfo(**shard) for shard in data.get("shards", [])]
            manifest = cls(**data)
        except TypeError as error:
            raise CircuitscopeError(f"{where}: malformed manifest ({error})") from None
        if manifest.bos not in BOS_POLICIES:
            raise CircuitscopeError(f"{where}: unknown bos {manifest.bos!r} in the manifest")
        if sum(s.n_tokens for s in manifest.shards) != manifest.n_tokens:
            raise CircuitscopeError(f"{where}: shard token counts do not add up to n_tokens")
        return manifest


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to a temporary file, fsync it, and rename it over `path`."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_manifest(folder: Path) -> Manifest:
    """The manifest of the store in `folder`, or a CircuitscopeError saying what is wrong."""
    path = folder / MANIFEST
    if not folder.is_dir():
        raise CircuitscopeError(f"no such activation store folder: {folder}")
    if not path.is_file():
        raise CircuitscopeError(f"{folder} has no {MANIFEST}: not an activation store")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CircuitscopeError(f"{path}: unreadable manifest ({error})") from None
    if not isinstance(data, dict):
        raise CircuitscopeError(f"{path}: expected a JSON object")
    return Manifest.from_dict(data, str(path))
