"""The server's /api/compare on two traced tiny folders: the exact shared and only sets,
the same JSON as `compare_graphs`, and clear errors for what cannot be compared."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_server import request
from viewer_data import feature_keys

from circuitscope.graph.compare import compare_graphs
from circuitscope.graph.files import load_graph
from circuitscope.graph.graph import Graph
from circuitscope.graph.supernodes_files import read_suggestions


def pruned_features(graph: Graph) -> set[tuple[int, int]]:
    return {(int(graph.node_layer[i]), int(graph.node_feature[i])) for i in range(graph.n_features)}


def keys(rows: list[dict]) -> list[tuple[int, int]]:
    return [(row["layer"], row["index"]) for row in rows]


def test_compare_answers_the_shared_and_only_features_of_two_traces(compare_dirs, serve):
    english, french = compare_dirs
    served = serve(english, french)
    status, answer = request(served.port, "GET", "/api/compare/0/1")
    assert status == 200
    # The page's documents hold the pruned graphs' features: what the page finds nodes by.
    on_page_a = feature_keys(json.loads((english / "capital.json").read_text()))
    on_page_b = feature_keys(json.loads((french / "capitale.json").read_text()))
    a, b = load_graph(english, "pruned"), load_graph(french, "pruned")
    assert on_page_a == pruned_features(a) and on_page_b == pruned_features(b)
    shared, only_a, only_b = on_page_a & on_page_b, on_page_a - on_page_b, on_page_b - on_page_a
    assert shared and only_a and only_b  # the tiny traces overlap, and not wholly
    assert set(keys(answer["shared"])) == shared and len(answer["shared"]) == len(shared)
    assert set(keys(answer["only_a"])) == only_a and len(answer["only_a"]) == len(only_a)
    assert set(keys(answer["only_b"])) == only_b and len(answer["only_b"]) == len(only_b)
    summary = answer["summary"]
    assert (summary["n_shared"], summary["n_only_a"], summary["n_only_b"]) == (
        len(shared),
        len(only_a),
        len(only_b),
    )
    assert summary["jaccard"] == pytest.approx(len(shared) / len(on_page_a | on_page_b))
    assert summary["influence_source"] == "stored"
    assert answer["prompt_a"] == "The capital of France is"
    assert answer["prompt_b"] == "La capitale de la France est"
    expected = compare_graphs(a, b, read_suggestions(english), read_suggestions(french))
    assert answer == json.loads(json.dumps(expected.to_dict()))
    assert answer["supernodes"] is not None
    groups = answer["supernodes"]
    assert len(groups["matched"]) + len(groups["only_a"]) == len(
        read_suggestions(english)["groups"]
    )
    status, backward = request(served.port, "GET", "/api/compare/1/0")
    assert status == 200
    assert set(keys(backward["only_a"])) == only_b and set(keys(backward["only_b"])) == only_a
    assert backward["prompt_a"] == answer["prompt_b"]


def test_without_supernodes_in_one_folder_the_groups_are_not_compared(compare_dirs, serve):
    english, french = compare_dirs
    (french / "supernodes.json").unlink()
    served = serve(english, french)
    status, answer = request(served.port, "GET", "/api/compare/0/1")
    assert status == 200 and answer["supernodes"] is None
    assert answer["summary"]["n_shared"] > 0


def other_transcoder(folder: Path, root: Path) -> Path:
    """A copy of `folder` whose graphs say another transcoder traced them."""
    other = Path(shutil.copytree(folder, root / "other-transcoder"))
    for name in ("pruned.json", "graph.json"):
        info = json.loads((other / name).read_text())
        info["metadata"]["transcoder"] = str(root / "another-clt")
        (other / name).write_text(json.dumps(info))
    return other


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/api/compare/0/9", 404, "no graph '9'"),
        ("/api/compare/x/1", 404, "no graph 'x'"),
        ("/api/compare/-1/1", 404, "nothing at"),
        ("/api/compare/0", 404, "nothing at"),
        ("/api/compare/0/2", 422, "lone.json is a graph JSON file, not a trace folder"),
        ("/api/compare/3/0", 422, "is not a trace folder (no graph.json + graph.safetensors)"),
        ("/api/compare/0/4", 422, "were traced with different transcoders"),
        ("/api/compare/4/1", 422, "were traced with different transcoders"),
    ],
)
def test_what_cannot_be_compared_is_a_clear_error(
    compare_dirs, serve, tmp_path, path, status, message
):
    english, french = compare_dirs
    lone = tmp_path / "lone.json"
    lone.write_bytes((english / "capital.json").read_bytes())
    empty = tmp_path / "empty"
    empty.mkdir()
    served = serve(english, french, lone, empty, other_transcoder(french, tmp_path))
    got, answer = request(served.port, "GET", path)
    assert got == status and isinstance(answer, dict)
    assert message in answer["error"]
    assert request(served.port, "GET", "/api/compare/0/1")[0] == 200  # and it goes on
