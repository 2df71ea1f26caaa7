"""`circuitscope demo --quick --no-serve` end to end on the bundled SmolLM2 (slow)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from circuitscope.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "demo"
    assert main(["demo", "-o", str(out), "--quick", "--no-serve", "--no-progress"]) == 0
    return out


def _report(out: Path) -> dict[str, Any]:
    return json.loads((out / "report.json").read_text())


def test_every_kept_case_has_a_graph_validation_cards_and_checked_groups(demo: Path) -> None:
    cases = _report(demo)["cases"]
    assert [c["slug"] for c in cases] == ["capital-france", "einstein", "wexfield"]
    kept = [c for c in cases if c["kept"]]
    assert len(kept) == 3  # the model gets all three (screened on the real model)
    for case in kept:
        graph = case["graph"]
        assert graph["features"] > 0 and graph["top_features"]
        assert 0.0 <= graph["replacement"] <= 1.0 and 0.0 <= graph["completeness"] <= 1.0
        validation = case["validation"]
        assert validation["nodes_tested"] == 10
        assert -1.0 <= validation["ablation_spearman"] <= 1.0
        groups = case["supernodes"]  # supernodes.json written, even with no group
        assert 0.0 <= groups["coverage"] <= 1.0 and len(groups["top"]) == min(5, groups["groups"])
        assert all(row["measured"] is not None for row in groups["top"])
        assert (demo / case["picture"]).is_file()
    assert sum(case["supernodes"]["groups"] for case in kept) > 0
    assert (demo / "features" / "index.json.gz").is_file()
    labelled = [f for c in kept for f in c["graph"]["top_features"] if f["label"]]
    assert labelled  # the cards' automatic labels reach the report


def test_the_pair_is_compared_and_the_report_links_its_pictures(demo: Path) -> None:
    summary = _report(demo)["summary"]
    (row,) = summary["comparisons"]
    assert (row["pair"], row["a"], row["b"]) == ("known-unknown", "einstein", "wexfield")
    assert row["shared"] + row["only_a"] > 0 and 0.0 <= row["jaccard"] <= 1.0
    assert (demo / "compare" / "known-unknown.json").is_file()
    assert summary["eval"]["nmse"] > 0
    assert summary["reused"] is False  # a fresh folder: every step ran
    page = (demo / "report.html").read_text()
    assert page.count("<img ") == 3
    assert "Which cases the model gets right" in (demo / "report.md").read_text()


def test_a_second_run_reuses_everything(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = demo / "train" / "train_log.jsonl"
    before = log.stat().st_mtime_ns, (demo / "graphs" / "einstein" / "graph.safetensors").stat()
    assert main(["demo", "-o", str(demo), "--quick", "--no-serve", "--no-progress"]) == 0
    after = log.stat().st_mtime_ns, (demo / "graphs" / "einstein" / "graph.safetensors").stat()
    assert before[0] == after[0] and before[1].st_mtime_ns == after[1].st_mtime_ns
    out = capsys.readouterr().out
    assert "transcoder: reusing" in out and "feature cards: 0 new" in out
    assert _report(demo)["summary"]["reused"] is True
    assert "(it reused the steps an earlier run had finished)" in (demo / "report.md").read_text()


def test_an_interrupted_training_run_is_continued(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run folder without its finished transcoder (as after Ctrl-C) is resumed from its
    newest checkpoint, not started again; the graphs already traced are kept."""
    from safetensors.torch import load_file

    weights = sorted((demo / "train" / "transcoder").glob("*.safetensors"))
    before = [load_file(w) for w in weights]
    (demo / "train" / "transcoder" / "train_config.json").unlink()
    assert main(["demo", "-o", str(demo), "--quick", "--no-serve", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "transcoder: continuing the interrupted run" in out
    assert (demo / "train" / "transcoder" / "train_config.json").is_file()
    for path, old in zip(weights, before, strict=True):  # resumed at the last step: the same
        new = load_file(path)
        assert all(torch.equal(new[name], old[name]) for name in old), path.name
