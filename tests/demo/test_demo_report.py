"""The report: Markdown and HTML written from the same facts."""

from __future__ import annotations

from pathlib import Path

from circuitscope.demo.facts import reading
from circuitscope.demo.report import html_page, markdown, markdown_blocks, write_report

SUMMARY = {
    "model": "smollm2-135m",
    "transcoder": "out/demo/train/transcoder",
    "transcoder_description": "PLT, 2048 topk features per layer",
    "eval": {"nmse": 0.3, "l0": 16.0, "top1_agreement": 0.41},
    "screened": 2,
    "kept": 1,
    "seconds": 90.0,
    "machine": "x86_64, 2 torch threads, cpu",
    "comparisons": [
        {
            "pair": "p",
            "a": "x",
            "b": "y",
            "shared": 3,
            "only_a": 1,
            "only_b": 2,
            "jaccard": 0.5,
            "shared_groups": 1,
        }
    ],
}
KEPT = {
    "slug": "pipe",
    "category": "fact",
    "prompt": 'a | b <c> "d"',
    "look_for": "a feature",
    "kept": True,
    "screening": "top token ' x' at 0.50",
    "top_token": " x",
    "top_probability": 0.5,
    "picture": "graphs/pipe/pruned.png",
    "graph": {
        "features": 12,
        "replacement": 0.6,
        "completeness": 0.8,
        "top_features": [{"node": "L3/F7@2", "token": " b", "label": "b → x", "influence": 0.2}],
    },
    "validation": {"ablation_spearman": 0.55, "nodes_tested": 30, "sign_agreement": 0.8},
    "supernodes": {
        "groups": 4,
        "coverage": 0.5,
        "passed": 3,
        "spearman": 0.7,
        "top": [{"label": "b | x", "size": 3, "predicted": -1.0, "measured": -0.9, "passed": True}],
    },
}
DROPPED = {**KEPT, "slug": "gone", "kept": False, "screening": "the model says ' y' (0.40)"}


def test_the_reading_states_the_case_s_figures() -> None:
    text = reading(KEPT)
    assert "' x' (p = 0.50)" in text and "12 feature nodes" in text
    assert "replacement score 0.60, completeness 0.80" in text
    assert "L3/F7@2 (b → x) on ' b'" in text
    assert '"b | x" (3 nodes), moves the target logit by -0.90' in text
    assert "(graph: -1.00), as the graph predicts" in text
    assert "30 most influential nodes" in text and "Spearman 0.55" in text


def test_markdown_lists_dropped_cases_with_their_reason_and_escapes_pipes() -> None:
    text = markdown(SUMMARY, [KEPT, DROPPED])
    assert (
        "| gone | fact | `a \\| b <c> \"d\"` | **dropped** | the model says ' y' (0.40) |" in text
    )
    assert "| pipe | ' x' (0.50) | 12 | 0.60 | 0.80 | 0.55 | 4 | 3 | 0.70 |" in text
    assert "![the pruned graph of pipe](graphs/pipe/pruned.png)" in text
    assert "| p | x vs y | 3 | 1 | 2 | 0.50 | 1 |" in text
    assert "normalized MSE 0.300, L0 16.0, spliced top-1 agreement 0.41" in text
    assert "### fact" in text and text.count("### ") == 1  # no section for the dropped case


def test_the_html_page_has_the_same_tables_escaped_and_the_picture() -> None:
    page = html_page(markdown_blocks(SUMMARY, [KEPT, DROPPED]))
    assert "<td>b | x</td>" in page  # an escaped pipe is one cell
    assert "<code>a | b &lt;c&gt; &quot;d&quot;</code>" in page
    assert "<img alt='the pruned graph of pipe' src='graphs/pipe/pruned.png'>" in page
    assert "<b>dropped</b>" in page and "<script" not in page and "http" not in page


def test_write_report_writes_the_three_files(tmp_path: Path) -> None:
    paths = write_report(tmp_path, SUMMARY, [KEPT])
    assert [p.name for p in paths] == ["report.json", "report.md", "report.html"]
    assert all(p.stat().st_size > 0 for p in paths)


def test_the_run_time_says_reused_steps_only_when_some_were() -> None:
    fresh = markdown({**SUMMARY, "reused": False}, [KEPT])
    assert "This run took 1.5 minutes on x86_64, 2 torch threads, cpu." in fresh
    assert "reused" not in fresh
    rerun = markdown({**SUMMARY, "reused": True}, [KEPT])
    assert "1.5 minutes on x86_64, 2 torch threads, cpu (it reused the steps" in rerun
