"""benchmarks/attribution_fair.py: its FLOP count on hand-counted cases, and its run history."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _fair() -> Any:
    sys.path.insert(0, str(BENCHMARKS))  # it imports its sibling attribution.py
    try:
        spec = importlib.util.spec_from_file_location(
            "attribution_fair", BENCHMARKS / "attribution_fair.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_backward_flops_by_hand() -> None:
    fair = _fair()
    work = {"passes": 2, "batch": 4, "layer_rows": 80, "layer_row_positions": 640}
    # SmolLM2: d 576, 9 heads and 3 kv heads of 64, 30 layers; 8 tokens, 300 active features
    per_position = 2 * 576 * (9 + 3) * 64 + 2 * 576  # O and V maps backwards, error read
    mixing = 2 * 9 * 8 * 8 * 64
    plt_reads = 2 * 576 * 10  # 300 / 30 decoders written to each layer
    clt_reads = 2 * 576 * 10 * (10 + 1) / 2  # a pass reaches 80 / (2 * 4) = 10 layers
    assert fair.backward_flops(work, 8, 300, "plt") == 640 * per_position + 80 * (
        mixing + plt_reads
    )
    assert fair.backward_flops(work, 8, 300, "clt") == 640 * per_position + 80 * (
        mixing + clt_reads
    )
    assert fair.backward_flops({**work, "passes": 0}, 8, 300, "plt") == 0.0


def test_peer_work_counts_every_pass_to_the_top_layer() -> None:
    work = _fair().peer_work(rows=10, batch=4, length=8)
    assert work == {"passes": 3, "batch": 4, "layer_rows": 360, "layer_row_positions": 2880}


def test_score_lines_put_both_tools_scores_side_by_side() -> None:
    fair = _fair()
    ours = {
        "replacement_score": 0.5,
        "completeness_score": 0.75,
        "completeness_circuit_tracer": 0.8,
    }
    peer = {
        "replacement_score": 0.50001,
        "completeness_score": 0.8,
        "completeness_circuit_tracer": None,
    }
    case = {
        "kind": "plt",
        "length": 8,
        "best_of": {"ours b32": {"scores": ours}, "peer b512": {"scores": peer}},
    }
    assert fair.score_lines(case) == ["| plt | 8 | 0.5000 | 0.5000 | 0.7500 | 0.8000 | 0.8000 |"]
    missing = {"kind": "clt", "length": 32, "best_of": {"ours b32": {"scores": ours}}}
    assert fair.score_lines(missing) == ["| clt | 32 | 0.5000 | - | 0.7500 | 0.8000 | - |"]


def test_a_failed_peer_run_is_recorded_with_its_cause() -> None:
    fair = _fair()
    assert fair.peer_failure(-9, 23_800.0) == "killed (SIGKILL) at 23.2 GB: out of memory"
    assert fair.peer_failure(-11, 1024.0) == "killed by signal 11 at 1.0 GB"
    assert fair.peer_failure(1, 10.0) == "failed (exit 1)"


def test_a_case_without_circuit_tracer_says_whether_it_ran() -> None:
    fair = _fair()
    ours = {"ours b32": {"seconds": 1.0, "peak_rss_mb": 1.0}}
    alone = {"kind": "clt", "length": 32, "best_of": ours, "runs": {"ours b32": [{}]}}
    assert fair.ratio_lines(alone) == ["| clt | 32 | circuit-tracer not run | | | | |"]
    failed = {**alone, "runs": {"ours b32": [{}], "peer b512": [{"skipped": "over 15 min"}]}}
    assert fair.ratio_lines(failed) == ["| clt | 32 | circuit-tracer did not finish | | | | |"]


def test_a_stopped_peer_run_keeps_its_peak_memory_as_a_lower_bound() -> None:
    fair = _fair()
    stopped = fair.peer_timeout(5.0, 9_216.0)
    assert stopped == {
        "skipped": "over 5 min (peak 9.0 GB when stopped)",
        "peak_rss_mb_at_least": 9_216.0,
    }
    ours = {"ours b32": {"seconds": 1.0, "peak_rss_mb": 4_608.0}}
    case = {
        "kind": "plt",
        "length": 512,
        "best_of": ours,
        "runs": {"ours b32": [{}], "peer b32": [stopped]},
    }
    assert fair.ratio_lines(case) == [
        "| plt | 512 | circuit-tracer did not finish | | | ≥ 2.00 | |"
    ]


def test_the_graph_only_ratio_leaves_out_our_scores_and_pruning() -> None:
    fair = _fair()
    ours = {"ours b32": {"seconds": 10.0, "graph_seconds": 8.0, "peak_rss_mb": 1000.0}}
    peer = {"peer b32": {"seconds": 30.0, "graph_seconds": 30.0, "peak_rss_mb": 2000.0}}
    case = {"kind": "plt", "length": 8, "best_of": {**ours, **peer}, "compare": {"relative": 1e-6}}
    assert fair.ratio_lines(case) == [
        "| plt | 8 | - | 3.0× (peer b32 / ours b32) | 3.8× | 2.00 | 1.0e-06 |"
    ]
    assert fair._graph_seconds({"seconds": 30.0, "attribute_seconds": 30.0}) == 30.0
    assert fair._graph_seconds({"seconds": 10.0, "graph_seconds": 8.0}) == 8.0
    assert fair._graph_seconds({"seconds": 10.0}) is None
    old = {**ours["ours b32"], "graph_seconds": None}
    assert "| - |" in fair.ratio_lines({**case, "best_of": {"ours b32": old, **peer}})[0]


def test_reuse_reads_back_the_fastest_run_of_the_same_settings(tmp_path: Path) -> None:
    fair = _fair()
    spec, other = {"batch_size": 32}, {"batch_size": 128}
    assert fair.fastest_recorded(tmp_path, spec) is None
    fair.record_run(tmp_path, spec, {"seconds": 30.1, "peak_rss_mb": 900.0})
    fair.record_run(tmp_path, spec, {"seconds": 29.3, "peak_rss_mb": 910.0})
    fair.record_run(tmp_path, other, {"seconds": 5.0, "peak_rss_mb": 100.0})
    fair.record_run(tmp_path, spec, {"seconds": 31.0, "peak_rss_mb": 800.0})
    assert fair.fastest_recorded(tmp_path, spec) == {"seconds": 29.3, "peak_rss_mb": 910.0}
    assert fair.fastest_recorded(tmp_path, other)["seconds"] == 5.0
    assert fair.fastest_recorded(tmp_path, {"batch_size": 64}) is None


def test_reuse_finds_peer_runs_made_from_another_copy_of_the_scripts(tmp_path: Path) -> None:
    fair = _fair()
    then = {"command": ["/venv/python", "/tmp/snap7/benchmarks/peer_circuit_tracer.py", "--x"]}
    now = {"command": ["/venv/python", "/work/main/benchmarks/peer_circuit_tracer.py", "--x"]}
    fair.record_run(tmp_path, then, {"seconds": 26.5, "peak_rss_mb": 3732.0})
    assert fair.fastest_recorded(tmp_path, now) == {"seconds": 26.5, "peak_rss_mb": 3732.0}
    other = {"command": ["/venv/python", "/work/main/benchmarks/peer_circuit_tracer.py", "--y"]}
    assert fair.fastest_recorded(tmp_path, other) is None


def test_our_runs_choose_circuit_tracers_picks_at_any_batch(tmp_path: Path) -> None:
    """128 features per influence update (circuit-tracer's 4 batches of 32): batch 16
    updates every 8 passes, batch 32 every 4; a batch that does not divide it is refused."""
    fair = _fair()
    args = fair.parse_args(["--pick-size", "128"])
    prompt = {"text": "x", "ids": [1, 2]}
    spec_16 = fair.ours_spec(args, "tc", prompt, 2048, 16, tmp_path)
    spec_32 = fair.ours_spec(args, "tc", prompt, 2048, 32, tmp_path)
    assert (spec_16["batch_size"], spec_16["update_interval"]) == (16, 8)
    assert (spec_32["batch_size"], spec_32["update_interval"]) == (32, 4)
    with pytest.raises(SystemExit, match="not a multiple"):
        fair.ours_spec(args, "tc", prompt, 2048, 48, tmp_path)


def test_a_pick_size_that_a_batch_does_not_divide_is_refused_up_front() -> None:
    fair = _fair()
    with pytest.raises(SystemExit):
        fair.parse_args(["--ours-batch", "32", "48", "--pick-size", "128"])
    assert fair.parse_args(["--ours-batch", "16", "32"]).pick_size == 128
