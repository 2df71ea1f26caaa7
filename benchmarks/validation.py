"""Graph validation on SmolLM2-135M: do graphs' predictions hold on the model?

    .venv/bin/python benchmarks/validation.py [--transcoder out/smollm2-clt/transcoder]
        [--prompts benchmarks/validation_prompts.json] [--top-n 30] [--max-feature-nodes N]
        [--threads N] [--machine NAME] [--device cuda]

For each prompt of the suite: trace its graph with the given transcoder (a
trained CLT by default), then ablate and double the pruned graph's `top-n` most
influential feature and error nodes on the original model and compare with the
graph's predicted effect on the target logits (`circuitscope validate`). Prints
a table of Spearman figures per prompt and writes
benchmarks/results/validation-<date>-<machine>.md/.json; each prompt's graph and
report go to out/validation/<slug>/.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from circuitscope.attribution.limits import AttributionLimits
from circuitscope.attribution.trace import save_trace, trace
from circuitscope.graph.scores import circuit_tracer_scores, error_share_by_layer
from circuitscope.interventions.validation import (
    ValidationContext,
    ValidationSettings,
    logit_directions,
    validate_graph,
)
from circuitscope.interventions.validation_files import write_report
from circuitscope.models.loading import load_model
from circuitscope.transcoders.transcoder import Transcoder

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
COLUMNS = ["ablation", "doubling", "ablation_replacement", "doubling_replacement"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--transcoder", default=str(ROOT / "out/smollm2-clt/transcoder"))
    parser.add_argument("--prompts", default=str(HERE / "validation_prompts.json"))
    parser.add_argument("--top-n", type=int, default=30)
    parser.add_argument("--max-feature-nodes", type=int, default=None)
    parser.add_argument("--out", default=str(ROOT / "out/validation"))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--machine", default="", help="name for the results file")
    parser.add_argument("--only", nargs="*", default=[], help="run just these slugs")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    return parser.parse_args()


def run_prompt(loaded: Any, transcoder: Transcoder, item: dict[str, Any], args) -> dict[str, Any]:
    slug = item["slug"]
    output = Path(args.out) / slug
    limits = AttributionLimits(max_feature_nodes=args.max_feature_nodes)
    start = time.perf_counter()
    result = trace(
        loaded.adapter,
        loaded.tokenizer,
        transcoder,
        item["prompt"],
        limits=limits,
        model_id="smollm2-135m",
        transcoder_id=args.transcoder,
    )
    settings = {"model": "smollm2-135m", "transcoder": args.transcoder, "prompt": item["prompt"]}
    save_trace(result, output, slug, settings)
    traced = time.perf_counter() - start
    directions = logit_directions(loaded.adapter, loaded.tokenizer, result.graph)
    context = ValidationContext(loaded.adapter, transcoder, result.graph, result.pruned, directions)
    report = validate_graph(context, ValidationSettings(top_n=args.top_n))
    report.update(prompt=item["prompt"], graph=str(output))
    write_report(report, output / "validation")
    return {
        **item,
        "top_logit": result.graph.logit_labels[0],
        "top1_is_expected": result.graph.logit_labels[0].startswith(repr(item["expected"])),
        "n_tokens": len(result.graph.input_ids),
        "active_features": result.info.n_active_features,
        "replacement_score": result.scores.replacement,
        "completeness_score": result.scores.completeness,
        "completeness_circuit_tracer": circuit_tracer_scores(result.graph).completeness,
        "error_share_by_layer": error_share_by_layer(result.graph).tolist(),
        **{name: report["experiments"][name]["spearman"] for name in COLUMNS},
        "ablation_features": report["experiments"]["ablation"]["features_only"]["spearman"],
        "sign_agreement": report["experiments"]["ablation"]["sign_agreement"],
        "edge_relative_error": report.get("edges", {}).get("relative_error"),
        "trace_s": round(traced, 1),
        "validate_s": round(time.perf_counter() - start - traced, 1),
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| category | prompt | top logit | repl. | compl. | compl. (circuit-tracer's) "
        "| ablation ρ | features ρ "
        "| doubling ρ | ablation ρ (repl.) | doubling ρ (repl.) | signs | edge err |"
    )
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        lines.append(
            f"| {r['category']} | {r['prompt']!r} | {r['top_logit']} "
            f"| {r['replacement_score']:.2f} | {r['completeness_score']:.2f} "
            f"| {_f(r.get('completeness_circuit_tracer'))} | {_f(r['ablation'])} "
            f"| {_f(r['ablation_features'])} | {_f(r['doubling'])} "
            f"| {_f(r['ablation_replacement'])} | {_f(r['doubling_replacement'])} "
            f"| {r['sign_agreement']:.2f} | {_e(r['edge_relative_error'])} |"
        )
    averaged = [*COLUMNS, "ablation_features", "replacement_score", "completeness_score"]
    averaged.append("completeness_circuit_tracer")
    means = {c: _mean(r.get(c) for r in rows) for c in averaged}
    lines.append(
        f"| **mean** | {len(rows)} prompts | | {means['replacement_score']:.2f} "
        f"| {means['completeness_score']:.2f} | {_f(means['completeness_circuit_tracer'])} "
        f"| **{means['ablation']:.2f}** "
        f"| {means['ablation_features']:.2f} | {means['doubling']:.2f} "
        f"| {means['ablation_replacement']:.2f} | {means['doubling_replacement']:.2f} | | |"
    )
    return "\n".join(lines)


def _mean(values: Any) -> float:
    """Mean of the defined values (a prompt whose Spearman is undefined is left out)."""
    kept = [v for v in values if v is not None and v == v]
    return statistics.mean(kept) if kept else float("nan")


def run_summary(rows: list[dict[str, Any]], transcoder: str) -> dict[str, Any]:
    """The run's figures in one place: the transcoder's held-out `eval.json` (when `eval`
    has written one beside it) and the suite's means."""
    summary: dict[str, Any] = {}
    report = Path(transcoder) / "eval.json"
    if report.is_file():
        data = json.loads(report.read_text())
        summary.update({k: data.get(k) for k in ("nmse", "l0", "dead_fraction", "dense_fraction")})
        for name in ("replacement", "open_loop"):
            for key in ("top1_agreement", "kl", "loss_delta"):
                summary[f"spliced_{name}_{key}"] = data[name][key]
    columns = ("replacement_score", "completeness_score", "completeness_circuit_tracer")
    for column in (*columns, "ablation", "ablation_replacement"):
        summary[f"mean_{column}"] = _mean(r.get(column) for r in rows)
    return summary


def summary_table(summary: dict[str, Any]) -> str:
    lines = ["| figure | value |", "| --- | --- |"]
    for key, value in summary.items():
        text = "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else value
        lines.append(f"| {key} | {text} |")
    return "\n".join(lines)


def error_share_text(rows: list[dict[str, Any]]) -> str:
    """Each layer's error nodes' share of the source influence, averaged over the prompts."""
    shares = [r["error_share_by_layer"] for r in rows if "error_share_by_layer" in r]
    if not shares:
        return ""
    means = [statistics.mean(layer) for layer in zip(*shares, strict=True)]
    listed = ", ".join(f"{layer}: {share:.3f}" for layer, share in enumerate(means))
    return (
        "Where the replacement score is lost: each layer's error nodes' share of the "
        "influence reaching tokens and error nodes (`error_share_by_layer`, mean over the "
        f"prompts; the shares sum to 1 - replacement = {sum(means):.3f}): {listed}\n"
    )


def _f(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.2f}"


def _e(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0e}"


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    suite = json.loads(Path(args.prompts).read_text())
    if args.only:
        suite = [item for item in suite if item["slug"] in args.only]
    loaded = load_model("smollm2-135m", device=args.device)
    transcoder = Transcoder.load(args.transcoder, device=str(loaded.adapter.device))
    rows, text = [], ""
    for item in suite:
        rows.append(run_prompt(loaded, transcoder, item, args))
        print(f"{item['slug']}: ablation ρ {rows[-1]['ablation']:.3f}", flush=True)
        text = write_results(rows, args)  # after each prompt: a cut-short run keeps its rows
    print(text)


def write_results(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """Write the table and the run's figures over `rows`; returns the Markdown."""
    summary = run_summary(rows, args.transcoder)
    text = table(rows) + "\n\nThe run's figures (held-out `eval.json` and the suite's means):\n\n"
    text += summary_table(summary) + "\n\n" + error_share_text(rows)
    date = datetime.date.today().isoformat()
    machine = args.machine or f"{platform.machine()}-{torch.get_num_threads()}threads"
    stem = HERE / "results" / f"validation-{date}-{machine}"
    meta = {
        "date": date,
        "machine": machine,
        "transcoder": args.transcoder,
        "top_n": args.top_n,
        "max_feature_nodes": args.max_feature_nodes,
        "device": args.device,
        "torch": torch.__version__,
    }
    data = {**meta, "summary": summary, "rows": rows}
    stem.with_suffix(".json").write_text(json.dumps(data, indent=1))
    header = f"# Graph validation, SmolLM2-135M\n\n{json.dumps(meta)}\n\n"
    stem.with_suffix(".md").write_text(header + text + "\n")
    print(f"written {stem}.md/.json", flush=True)
    return text


if __name__ == "__main__":
    main()
