"""Comparing two graphs: hand-built graphs with a known overlap, supernode matching on
hand-made documents, and `circuitscope compare` on trace folders."""

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from graph_builders import make_graph

from circuitscope.cli import main
from circuitscope.errors import CircuitscopeError
from circuitscope.graph.compare import (
    Supernode,
    compare_graphs,
    jaccard,
    match_supernodes,
    node_influence,
)
from circuitscope.graph.files import load_graph, save_graph
from circuitscope.graph.graph import ERROR, FEATURE, LOGIT, TOKEN, Graph
from circuitscope.graph.neuronpedia import node_ids
from circuitscope.graph.supernodes_files import read_suggestions
from circuitscope.testing.tiny_graphs import write_tiny_folders


def feature_graph(
    features: list[tuple[int, int, int]],
    kinds_after: list[int],
    edges: dict[tuple[int, int], float],
    logit_probabilities: list[float],
    prompt: str,
) -> Graph:
    """Feature nodes (layer, index, position), then nodes of `kinds_after` (errors, tokens,
    logits), edges {(target, source): weight} by node index; 3 layers, 4 tokens."""
    kinds = [FEATURE] * len(features) + kinds_after
    values = [1.0] * len(features) + [0.0] * (len(kinds) - len(features))
    values[len(kinds) - len(logit_probabilities) :] = logit_probabilities
    graph = make_graph(kinds, edges, values)
    layer, feature, position = (
        graph.node_layer.clone(),
        graph.node_feature.clone(),
        [0] * len(kinds),
    )
    for node, (node_layer, index, node_position) in enumerate(features):
        layer[node], feature[node], position[node] = node_layer, index, node_position
    return dataclasses.replace(
        graph,
        prompt=prompt,
        node_layer=layer,
        node_feature=feature,
        node_position=torch.tensor(position),
        input_ids=torch.arange(4),
        input_tokens=["<bos>", "w1", "w2", "w3"],
        n_layers=3,
    )


def graph_a() -> Graph:
    """Features 0 (0,1)@1, 1 (0,1)@2, 2 (1,5)@2, 3 (1,7)@2; 4 error, 5 token, 6 logit p=0.5.

    L <- 0 (1), 1 (1), 2 (2), 3 (-4); 3 <- 2 (3), 3 <- t (1); 0, 1 <- t; 2 <- e.
    Normalised: L: 1/8, 1/8, 2/8, 4/8; node 3: 2 0.75, t 0.25.
    Influence: 0 and 1 0.0625, 3 0.25, 2 0.125 + 0.25 · 0.75 = 0.3125.
    Per feature: (0,1) 0.125 (2 nodes), (1,5) 0.3125, (1,7) 0.25; total 0.6875.
    """
    edges = {(6, 0): 1.0, (6, 1): 1.0, (6, 2): 2.0, (6, 3): -4.0}
    edges |= {(3, 2): 3.0, (3, 5): 1.0, (0, 5): 1.0, (1, 5): 1.0, (2, 4): 1.0}
    features = [(0, 1, 1), (0, 1, 2), (1, 5, 2), (1, 7, 2)]
    return feature_graph(features, [ERROR, TOKEN, LOGIT], edges, [0.5], "in English")


def graph_b() -> Graph:
    """Features 0 (0,1)@3, 1 (1,7)@1, 2 (1,7)@3, 3 (2,9)@3; 4 error, 5, 6 tokens,
    7 logit p=0.3, 8 logit p=0.1.

    L7 <- 0 (1), 3 (3); L8 <- 1 (2), 2 (-2); 3 <- 2 (1); 0, 2 <- t5; 1 <- t6.
    Influence: 0 0.3 · 0.25 = 0.075, 3 0.3 · 0.75 = 0.225, 1 0.1 · 0.5 = 0.05,
    2 0.05 + 0.225 = 0.275.
    Per feature: (0,1) 0.075, (1,7) 0.325 (2 nodes), (2,9) 0.225; total 0.625.
    """
    edges = {(7, 0): 1.0, (7, 3): 3.0, (8, 1): 2.0, (8, 2): -2.0}
    edges |= {(3, 2): 1.0, (0, 5): 1.0, (2, 5): 1.0, (1, 6): 1.0}
    features = [(0, 1, 3), (1, 7, 1), (1, 7, 3), (2, 9, 3)]
    kinds = [ERROR, TOKEN, TOKEN, LOGIT, LOGIT]
    return feature_graph(features, kinds, edges, [0.3, 0.1], "en français")


def keys(rows) -> list[tuple[int, int]]:
    return [row.key for row in rows]


def test_node_influence_is_the_hand_computed_walk():
    expected_a = [0.0625, 0.0625, 0.3125, 0.25]
    assert node_influence(graph_a()).tolist() == pytest.approx(expected_a, abs=1e-12)
    assert node_influence(graph_b()).tolist() == pytest.approx(
        [0.075, 0.05, 0.275, 0.225], abs=1e-12
    )


def test_shared_and_only_features_with_hand_computed_influence():
    result = compare_graphs(graph_a(), graph_b())
    assert keys(result.shared) == [(1, 7), (0, 1)]  # by 0.25 + 0.325, then 0.125 + 0.075
    assert keys(result.only_a) == [(1, 5)]
    assert keys(result.only_b) == [(2, 9)]
    table = {
        row.key: (row.influence_a, row.influence_b, row.nodes_a, row.nodes_b)
        for row in (*result.shared, *result.only_a, *result.only_b)
    }
    expected = {
        (1, 7): (0.25, 0.325, 1, 2),
        (0, 1): (0.125, 0.075, 2, 1),
        (1, 5): (0.3125, 0.0, 1, 0),
        (2, 9): (0.0, 0.225, 0, 1),
    }
    assert table.keys() == expected.keys()
    for key, (in_a, in_b, nodes_a, nodes_b) in expected.items():
        assert table[key][:2] == pytest.approx((in_a, in_b), abs=1e-12), key
        assert table[key][2:] == (nodes_a, nodes_b), key
    assert result.shared[0].positions_a == (2,) and result.shared[0].positions_b == (1, 3)
    assert result.shared[1].positions_a == (1, 2) and result.shared[1].positions_b == (3,)
    assert result.only_b[0].positions_a == ()
    summary = result.summary
    assert (summary.n_shared, summary.n_only_a, summary.n_only_b) == (2, 1, 1)
    assert summary.jaccard == 0.5
    assert summary.influence_a == pytest.approx(0.6875) and summary.influence_b == 0.625
    assert summary.shared_share_a == pytest.approx(0.375 / 0.6875)
    assert summary.shared_share_b == pytest.approx(0.4 / 0.625)
    assert summary.influence_source == "recomputed"
    assert (result.prompt_a, result.prompt_b) == ("in English", "en français")
    assert result.supernodes is None


def test_swapping_the_graphs_swaps_the_sides():
    forward, backward = compare_graphs(graph_a(), graph_b()), compare_graphs(graph_b(), graph_a())
    assert keys(backward.only_a) == keys(forward.only_b)
    assert keys(backward.only_b) == keys(forward.only_a)
    assert sorted(keys(backward.shared)) == sorted(keys(forward.shared))
    assert backward.summary.shared_share_a == forward.summary.shared_share_b


def test_stored_influence_is_used_when_both_graphs_carry_it():
    a, b = graph_a(), graph_b()
    a.node_influence = torch.tensor([0.5, 0.25, 0.0, 1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    only_one = compare_graphs(a, b)  # B has none: both recomputed, comparable
    assert only_one.summary.influence_source == "recomputed"
    assert only_one.shared[1].influence_a == pytest.approx(0.125)
    b.node_influence = torch.tensor([0.0, 0.5, 0.5, 1.0, 0, 0, 0, 0, 0], dtype=torch.float64)
    result = compare_graphs(a, b)
    assert result.summary.influence_source == "stored"
    rows = {row.key: (row.influence_a, row.influence_b) for row in result.shared}
    assert rows == {(0, 1): (0.75, 0.0), (1, 7): (1.0, 1.0)}
    assert keys(result.shared) == [(1, 7), (0, 1)]
    assert [(row.key, row.influence_a) for row in result.only_a] == [((1, 5), 0.0)]
    assert [(row.key, row.influence_b) for row in result.only_b] == [((2, 9), 1.0)]
    assert result.summary.shared_share_a == 1.0  # 1.75 of 1.75
    assert result.summary.shared_share_b == 0.5  # 1.0 of 2.0


def test_equal_influence_is_ordered_by_layer_then_index():
    a, b = graph_a(), graph_b()
    a.node_influence = torch.tensor([0.2, 0.0, 0.2, 0.2, 0, 0, 0], dtype=torch.float64)
    b.node_influence = torch.zeros(b.n_nodes, dtype=torch.float64)
    result = compare_graphs(a, b)
    assert keys(result.shared) == [(0, 1), (1, 7)]  # both 0.2 + 0.0
    a.node_feature[0] = a.node_feature[1] = 8  # (0,8) now only in A, tied with (1,5)
    result = compare_graphs(a, b)
    assert keys(result.only_a) == [(0, 8), (1, 5)]
    assert keys(result.shared) == [(1, 7)]
    assert keys(result.only_b) == [(0, 1), (2, 9)]  # all 0.0: layer, then index


def test_the_result_does_not_depend_on_node_order_and_repeats():
    a = graph_a()
    order = torch.tensor([3, 1, 2, 0, 4, 5, 6])  # features permuted, the rest in place
    permuted = Graph.from_adjacency(
        a.adjacency[order][:, order],
        prompt=a.prompt,
        input_ids=a.input_ids,
        input_tokens=a.input_tokens,
        node_kind=a.node_kind[order],
        node_layer=a.node_layer[order],
        node_position=a.node_position[order],
        node_feature=a.node_feature[order],
        node_value=a.node_value[order],
        n_layers=a.n_layers,
        logit_labels=a.logit_labels,
    )
    first, again = compare_graphs(a, graph_b()), compare_graphs(a, graph_b())
    assert first == again and first.to_dict() == again.to_dict()
    reordered = compare_graphs(permuted, graph_b())
    for rows_x, rows_y in (
        (reordered.shared, first.shared),
        (reordered.only_a, first.only_a),
        (reordered.only_b, first.only_b),
    ):
        assert keys(rows_x) == keys(rows_y)
        for row_x, row_y in zip(rows_x, rows_y, strict=True):
            assert (row_x.positions_a, row_x.nodes_a) == (row_y.positions_a, row_y.nodes_a)
            assert row_x.influence_a == pytest.approx(row_y.influence_a, abs=1e-12)
            assert row_x.influence_b == row_y.influence_b


def suggestions(groups: list[tuple[str, list[str]]]) -> dict:
    """A hand-made supernodes.json document (only what comparing reads, and its format)."""
    return {
        "format": "circuitscope-supernodes",
        "groups": [{"label": label, "members": members} for label, members in groups],
    }


def test_supernodes_are_matched_by_feature_overlap():
    a, b = graph_a(), graph_b()
    assert node_ids(a)[:4] == ["0_1_1", "0_1_2", "1_5_2", "1_7_2"]
    assert node_ids(b)[:4] == ["0_1_3", "1_7_1", "1_7_3", "2_9_3"]
    document_a = suggestions([("capital A", ["0_1_1", "0_1_2", "1_7_2"]), ("alone", ["1_5_2"])])
    document_b = suggestions([("tail B", ["2_9_3", "1_7_3"]), ("capital B", ["0_1_3", "1_7_1"])])
    groups = compare_graphs(a, b, document_a, document_b).supernodes
    assert groups is not None and groups.threshold == 0.5
    assert len(groups.matched) == 1
    match = groups.matched[0]
    assert (match.a.label, match.b.label, match.shared, match.jaccard) == (
        "capital A",
        "capital B",
        2,
        1.0,
    )
    assert match.a.features == match.b.features == ((0, 1), (1, 7))
    assert (match.a.group, match.b.group, match.a.nodes, match.b.nodes) == (0, 1, 3, 2)
    assert match.a.influence == pytest.approx(0.0625 + 0.0625 + 0.25)
    assert match.b.influence == pytest.approx(0.075 + 0.05)
    assert [(g.label, g.features) for g in groups.only_a] == [("alone", ((1, 5),))]
    assert [(g.label, g.features) for g in groups.only_b] == [("tail B", ((1, 7), (2, 9)))]
    assert groups.only_b[0].influence == pytest.approx(0.5)
    # "capital A" and "tail B" share 1 of 3 features: a match at a threshold of 1/3
    low = compare_graphs(a, b, document_a, document_b, match_threshold=0.3).supernodes
    assert low is not None and [(m.a.label, m.b.label) for m in low.matched] == [
        ("capital A", "capital B")  # one to one: "capital A" is taken by the better match
    ]
    assert compare_graphs(a, b, document_a, None).supernodes is None


def group(number: int, features: list[tuple[int, int]], influence: float = 0.0) -> Supernode:
    return Supernode(number, f"g{number}", tuple(sorted(features)), len(features), influence)


def test_matching_is_one_to_one_best_first_with_an_inclusive_threshold():
    x, y = group(0, [(0, 1), (0, 2)]), group(1, [(0, 3), (0, 4)], influence=1.0)
    partial_match = group(0, [(0, 1), (0, 2), (0, 3)], influence=5.0)  # x: 2/3, y: 1/4
    exact = group(1, [(0, 1), (0, 2)])  # x: 1
    half = group(2, [(0, 3), (0, 4), (0, 5), (0, 6)])  # y: exactly 0.5
    result = match_supernodes([x, y], [partial_match, exact, half], 0.5)
    pairs = [(m.a.group, m.b.group, m.jaccard) for m in result.matched]
    assert pairs == [(1, 2, 0.5), (0, 1, 1.0)]  # most influential pair first: y's 1.0
    assert result.only_a == () and [g.group for g in result.only_b] == [0]
    stricter = match_supernodes([x, y], [partial_match, exact, half], 0.51)
    assert [(m.a.group, m.b.group) for m in stricter.matched] == [(0, 1)]
    assert [g.group for g in stricter.only_a] == [1]
    assert [g.group for g in stricter.only_b] == [0, 2]  # influence 5.0, then 0.0
    assert jaccard(set(), set()) == 1.0 and jaccard({1}, {2}) == 0.0


def test_a_document_of_another_graph_is_refused():
    stale = suggestions([("gone", ["0_1_1", "2_9_3"])])
    with pytest.raises(CircuitscopeError, match="graph A: group 0 names '2_9_3'"):
        compare_graphs(graph_a(), graph_b(), stale, suggestions([]))
    with pytest.raises(CircuitscopeError, match="graph B: the document has no list of groups"):
        compare_graphs(graph_a(), graph_b(), suggestions([]), {"format": "x"})
    with pytest.raises(ValueError, match="match_threshold"):
        compare_graphs(graph_a(), graph_b(), match_threshold=0.0)


# --- the command ----------------------------------------------------------------------


def hand_trace_folder(root: Path, graph: Graph, transcoder: str) -> Path:
    """A trace folder holding `graph` as both the full and the pruned graph; its metadata
    names `transcoder` (resolved), config.json the last part of it (as given)."""
    graph.metadata["transcoder"] = transcoder
    save_graph(graph, root, "graph")
    save_graph(graph, root, "pruned")
    (root / "config.json").write_text(json.dumps({"transcoder": Path(transcoder).name}))
    return root


def test_compare_prints_the_hand_computed_tables(tmp_path, capsys):
    folder_a = hand_trace_folder(tmp_path / "a", graph_a(), "/transcoders/clt")
    folder_b = hand_trace_folder(tmp_path / "b", graph_b(), "/transcoders/clt")
    (folder_a / "supernodes.json").write_text(
        json.dumps(suggestions([("capital A", ["0_1_1", "1_7_2"])]))
    )
    (folder_b / "supernodes.json").write_text(
        json.dumps(suggestions([("capital B", ["0_1_3", "1_7_1", "1_7_3"])]))
    )
    out = tmp_path / "comparison.json"
    assert main(["compare", str(folder_a), str(folder_b), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert "features: 2 shared, 1 only in A, 1 only in B; Jaccard 0.500" in printed
    assert "influence on shared features: 54.5% of A's, 64.0% of B's" in printed
    shared = lines.index("shared features (2)")
    assert lines[shared + 2].split()[:5] == ["L1/F7", "0.2500", "0.3250", "1", "2"]
    assert lines[shared + 3].split()[:5] == ["L0/F1", "0.1250", "0.0750", "2", "1"]
    only_a = lines.index("only in A (1)")
    assert lines[only_a + 2].split()[:3] == ["L1/F5", "0.3125", "1"]
    only_b = lines.index("only in B (1)")
    assert lines[only_b + 2].split()[:3] == ["L2/F9", "0.2250", "1"]
    assert "supernodes (Jaccard ≥ 0.5): 1 matched, 0 only in A, 0 only in B" in printed
    assert "capital A" in printed and "capital B" in printed
    expected = compare_graphs(
        graph_a(), graph_b(), read_suggestions(folder_a), read_suggestions(folder_b)
    )
    assert json.loads(out.read_text()) == json.loads(json.dumps(expected.to_dict()))
    assert main(["compare", str(folder_a), str(folder_b), "--top", "1"]) == 0
    printed = capsys.readouterr().out
    assert "L0/F1" not in printed and "… 1 more (all of them in --json)" in printed


def test_compare_without_supernodes_says_so(tmp_path, capsys):
    folder_a = hand_trace_folder(tmp_path / "a", graph_a(), "/transcoders/clt")
    folder_b = hand_trace_folder(tmp_path / "b", graph_b(), "/transcoders/clt")
    (folder_a / "supernodes.json").write_text(json.dumps(suggestions([])))
    assert main(["compare", str(folder_a), str(folder_b)]) == 0
    assert "supernodes: not compared (B without supernodes.json" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("transcoder_b", "message"),
    [
        ("/transcoders/plt", "different transcoders (/transcoders/clt and /transcoders/plt)"),
        ("", "different transcoders (clt and other)"),  # B's graph names none: config.json
    ],
)
def test_graphs_of_different_transcoders_are_refused(tmp_path, capsys, transcoder_b, message):
    folder_a = hand_trace_folder(tmp_path / "a", graph_a(), "/transcoders/clt")
    folder_b = hand_trace_folder(tmp_path / "b", graph_b(), transcoder_b)
    if not transcoder_b:
        (folder_b / "config.json").write_text(json.dumps({"transcoder": "other"}))
    assert main(["compare", str(folder_a), str(folder_b)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--top", "-1"], "--top must be at least 0"),
        (["--match-threshold", "0"], "--match-threshold must be in (0, 1]"),
        (["--json", "."], "--json . is a folder"),
    ],
)
def test_bad_options_are_one_line(tmp_path, capsys, extra, message):
    folder_a = hand_trace_folder(tmp_path / "a", graph_a(), "/transcoders/clt")
    assert main(["compare", str(folder_a), str(folder_a), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_a_folder_that_is_not_a_trace_is_one_line(tmp_path, capsys):
    folder_a = hand_trace_folder(tmp_path / "a", graph_a(), "/transcoders/clt")
    (tmp_path / "empty").mkdir()
    assert main(["compare", str(folder_a), str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is not a trace folder" in err


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two prompts traced on the tiny model and transcoder, each with supernodes."""
    model, transcoder = write_tiny_folders(tmp_path_factory.mktemp("compare"))
    root = tmp_path_factory.mktemp("graphs")
    folders = []
    for name, prompt in (
        ("en", "The capital of France is"),
        ("fr", "La capitale de la France est"),
    ):
        args = ["trace", str(model), str(transcoder), prompt, "-o", str(root / name)]
        assert main([*args, "--no-progress"]) == 0
        assert main(["supernodes", str(root / name), "--no-check"]) == 0
        folders.append(root / name)
    return folders[0], folders[1]


def test_compare_on_traced_folders(traced, tmp_path, capsys):
    english, french = traced
    out = tmp_path / "out.json"
    assert main(["compare", str(english), str(french), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    a, b = load_graph(english, "pruned"), load_graph(french, "pruned")
    expected = compare_graphs(a, b, read_suggestions(english), read_suggestions(french))
    assert expected.summary.influence_source == "stored"
    assert expected.summary.n_shared > 0 and expected.only_a and expected.only_b
    features_a = {(int(a.node_layer[i]), int(a.node_feature[i])) for i in range(a.n_features)}
    features_b = {(int(b.node_layer[i]), int(b.node_feature[i])) for i in range(b.n_features)}
    assert set(keys(expected.shared)) == features_a & features_b
    assert set(keys(expected.only_a)) == features_a - features_b
    assert json.loads(out.read_text()) == json.loads(json.dumps(expected.to_dict()))
    assert f"shared features ({expected.summary.n_shared})" in printed
    assert expected.shared[0].label in printed
    assert expected.supernodes is not None
    total = len(expected.supernodes.matched) + len(expected.supernodes.only_a)
    assert total == len(read_suggestions(english)["groups"])


def test_traced_folders_of_another_transcoder_are_refused(traced, tmp_path, capsys):
    english, french = traced
    other = tmp_path / "other"
    shutil.copytree(french, other)
    for name in ("pruned.json", "graph.json"):  # as if traced with another transcoder
        info = json.loads((other / name).read_text())
        info["metadata"]["transcoder"] = str(tmp_path / "another-clt")
        (other / name).write_text(json.dumps(info))
    assert main(["compare", str(english), str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "were traced with different transcoders" in err
