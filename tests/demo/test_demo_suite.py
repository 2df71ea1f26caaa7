"""The case suite: loading, screening rules, and the bundled suite's shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from circuitscope.demo.suite import CaseStudy, load_suite, screen
from circuitscope.errors import CircuitscopeError

FACT = CaseStudy("f", "fact", "The capital of France is", " Paris", "")
UNKNOWN = CaseStudy("u", "unfamiliar name", "Albert Wexfield was a famous", None, "")


def test_a_case_is_kept_when_the_top_token_is_exactly_the_expected_one() -> None:
    kept = screen(FACT, " Paris", 0.75, 0.75, 0.2)
    assert kept.kept and kept.reason == "top token ' Paris' at 0.75"
    dropped = screen(FACT, " the", 0.3, 0.1, 0.2)
    assert not dropped.kept
    assert dropped.reason == "the model says ' the' (0.30); ' Paris' gets 0.10"
    assert not screen(FACT, "Paris", 0.9, None, 0.2).kept  # no leading space: another token
    assert "not one token" in screen(FACT, " the", 0.3, None, 0.2).reason


def test_an_unfamiliar_name_is_kept_only_when_the_model_is_unsure() -> None:
    unsure = screen(UNKNOWN, " British", 0.05, None, 0.2)
    assert unsure.kept and unsure.reason.startswith("unsure, as expected")
    assert screen(UNKNOWN, " British", 0.2, None, 0.2).kept  # the limit itself is unsure
    confident = screen(UNKNOWN, " physicist", 0.21, None, 0.2)
    assert not confident.kept and confident.reason.startswith("confident")


def test_the_bundled_suite_covers_the_issue_s_categories() -> None:
    suite = load_suite()
    categories = {case.category for case in suite.cases}
    for wanted in ("one-hop fact", "two-step fact", "antonym", "addition", "familiar name"):
        assert wanted in categories
    assert "unfamiliar name" in categories
    assert any("French" in c for c in categories)
    quick = [case.slug for case in suite.cases if case.quick]
    assert quick == ["capital-france", "einstein", "wexfield"]
    pairs = {case.pair for case in suite.cases if case.pair}
    for pair in pairs:
        assert len([c for c in suite.cases if c.pair == pair]) == 2
    assert suite.max_confidence == 0.2


def test_a_suite_file_is_read_and_bad_ones_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "suite.json"
    case = {"slug": "a", "category": "fact", "prompt": "p", "expected": " x"}
    path.write_text(json.dumps({"max_confidence": 0.3, "cases": [case]}))
    suite = load_suite(path)
    assert suite.cases == (CaseStudy("a", "fact", "p", " x", ""),) and suite.max_confidence == 0.3
    path.write_text(json.dumps({"cases": [case, case]}))
    with pytest.raises(CircuitscopeError, match="share a slug"):
        load_suite(path)
    path.write_text(json.dumps({"cases": [{"slug": "a"}]}))
    with pytest.raises(CircuitscopeError, match="is not a case suite"):
        load_suite(path)
    with pytest.raises(CircuitscopeError, match="cannot read"):
        load_suite(tmp_path / "missing.json")


def test_the_demo_refuses_a_folder_of_something_else(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from circuitscope.cli import main

    (tmp_path / "notes.txt").write_text("mine")
    assert main(["demo", "-o", str(tmp_path), "--quick", "--no-serve"]) == 2
    assert "holds other files" in capsys.readouterr().err
    bad = tmp_path / "suite.json"
    bad.write_text("{}")
    assert main(["demo", "-o", str(tmp_path / "new"), "--suite", str(bad), "--no-serve"]) == 2
    assert "is not a case suite" in capsys.readouterr().err
    for option in ("--top-n", "--feature-tokens"):
        assert main(["demo", "-o", str(tmp_path / "new"), option, "0", "--no-serve"]) == 2
        assert "must be at least 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()  # nothing written
