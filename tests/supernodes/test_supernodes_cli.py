"""`circuitscope supernodes` on a traced tiny folder: the file, its ids, the group check."""

import json
from pathlib import Path

import pytest
import torch

from circuitscope.cli import main
from circuitscope.graph.files import load_graph
from circuitscope.graph.neuronpedia import node_ids
from circuitscope.graph.supernodes_effects import group_effects_on_logits
from circuitscope.graph.trace_folder import TraceFolder
from circuitscope.interventions.group_validation import full_graph_members
from circuitscope.testing.tiny_cards import tiny_card, write_tiny_cards
from circuitscope.testing.tiny_graphs import write_tiny_folders


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, transcoder = write_tiny_folders(tmp_path_factory.mktemp("supernodes"))
    out = tmp_path_factory.mktemp("graph") / "graph"
    args = ["trace", str(model), str(transcoder), "The capital of France is", "-o", str(out)]
    assert main([*args, "--no-progress"]) == 0
    return out


@pytest.fixture(scope="module")
def checked(traced: Path) -> dict:
    assert main(["supernodes", str(traced), "--no-progress"]) == 0
    return json.loads((traced / "supernodes.json").read_text())


def test_members_are_node_ids_of_the_graph_json(traced, checked):
    document_path = TraceFolder.open(traced).document_path()
    assert document_path is not None
    page_ids = {node["node_id"] for node in json.loads(document_path.read_text())["nodes"]}
    groups = checked["groups"]
    assert len(groups) >= 2
    members = [m for group in groups for m in group["members"]]
    assert len(members) == len(set(members))  # no node in two groups
    assert set(members) <= page_ids
    assert all(len(group["members"]) >= 2 and group["label"] for group in groups)
    assert checked["coverage"]["grouped_features"] == len(members)


def test_each_group_carries_its_check(traced, checked):
    full, pruned = load_graph(traced, "graph"), load_graph(traced, "pruned")
    ids = {node_id: i for i, node_id in enumerate(node_ids(pruned))}
    groups = [[ids[m] for m in group["members"]] for group in checked["groups"]]
    expected = group_effects_on_logits(full, [full_graph_members(full, pruned, g) for g in groups])
    weights = full.node_value[full.n_sources :].double()
    expected = (expected.T.double() @ (weights / weights.sum())).tolist()
    rows = [group["check"] for group in checked["groups"]]
    assert [row["predicted"] for row in rows] == pytest.approx(expected, rel=1e-5, abs=1e-7)
    measured = torch.tensor([row["measured"] for row in rows])
    assert measured.abs().max() > 0
    for row in rows:
        agrees = (row["predicted"] > 0) == (row["measured"] > 0)
        close = abs(row["measured"] - row["predicted"]) <= 0.5 * abs(row["predicted"])
        assert row["passed"] == (agrees and close)
    summary = checked["check"]["agreement"]
    assert summary["n"] == len(rows) and summary["passed"] == sum(r["passed"] for r in rows)


def test_suggestions_are_deterministic_and_baseline_differs(traced, checked, tmp_path):
    assert main(["supernodes", str(traced), "--no-check"]) == 0
    again = json.loads((traced / "supernodes.json").read_text())
    assert [g["members"] for g in again["groups"]] == [g["members"] for g in checked["groups"]]
    assert [g["label"] for g in again["groups"]] == [g["label"] for g in checked["groups"]]
    assert all(g["check"] is None for g in again["groups"])
    assert main(["supernodes", str(traced), "--no-check", "--method", "baseline"]) == 0
    baseline = json.loads((traced / "supernodes.json").read_text())
    assert baseline["method"] == "baseline" and baseline["threshold"] == 0.5
    assert [g["members"] for g in baseline["groups"]] != [g["members"] for g in checked["groups"]]


def test_labels_come_from_cards(traced, tmp_path):
    pruned = load_graph(traced, "pruned")
    features = {
        (int(pruned.node_layer[i]), int(pruned.node_feature[i])) for i in range(pruned.n_features)
    }
    write_tiny_cards(tmp_path / "cards", features)
    assert (
        main(["supernodes", str(traced), "--no-check", "--features", str(tmp_path / "cards")]) == 0
    )
    groups = json.loads((traced / "supernodes.json").read_text())["groups"]
    for group in groups:  # the label is one of its members' card labels
        keys = {(int(m.split("_")[0]), int(m.split("_")[1])) for m in group["members"]}
        assert group["label"] in {tiny_card(layer, index)["label"] for layer, index in keys}


def test_bad_folder_is_one_line(tmp_path, capsys):
    assert main(["supernodes", str(tmp_path)]) == 2
    assert "not a trace folder" in capsys.readouterr().err
