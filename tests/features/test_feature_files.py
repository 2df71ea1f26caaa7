"""The feature folder's format, read back by an independent reader written from its description."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from format_reader import independent_read

from circuitscope.errors import CircuitscopeError
from circuitscope.features.files import (
    CARD_FIELDS,
    INDEX_FILE,
    card_ids,
    read_feature,
    read_labels,
    write_automatic_labels,
    write_label,
)
from circuitscope.testing.tiny_cards import tiny_card, write_tiny_cards

FEATURES = [(0, 1), (0, 4), (2, 0), (2, 3)]


def test_independent_reader_reads_every_card(tmp_path: Path) -> None:
    write_tiny_cards(tmp_path, FEATURES, transcoder_id="t1")
    index_data = json.loads(gzip.decompress((tmp_path / INDEX_FILE).read_bytes()))
    assert [len(e["offsets"]) for e in index_data] == [6, 2, 5]
    for layer, index in FEATURES:
        card = independent_read(tmp_path, layer, index)
        assert set(CARD_FIELDS) <= set(card)
        assert card == tiny_card(layer, index, "t1")
        assert card["index"] == index and card["transcoder_id"] == "t1"
        assert read_feature(tmp_path, layer, index) == card
    assert card_ids(tmp_path) == FEATURES


def test_missing_layer_feature_or_card_is_one_line_error(tmp_path: Path) -> None:
    write_tiny_cards(tmp_path, FEATURES)
    with pytest.raises(CircuitscopeError, match="no layer 3"):
        read_feature(tmp_path, 3, 0)
    with pytest.raises(CircuitscopeError, match="no feature 5 in layer 0"):
        read_feature(tmp_path, 0, 5)
    with pytest.raises(CircuitscopeError, match="has no card"):
        read_feature(tmp_path, 0, 2)
    with pytest.raises(CircuitscopeError, match="not a finished features folder"):
        read_feature(tmp_path / "nothing", 0, 1)


def test_corrupt_or_truncated_files(tmp_path: Path) -> None:
    write_tiny_cards(tmp_path, FEATURES)
    entry = json.loads(gzip.decompress((tmp_path / INDEX_FILE).read_bytes()))[0]
    bin_path = tmp_path / entry["filename"]
    data = bytearray(bin_path.read_bytes())
    start = entry["offsets"][4]
    data[start + 10] ^= 0xFF
    bin_path.write_bytes(bytes(data))
    with pytest.raises(CircuitscopeError, match="corrupt record"):
        read_feature(tmp_path, 0, 4)
    bin_path.write_bytes(bytes(data[: start + 20]))
    with pytest.raises(CircuitscopeError, match="truncated record"):
        read_feature(tmp_path, 0, 4)
    index_bytes = (tmp_path / INDEX_FILE).read_bytes()
    (tmp_path / INDEX_FILE).write_bytes(index_bytes[: len(index_bytes) // 2])
    with pytest.raises(CircuitscopeError, match="corrupt index"):
        read_feature(tmp_path, 0, 1)


def test_adding_cards_keeps_old_ones(tmp_path: Path) -> None:
    from circuitscope.features.files import write_cards

    sizes = [5, 1, 4]
    write_cards(tmp_path, {k: tiny_card(*k) for k in FEATURES}, sizes, {"run": 1})
    old_files = sorted(p.name for p in tmp_path.glob("*.bin"))
    write_cards(tmp_path, {(0, 2): tiny_card(0, 2, "new")}, sizes, {"run": 2})
    assert sorted(p.name for p in tmp_path.glob("*.bin")) != old_files
    assert card_ids(tmp_path) == sorted([*FEATURES, (0, 2)])
    assert read_feature(tmp_path, 0, 2)["transcoder_id"] == "new"
    for layer, index in FEATURES:
        assert independent_read(tmp_path, layer, index) == tiny_card(layer, index)
    with pytest.raises(CircuitscopeError, match="other layer sizes"):
        write_cards(tmp_path, {}, [5, 1], {"run": 3})


def test_labels_user_overrides_automatic(tmp_path: Path) -> None:
    write_automatic_labels(tmp_path, {(0, 1): "auto a", (2, 3): "auto b"})
    write_label(tmp_path, 2, 3, "my label")
    assert read_labels(tmp_path) == {(0, 1): "auto a", (2, 3): "my label"}
    write_automatic_labels(tmp_path, {(2, 3): "auto c"})
    assert read_labels(tmp_path)[(2, 3)] == "my label"
    write_label(tmp_path, 2, 3, "")
    assert read_labels(tmp_path)[(2, 3)] == "auto c"
    (tmp_path / "labels.json").write_text("{broken")
    with pytest.raises(CircuitscopeError, match="labels file"):
        read_labels(tmp_path)


def test_an_interrupted_write_leaves_the_previous_cards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from circuitscope.features import files

    sizes = [5, 1, 4]
    files.write_cards(tmp_path, {k: tiny_card(*k) for k in FEATURES}, sizes, {"run": 1})
    calls = {"n": 0}
    real = files.encode_record

    def failing(card: dict) -> bytes:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(card)

    monkeypatch.setattr(files, "encode_record", failing)
    new_cards = {
        (0, 0): tiny_card(0, 0, "x"),
        (2, 1): tiny_card(2, 1, "x"),
        (2, 2): tiny_card(2, 2),
    }
    with pytest.raises(KeyboardInterrupt):
        files.write_cards(tmp_path, new_cards, sizes, {"run": 2})
    assert card_ids(tmp_path) == FEATURES  # the old index still names the old, complete files
    for layer, index in FEATURES:
        assert independent_read(tmp_path, layer, index) == tiny_card(layer, index)
    empty = tmp_path / "never-finished"
    calls["n"] = 0
    with pytest.raises(KeyboardInterrupt):
        files.write_cards(empty, {k: tiny_card(*k) for k in FEATURES}, sizes, {"run": 3})
    assert any(empty.iterdir())
    with pytest.raises(CircuitscopeError, match="not a finished features folder"):
        read_feature(empty, 0, 1)
