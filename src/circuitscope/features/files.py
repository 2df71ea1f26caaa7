"""Feature cards on disk, in circuit-tracer's feature layout.

A features folder holds:

- `layer_{L}-{G}.bin` per layer: the cards of that layer's features, one record
  each, back to back. A record is a 4-byte little-endian length n followed by n
  bytes of zlib-compressed UTF-8 JSON (one card, the fields of circuit-tracer's
  `frontend/feature_models.py`). G is a generation number: a later run writes
  new files and switches to them in one step.
- `index.json.gz`: gzip-compressed JSON, a list with one entry per layer,
  `{"filename": ..., "offsets": [...]}`; feature i's record spans bytes
  `offsets[i]` to `offsets[i + 1]` (n_features + 1 offsets). A feature without a
  card has an empty span. circuit-tracer's page finds feature i of layer L
  through `cantor(L, i)`, exactly as our Neuronpedia graph JSON numbers it.
- `features.json`: what produced the cards (model, transcoder, corpus, settings).
- `labels.json`: `{"automatic": {"L/I": label}, "user": {"L/I": label}}`; user
  labels override automatic ones and are the only part a person edits.

`index.json.gz` is written last, by an atomic rename: a folder without it is
unfinished and never read as cards; one with it always points at complete files.
One feature is read with a seek into its layer's file, without reading the rest.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import struct
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from circuitscope.errors import CircuitscopeError

INDEX_FILE = "index.json.gz"
MANIFEST_FILE = "features.json"
LABELS_FILE = "labels.json"
CARD_FIELDS = (
    "transcoder_id",
    "index",
    "examples_quantiles",
    "top_logits",
    "bottom_logits",
    "act_min",
    "act_max",
    "quantile_values",
    "histogram",
    "activation_frequency",
)
"""The fields of circuit-tracer's feature model; every card has them (and may have more)."""
_LENGTH = struct.Struct("<I")
_BIN_NAME = re.compile(r"layer_(\d+)-(\d+)\.bin$")


def encode_record(card: Mapping[str, Any]) -> bytes:
    """One card as a record: 4-byte little-endian length + zlib-compressed JSON."""
    payload = zlib.compress(json.dumps(card, separators=(",", ":")).encode("utf-8"))
    return _LENGTH.pack(len(payload)) + payload


def decode_record(blob: bytes, where: str) -> dict[str, Any]:
    """The card in `blob` (one record, possibly followed by other bytes)."""
    if len(blob) < _LENGTH.size:
        raise CircuitscopeError(f"{where}: truncated record ({len(blob)} bytes)")
    (length,) = _LENGTH.unpack_from(blob)
    if length > len(blob) - _LENGTH.size:
        raise CircuitscopeError(
            f"{where}: truncated record (length {length}, {len(blob) - 4} bytes present)"
        )
    try:
        card = json.loads(zlib.decompress(blob[_LENGTH.size : _LENGTH.size + length]))
    except (zlib.error, ValueError) as error:
        raise CircuitscopeError(f"{where}: corrupt record ({error})") from None
    if not isinstance(card, dict):
        raise CircuitscopeError(f"{where}: corrupt record (not a JSON object)")
    return card


def read_index(features_dir: Path) -> list[dict[str, Any]]:
    """The per-layer entries of `index.json.gz` ({"filename", "offsets"}), checked."""
    path = Path(features_dir) / INDEX_FILE
    if not path.is_file():
        raise CircuitscopeError(
            f"{features_dir} is not a finished features folder (no {INDEX_FILE}); "
            "run `circuitscope features` to make one"
        )
    try:
        index = json.loads(gzip.decompress(path.read_bytes()))
    except (OSError, EOFError, zlib.error, ValueError) as error:
        raise CircuitscopeError(f"{path}: corrupt index ({error})") from None
    if not isinstance(index, list) or not all(_valid_entry(entry) for entry in index):
        raise CircuitscopeError(f"{path}: corrupt index (expected a list of layer entries)")
    return index


def _valid_entry(entry: Any) -> bool:
    if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str):
        return False
    offsets = entry.get("offsets")
    return (
        isinstance(offsets, list)
        and len(offsets) >= 1
        and all(isinstance(o, int) for o in offsets)
        and all(a <= b for a, b in zip(offsets, offsets[1:], strict=False))
    )


def read_feature(features_dir: Path, layer: int, index: int) -> dict[str, Any]:
    """Feature `index` of `layer`: its card (circuit-tracer's feature JSON), read alone."""
    features_dir = Path(features_dir)
    entries = read_index(features_dir)
    if not 0 <= layer < len(entries):
        raise CircuitscopeError(f"no layer {layer}: the cards cover layers 0-{len(entries) - 1}")
    offsets = entries[layer]["offsets"]
    if not 0 <= index < len(offsets) - 1:
        raise CircuitscopeError(
            f"no feature {index} in layer {layer}: it has {len(offsets) - 1} features"
        )
    start, end = offsets[index], offsets[index + 1]
    if start == end:
        raise CircuitscopeError(
            f"feature {layer}/{index} has no card in {features_dir} "
            "(build it with `circuitscope features ... --features-of GRAPH`)"
        )
    path = features_dir / entries[layer]["filename"]
    where = f"{path} (feature {layer}/{index})"
    try:
        with path.open("rb") as file:
            file.seek(start)
            blob = file.read(end - start)
    except OSError as error:
        raise CircuitscopeError(f"cannot read {path}: {error.strerror or error}") from None
    card = decode_record(blob, where)
    if any(field not in card for field in CARD_FIELDS):
        raise CircuitscopeError(f"{where}: corrupt record (missing card fields)")
    return card


def card_ids(features_dir: Path) -> list[tuple[int, int]]:
    """(layer, index) of every feature that has a card."""
    ids = []
    for layer, entry in enumerate(read_index(Path(features_dir))):
        offsets = entry["offsets"]
        ids.extend((layer, i) for i in range(len(offsets) - 1) if offsets[i] < offsets[i + 1])
    return ids


def read_manifest(features_dir: Path) -> dict[str, Any]:
    """`features.json` of a finished folder."""
    read_index(Path(features_dir))
    path = Path(features_dir) / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CircuitscopeError(f"{path}: unreadable ({error})") from None
    if not isinstance(manifest, dict):
        raise CircuitscopeError(f"{path}: corrupt (not a JSON object)")
    return manifest


def write_cards(
    features_dir: Path,
    cards: Mapping[tuple[int, int], Mapping[str, Any]],
    n_features: Sequence[int],
    manifest: Mapping[str, Any],
) -> None:
    """Add `cards` ({(layer, index): card}) to the folder, keeping the cards already there.

    n_features: features per layer. A new card replaces an old one of the same
    feature. New layer files are written first, then the manifest, then the index
    (atomically); the files the old index named are removed last.
    """
    features_dir = Path(features_dir)
    features_dir.mkdir(parents=True, exist_ok=True)
    old = read_index(features_dir) if (features_dir / INDEX_FILE).is_file() else []
    if old and [len(entry["offsets"]) - 1 for entry in old] != list(n_features):
        raise CircuitscopeError(
            f"{features_dir} holds cards of a transcoder with other layer sizes; "
            "use another output folder"
        )
    generation = 1 + max((_generation(entry["filename"]) for entry in old), default=-1)
    entries = []
    for layer, count in enumerate(n_features):
        mine = {index: card for (at, index), card in cards.items() if at == layer}
        previous = (features_dir, old[layer]) if old else None
        entries.append(_write_layer(features_dir, layer, generation, count, mine, previous))
    _atomic_write(features_dir / MANIFEST_FILE, json.dumps(dict(manifest), indent=1).encode())
    _atomic_write(features_dir / INDEX_FILE, gzip.compress(json.dumps(entries).encode(), mtime=0))
    for entry in old:
        (features_dir / entry["filename"]).unlink(missing_ok=True)


def _write_layer(
    features_dir: Path,
    layer: int,
    generation: int,
    count: int,
    cards: Mapping[int, Mapping[str, Any]],
    previous: tuple[Path, dict[str, Any]] | None,
) -> dict[str, Any]:
    """Write one layer's file; returns its index entry."""
    if any(not 0 <= index < count for index in cards):
        raise CircuitscopeError(f"layer {layer}: a card's index is outside 0-{count - 1}")
    old_bytes, old_offsets = b"", [0] * (count + 1)
    if previous is not None:
        old_bytes = (previous[0] / previous[1]["filename"]).read_bytes()
        old_offsets = previous[1]["offsets"]
    filename = f"layer_{layer}-{generation}.bin"
    offsets, position = [0], 0
    with (features_dir / filename).open("wb") as file:
        for index in range(count):
            if index in cards:
                record = encode_record(cards[index])
            else:
                record = old_bytes[old_offsets[index] : old_offsets[index + 1]]
            file.write(record)
            position += len(record)
            offsets.append(position)
        file.flush()
        os.fsync(file.fileno())
    return {"filename": filename, "offsets": offsets}


def _generation(filename: str) -> int:
    match = _BIN_NAME.search(filename)
    return int(match.group(2)) if match else 0


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def label_key(layer: int, index: int) -> str:
    return f"{layer}/{index}"


def _read_label_file(features_dir: Path) -> dict[str, dict[str, str]]:
    path = Path(features_dir) / LABELS_FILE
    if not path.is_file():
        return {"automatic": {}, "user": {}}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CircuitscopeError(f"{path}: unreadable labels file ({error})") from None
    if not isinstance(data, dict):
        raise CircuitscopeError(f"{path}: labels file must be a JSON object")
    return {part: dict(data.get(part) or {}) for part in ("automatic", "user")}


def _parse_key(key: str, path: Path) -> tuple[int, int]:
    layer, _, index = key.partition("/")
    if not (layer.isdigit() and index.isdigit()):
        raise CircuitscopeError(f"{path}: bad label key {key!r} (expected 'LAYER/INDEX')")
    return int(layer), int(index)


def read_labels(features_dir: Path) -> dict[tuple[int, int], str]:
    """{(layer, index): label}: the automatic labels, overridden by the user's."""
    data = _read_label_file(Path(features_dir))
    path = Path(features_dir) / LABELS_FILE
    merged = {**data["automatic"], **data["user"]}
    return {_parse_key(key, path): str(label) for key, label in merged.items()}


def write_label(features_dir: Path, layer: int, index: int, label: str) -> None:
    """Set the user's label of one feature (an empty label removes the override)."""
    data = _read_label_file(Path(features_dir))
    key = label_key(layer, index)
    if label.strip():
        data["user"][key] = label.strip()
    else:
        data["user"].pop(key, None)
    _atomic_write(Path(features_dir) / LABELS_FILE, json.dumps(data, indent=1).encode())


def write_automatic_labels(features_dir: Path, labels: Mapping[tuple[int, int], str]) -> None:
    """Add or replace automatic labels; the user's labels stay as they are."""
    data = _read_label_file(Path(features_dir))
    data["automatic"].update({label_key(*key): label for key, label in labels.items()})
    _atomic_write(Path(features_dir) / LABELS_FILE, json.dumps(data, indent=1).encode())
