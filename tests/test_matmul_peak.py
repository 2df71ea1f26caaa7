"""benchmarks/matmul_peak.py: the rate it reports is 2mkn over the time, and its table."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "matmul_peak.py"


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("matmul_peak", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["matmul_peak"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_gflops_is_two_mkn_over_the_fastest_time(monkeypatch):
    script = _script()
    monkeypatch.setattr(script, "CASES", [script.MatmulCase("tiny", 4, 8, 2)])
    monkeypatch.setattr(script, "best_seconds", lambda case, dtype, repeats: 1e-7)
    rows = script.measure([1], ["float32"], repeats=1)
    # 2 * 4 * 8 * 2 = 128 FLOP in 1e-7 s: 1.28e9 FLOP/s
    assert len(rows) == 1 and abs(rows[0]["gflops"] - 1.28) < 1e-9


def test_table_has_a_column_per_thread_count():
    script = _script()
    rows = [
        {"dtype": "float32", "name": "a", "threads": 1, "gflops": 10.0},
        {"dtype": "float32", "name": "a", "threads": 2, "gflops": 19.5},
    ]
    lines = script.table(rows).splitlines()
    assert lines[0] == "| dtype | shape | 1 thread GFLOP/s | 2 thread GFLOP/s |"
    assert lines[2] == "| float32 | a | 10.0 | 19.5 |"


def test_best_seconds_times_a_real_matmul():
    import torch

    script = _script()
    seconds = script.best_seconds(script.MatmulCase("small", 16, 16, 16), torch.float32, 1)
    assert 0 < seconds < 1
