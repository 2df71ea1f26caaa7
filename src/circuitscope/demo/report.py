"""The demo's report: report.json (every figure), report.md and report.html (pictures).

Both documents are written from the same facts (see `facts.py`); the pictures are the
trace folders' own pruned.png files, linked relatively, so the folder can be moved.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from circuitscope.demo.facts import fmt, reading


def write_report(out: Path, summary: dict[str, Any], cases: list[dict[str, Any]]) -> list[Path]:
    """Write report.json, report.md and report.html into `out`; returns their paths."""
    document = {"summary": summary, "cases": cases}
    paths = [out / "report.json", out / "report.md", out / "report.html"]
    paths[0].write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    paths[1].write_text(markdown(summary, cases))
    paths[2].write_text(html_page(markdown_blocks(summary, cases)))
    return paths


def markdown(summary: dict[str, Any], cases: list[dict[str, Any]]) -> str:
    return "\n\n".join(block for kind, block in markdown_blocks(summary, cases)) + "\n"


def markdown_blocks(summary: dict[str, Any], cases: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(kind, Markdown) blocks: kind "text", "table", "image" or "heading"."""
    blocks: list[tuple[str, str]] = [("heading", "# The biology of SmolLM2-135M: case studies")]
    blocks.append(("text", _summary_text(summary)))
    blocks.append(("heading", "## Which cases the model gets right"))
    blocks.append(("table", _screening_table(cases)))
    kept = [c for c in cases if c["kept"]]
    if kept:
        blocks.append(("heading", "## Figures per case"))
        blocks.append(("table", _figures_table(kept)))
    for case in kept:
        blocks.extend(_case_blocks(case))
    comparisons = summary.get("comparisons") or []
    if comparisons:
        blocks.append(("heading", "## Pairs compared"))
        blocks.append(("table", _comparison_table(comparisons)))
    return blocks


def _summary_text(summary: dict[str, Any]) -> str:
    lines = [
        f"Model: {summary['model']}. Transcoder: `{summary['transcoder']}` "
        f"({summary.get('transcoder_description', '')}).",
        f"{summary['kept']} of {summary['screened']} cases kept. This run took "
        f"{summary['seconds'] / 60:.1f} minutes on {summary['machine']}"
        + (" (it reused the steps an earlier run had finished)." if summary.get("reused") else "."),
    ]
    quality = summary.get("eval")
    if quality:
        lines.append(
            "Held-out figures of the transcoder: normalized MSE "
            f"{fmt(quality.get('nmse'), '.3f')}, "
            f"L0 {fmt(quality.get('l0'), '.1f')}, spliced top-1 agreement "
            f"{fmt(quality.get('top1_agreement'))}."
        )
    return " ".join(lines)


def _screening_table(cases: list[dict[str, Any]]) -> str:
    rows = ["| case | category | prompt | kept | why |", "|---|---|---|---|---|"]
    for case in cases:
        kept = "yes" if case["kept"] else "**dropped**"
        rows.append(
            f"| {case['slug']} | {case['category']} | `{_cell(case['prompt'])}` | {kept} "
            f"| {_cell(case['screening'])} |"
        )
    return "\n".join(rows)


def _figures_table(cases: list[dict[str, Any]]) -> str:
    head = (
        "| case | top token | features | replacement | completeness | ablation ρ "
        "| groups | checked groups passing | ρ over checked groups |"
    )
    rows = [head, "|---|---|---|---|---|---|---|---|---|"]
    for case in cases:
        graph, validation = case["graph"], case["validation"] or {}
        groups = case["supernodes"] or {}
        rows.append(
            f"| {case['slug']} | {_cell(repr(case['top_token']))} ({case['top_probability']:.2f}) "
            f"| {graph['features']} | {fmt(graph['replacement'])} | {fmt(graph['completeness'])} "
            f"| {fmt(validation.get('ablation_spearman'))} | {groups.get('groups', 'n/a')} "
            f"| {groups.get('passed', 'n/a')} | {fmt(groups.get('spearman'))} |"
        )
    return "\n".join(rows)


def _case_blocks(case: dict[str, Any]) -> list[tuple[str, str]]:
    blocks = [
        ("heading", f"### {case['category']}: `{_cell(case['prompt'])}`"),
        ("text", reading(case)),
        ("text", f"What to look for: {case['look_for']}"),
        ("image", f"![the pruned graph of {case['slug']}]({case['picture']})"),
    ]
    groups = (case["supernodes"] or {}).get("top") or []
    if groups:
        rows = ["| group | nodes | predicted | measured | check |", "|---|---|---|---|---|"]
        for group in groups:
            verdict = {True: "pass", False: "fail"}.get(group["passed"], "n/a")
            rows.append(
                f"| {_cell(group['label'])} | {group['size']} | {fmt(group['predicted'], '+.3f')} "
                f"| {fmt(group['measured'], '+.3f')} | {verdict} |"
            )
        blocks.append(("table", "\n".join(rows)))
    return blocks


def _comparison_table(comparisons: list[dict[str, Any]]) -> str:
    rows = [
        "| pair | graphs | shared features | only in the first | only in the second "
        "| Jaccard | shared groups |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in comparisons:
        rows.append(
            f"| {row['pair']} | {row['a']} vs {row['b']} | {row['shared']} | {row['only_a']} "
            f"| {row['only_b']} | {fmt(row['jaccard'])} | {row.get('shared_groups', 'n/a')} |"
        )
    return "\n".join(rows)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "\\n")


def html_page(blocks: list[tuple[str, str]]) -> str:
    """A self-contained page (no scripts, no network) showing the same blocks."""
    body = "\n".join(_html_block(kind, text) for kind, text in blocks)
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'><title>circuitscope demo</title>"
        f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )


STYLE = (
    "body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px}"
    "th{background:#f4f4f4}img{max-width:100%;border:1px solid #ddd}code{background:#f4f4f4}"
)


def _html_block(kind: str, text: str) -> str:
    if kind == "heading":
        level = len(text) - len(text.lstrip("#"))
        return f"<h{level}>{_inline(text.lstrip('#').strip())}</h{level}>"
    if kind == "image":
        alt, src = text[2:].split("](", 1)
        return f"<p><img alt='{html.escape(alt)}' src='{html.escape(src.rstrip(')'))}'></p>"
    if kind == "table":
        return _html_table(text)
    return f"<p>{_inline(text)}</p>"


def _html_table(text: str) -> str:
    lines = text.splitlines()
    head = _cells(lines[0])
    rows = [_cells(line) for line in lines[2:]]
    out = ["<table><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in rows]
    return "\n".join(out) + "</table>"


def _cells(line: str) -> list[str]:
    cells, current, escaped = [], "", False
    for char in line.strip().strip("|"):
        if char == "|" and not escaped:
            cells.append(current.strip())
            current = ""
        else:
            current += char
        escaped = char == "\\" and not escaped
    cells.append(current.strip())
    return [c.replace("\\|", "|") for c in cells]


def _inline(text: str) -> str:
    """Markdown's `code` and **bold** as HTML; the rest escaped."""
    parts = html.escape(text.replace("\\n", "\n")).split("`")
    joined = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    bold = joined.split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(bold))
