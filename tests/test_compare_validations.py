"""benchmarks/compare_validations.py: paired differences over prompts, by hand."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "compare_validations.py"


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("compare_validations", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paired_differences_and_their_standard_error_by_hand():
    script = _script()
    a = {"p": {"ablation": 0.5}, "q": {"ablation": 0.2}, "r": {"ablation": None}}
    b = {"p": {"ablation": 0.7}, "q": {"ablation": 0.1}, "r": {"ablation": 0.9}}
    diffs = script.paired(a, b, "ablation")  # r is left out: A has no figure there
    assert diffs == pytest.approx([0.2, -0.1])
    mean, error, higher = script.summary(diffs)
    # mean 0.05; sample stdev of [0.2, -0.1] = 0.3 / sqrt(2); over sqrt(2): 0.15
    assert mean == pytest.approx(0.05) and error == pytest.approx(0.15) and higher == 1
