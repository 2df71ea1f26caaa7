"""`circuitscope intervene` and `validate` end to end on tiny folders, and bad inputs."""

import json
from pathlib import Path

import pytest

from circuitscope.cli import main
from circuitscope.testing.tiny_graphs import write_tiny_folders

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_tiny_folders(tmp_path_factory.mktemp("intervene"))


@pytest.fixture(scope="module")
def traced(folders, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, transcoder = folders
    out = tmp_path_factory.mktemp("graph") / "graph"
    assert (
        main(["trace", str(model), str(transcoder), PROMPT, "-o", str(out), "--no-progress"]) == 0
    )
    return out


def test_intervene_prints_the_new_prediction_and_writes_json(folders, tmp_path, capsys):
    model, transcoder = folders
    out = tmp_path / "result.json"
    args = ["intervene", str(model), str(transcoder), PROMPT, "--set", "1:3:5=30"]
    assert main([*args, "--zero", "0:2:err", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "tokens  0:'<bos>'" in printed and "set L1@3/F5 30" in printed
    result = json.loads(out.read_text())
    changed = {(r["layer"], r["position"], r["feature"]): r for r in result["changed_features"]}
    assert changed[(1, 3, 5)]["after"] == pytest.approx(30.0)
    clean, new = result["top_tokens"]["clean"], result["top_tokens"]["intervened"]
    assert len(clean) == 10 and abs(clean[0]["probability"] - new[0]["probability"]) > 0


def test_intervene_generates_clean_and_steered_text(folders, capsys):
    model, transcoder = folders
    args = ["intervene", str(model), str(transcoder), PROMPT, "--add", "2:*:3=50"]
    assert main([*args, "--generate", "3"]) == 0
    printed = capsys.readouterr().out
    assert "clean    The capital of France is⟨" in printed and "steered" in printed


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "1:3:5"], "expects L:P:F=VALUE"),
        (["--set", "1:3:999=1"], "no feature 999 in layer 1"),
        (["--set", "7:3:5=1"], "no layer 7"),
        (["--set", "1:40:5=1"], "positions beyond the prompt need --generate"),
        (["--scale", "1:x:5=2"], "is not a node"),
        ([], "no interventions"),
        (["--zero", "1:2:3", "--constrain", "3-1"], "comes before the first"),
        (["--zero", "1:2:3", "--constrain", "0-9"], "not within the model's layers 0-2"),
        (["--zero", "1:2:3", "--generate", "2", "--freeze-attention"], "runs free"),
    ],
)
def test_intervene_bad_input_gives_one_clear_line(folders, capsys, extra, message):
    model, transcoder = folders
    assert main(["intervene", str(model), str(transcoder), PROMPT, *extra]) == 2
    assert message in capsys.readouterr().err


def test_validate_writes_a_report_whose_edge_check_is_exact(traced, tmp_path, capsys):
    out = tmp_path / "validation"
    assert main(["validate", str(traced), "-o", str(out), "--top-n", "12", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "Spearman" in printed and "edges" in printed
    report = json.loads((out / "validation.json").read_text())
    assert len(report["nodes"]) == 12
    assert set(report["experiments"]) == {
        "ablation",
        "doubling",
        "ablation_replacement",
        "doubling_replacement",
    }
    for row in report["nodes"]:
        # Linear predictions: doubling is exactly minus ablation.
        assert row["predicted_doubling"] == pytest.approx(-row["predicted_ablation"])
    edges = report["edges"]
    assert edges["n"] > 5 and edges["relative_error"] < 1e-4 and edges["spearman"] > 0.999
    assert (out / "validation.png").stat().st_size > 10_000


def test_validate_bad_folder(tmp_path, capsys):
    assert main(["validate", str(tmp_path)]) == 2
    assert "is not a trace folder" in capsys.readouterr().err
