"""Attribution speed measured fairly: each tool at its default and at its best settings.

    .venv/bin/python benchmarks/attribution_fair.py                  # PLT and CLT, 8 and 32 tokens
    .venv/bin/python benchmarks/attribution_fair.py --cases plt:8 --repeats 3

Same model folder, transcoders (circuit-tracer's copy converted from ours with
`circuitscope convert`), token ids and thread count for both tools, as in
`attribution.py`, whose steps this script reuses. For each case (transcoder kind,
prompt length) every variant runs `--repeats` times in alternation (ours, peer,
ours, peer, ...), each in a fresh process, and its fastest run counts:

- circuitscope at each `--ours-batch` (32 is its default), with the heap policy its
  `trace` command sets (`circuitscope.allocator.set_policy_for_passes`), choosing
  `--pick-size` features per influence update whatever its batch (128: circuit-tracer's
  picks at batch 32, its best), so that the batch changes only how the rows are
  grouped into passes, not which features get them;
- circuit-tracer at each `--peer-batch`: a number is circuit-tracer as it comes (512 is
  its default batch size); `N+heap` runs it at batch N with the heap policy
  circuitscope's command gives itself.

Per case it prints each tool's default and best time, the two ratios, and each run's
work counted in FLOPs (`backward_flops`): rows, passes, GFLOP per pass and achieved
GFLOP/s, so the distance to the machine's peak shows. The graphs of the two default
runs are compared (largest edge difference over the largest edge).
Writes benchmarks/results/attribution-fair-<date>-<machine>.md and .json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
from pathlib import Path
from typing import Any

from attribution import (
    HERE,
    ROOT,
    TRANSCODERS,
    export,
    git_state,
    peer_command,
    run_child,
    transcoder_folders,
    worker,
)

MODEL_DIMS = {"d_model": 576, "n_heads": 9, "n_kv_heads": 3, "d_head": 64, "n_layers": 30}
"""SmolLM2-135M's shape (checked against the loaded model by the `ours` worker)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--cases", nargs="+", default=["plt:8", "clt:8", "plt:32", "clt:32"], help="KIND:TOKENS"
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--ours-batch", nargs="+", type=int, default=[32, 128])
    parser.add_argument(
        "--pick-size",
        type=int,
        default=128,
        help="features chosen per influence update, for circuitscope at every batch size "
        "(update_interval = pick size / batch; 128: circuit-tracer's 4 batches of 32, "
        "so both select the same features)",
    )
    parser.add_argument(
        "--peer-batch",
        nargs="*",
        default=["512", "32", "32+heap"],
        help="N or N+heap, each a circuit-tracer variant; none: circuitscope alone",
    )
    parser.add_argument("--budget", type=int, default=2048, help="max_feature_nodes from 32 tokens")
    parser.add_argument("--budget-from", type=int, default=32)
    parser.add_argument("--peer-timeout-min", type=float, default=15.0)
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="read back the fastest run an earlier call finished in --work with the same "
        "settings (runs.jsonl in each variant's folder) instead of running it again",
    )
    parser.add_argument(
        "--reuse-peer",
        action="store_true",
        help="as --reuse for circuit-tracer's variants only: circuitscope runs again",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peer-python", default="/work/peer-venv/bin/python")
    parser.add_argument("--work", default=str(ROOT / "out" / "bench"))
    parser.add_argument("--results", default=str(HERE / "results"))
    parser.add_argument("--machine", default=f"cpu-{os.cpu_count()}core")
    parser.add_argument("--note", default="")
    args = parser.parse_args(argv)
    args.max_n_logits, args.desired_logit_prob, args.device = 10, 0.95, "cpu"
    args.case_list = []
    for case in args.cases:
        kind, _, length = case.partition(":")
        if kind not in TRANSCODERS or not length.isdigit() or int(length) < 2:
            parser.error(
                f"--cases takes KIND:TOKENS with KIND in {sorted(TRANSCODERS)}, got {case!r}"
            )
        args.case_list.append((kind, int(length)))
    for batch in args.ours_batch:
        if batch < 1 or args.pick_size % batch:
            parser.error(f"--pick-size {args.pick_size} is not a multiple of --ours-batch {batch}")
    for peer in args.peer_batch:
        if not peer.removesuffix("+heap").isdigit():
            parser.error(f"--peer-batch takes N or N+heap, got {peer!r}")
    return args


def backward_flops(work: dict[str, int], length: int, n_active: int, kind: str) -> float:
    """FLOPs of the rows' backward passes, from the work counted (`BackwardWork`).

    Per batch row, layer reached and position: the frozen attention's output and value
    maps backwards, 2·d·(H + KV)·dh, and the error node's read, 2·d. Per batch row and
    layer: the mixing Pᵀ·grad, 2·H·T²·dh (dense; from 256 tokens causal blocks skip part),
    and the reads of the decoder vectors that write to the layer, 2·d each: a PLT
    feature writes to its own layer (n_active / L per layer), a CLT feature to its own
    and every later one (n_active·(m + 1) / L into layer m), taken at the mean number
    of layers a pass reaches. Norms, the forward pass and the selection are left out.
    """
    d, h, kv, dh, n_layers = (MODEL_DIMS[k] for k in MODEL_DIMS)
    rows_layers, rows_layers_positions = work["layer_rows"], work["layer_row_positions"]
    if not work["passes"] or not rows_layers:
        return 0.0
    per_position = 2 * d * (h + kv) * dh + 2 * d
    mixing = 2 * h * length * length * dh
    mean_reached = rows_layers / (work["passes"] * work["batch"])
    per_layer = n_active / n_layers
    decoders = per_layer if kind == "plt" else per_layer * (mean_reached + 1) / 2
    return rows_layers_positions * per_position + rows_layers * (mixing + 2 * d * decoders)


def peer_work(rows: int, batch: int, length: int) -> dict[str, int]:
    """circuit-tracer's work if every pass reached the top layer (an upper bound: its
    backward starts at the highest layer among the batch's rows)."""
    n_layers = MODEL_DIMS["n_layers"]
    passes = math.ceil(rows / batch)
    return {
        "passes": passes,
        "batch": batch,
        "layer_rows": passes * batch * n_layers,
        "layer_row_positions": passes * batch * n_layers * length,
    }


def variants(args: argparse.Namespace) -> list[tuple[str, int, bool]]:
    """(tool, batch, heap policy) in the order they alternate: ours, peer, ours, ..."""
    ours = [("ours", b, True) for b in args.ours_batch]
    peer = [("peer", int(p.split("+")[0]), p.endswith("+heap")) for p in args.peer_batch]
    order = []
    for i in range(max(len(ours), len(peer))):
        order += ours[i : i + 1] + peer[i : i + 1]
    return order


def ours_spec(
    args: argparse.Namespace,
    transcoder: str,
    prompt: dict[str, Any],
    budget: int | None,
    batch: int,
    out: Path,
) -> dict[str, Any]:
    """What `attribution_workers.ours` runs: at any batch size, the features chosen per
    influence update are `--pick-size` (update_interval = pick size / batch), so the
    selection is circuit-tracer's at batch 32 whatever our pass size."""
    if args.pick_size % batch:
        raise SystemExit(f"--pick-size {args.pick_size} is not a multiple of batch {batch}")
    return {
        "transcoder": transcoder,
        "prompt": prompt,
        "out": str(out),
        "max_feature_nodes": budget,
        "batch_size": batch,
        "update_interval": args.pick_size // batch,
        "max_n_logits": args.max_n_logits,
        "desired_logit_prob": args.desired_logit_prob,
        "device": "cpu",
    }


def run_variant(args, model, item, prompt, budget, variant, folder: Path) -> dict[str, Any]:  # noqa: ANN001
    tool, batch, heap = variant
    out = folder / f"{tool}-b{batch}{'-heap' if heap else ''}"
    if tool == "ours":
        spec = ours_spec(args, item["native"], prompt, budget, batch, out / "graph")
        recorded = fastest_recorded(out, spec) if args.reuse else None
        if recorded is None and args.reuse:
            recorded = _last_ours_run(out, spec)
        if recorded is not None:
            return {**recorded, "reused": True}
        result, child = worker("ours", spec, out, args.threads)
        if result["dims"] != MODEL_DIMS:
            raise SystemExit(f"the model's shape is {result['dims']}, not {MODEL_DIMS}")
        result = {**result, "seconds": result["trace_seconds"]}
        return record_run(out, spec, {**result, "peak_rss_mb": round(child.peak_rss_mb, 1)})
    command = peer_command(
        argparse.Namespace(**vars(args), batch_size=batch), model, item, prompt["ids"]
    )
    command += ["--out", str(out)] + (["--heap-policy"] if heap else [])
    if budget is not None:
        command += ["--max-feature-nodes", str(budget)]
    peer_spec = {"command": command}
    reuse = args.reuse or args.reuse_peer
    recorded = fastest_recorded(out, peer_spec) if reuse else None
    if recorded is None and reuse and (out / "peer.json").is_file():
        recorded = _peer_result(out, batch, prompt, peak_rss_mb=None)
    if recorded is not None:
        return {**recorded, "reused": True}
    child = run_child(command, out / "peer.log", args.threads, timeout_s=args.peer_timeout_min * 60)
    if child.timed_out:
        return peer_timeout(args.peer_timeout_min, child.peak_rss_mb)
    if child.returncode != 0:
        return {"skipped": peer_failure(child.returncode, child.peak_rss_mb)}
    return record_run(out, peer_spec, _peer_result(out, batch, prompt, child.peak_rss_mb))


RUNS_FILE = "runs.jsonl"
"""In each variant's folder: one line per finished run, {"spec": ..., "result": ...}."""


def record_run(out: Path, spec: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """Append a finished run to out/runs.jsonl, so that --reuse can read back the fastest
    run of a spec rather than the last one (each run overwrites the tool's own files)."""
    with (out / RUNS_FILE).open("a") as runs:
        runs.write(json.dumps({"spec": spec, "result": result}) + "\n")
    return result


def fastest_recorded(out: Path, spec: dict[str, Any]) -> dict[str, Any] | None:
    """The fastest run recorded in out/runs.jsonl with this spec; None if there is none."""
    path = out / RUNS_FILE
    lines = path.read_text().splitlines() if path.is_file() else []
    runs = [json.loads(line) for line in lines if line.strip()]
    same = [run["result"] for run in runs if _comparable(run["spec"]) == _comparable(spec)]
    return min(same, key=lambda result: result["seconds"]) if same else None


def _comparable(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with any path to a benchmark script cut to the script's name: a copy of
    benchmarks/ elsewhere (a snapshot a long run started from) runs the same command."""
    if "command" not in spec:
        return spec
    command = [Path(part).name if part.endswith(".py") else part for part in spec["command"]]
    return {**spec, "command": command}


def _last_ours_run(out: Path, spec: dict[str, Any]) -> dict[str, Any] | None:
    """A folder from before runs.jsonl: its last ours run, if it had this spec."""
    finished = out / "ours-result.json"
    if not (finished.is_file() and _same_spec(out / "ours-spec.json", spec)):
        return None
    result = json.loads(finished.read_text())
    peak = result["peak_memory_mb_in_process"]
    return {**result, "seconds": result["trace_seconds"], "peak_rss_mb": round(peak, 1)}


def peer_timeout(minutes: float, peak_rss_mb: float) -> dict[str, Any]:
    """What a circuit-tracer run stopped at --peer-timeout-min records: its peak memory
    until then, a lower bound on its whole run's."""
    return {
        "skipped": f"over {minutes:.0f} min (peak {peak_rss_mb / 1024:.1f} GB when stopped)",
        "peak_rss_mb_at_least": peak_rss_mb,
    }


def peer_failure(returncode: int, peak_rss_mb: float) -> str:
    """What a failed circuit-tracer run records (it does not stop the benchmark)."""
    if returncode == -9:
        return f"killed (SIGKILL) at {peak_rss_mb / 1024:.1f} GB: out of memory"
    if returncode < 0:
        return f"killed by signal {-returncode} at {peak_rss_mb / 1024:.1f} GB"
    return f"failed (exit {returncode})"


def _peer_result(
    out: Path, batch: int, prompt: dict[str, Any], peak_rss_mb: float | None
) -> dict[str, Any]:
    """A finished circuit-tracer run's figures; peak_rss_mb None: its own ru_maxrss
    (a run read back with --reuse)."""
    info = json.loads((out / "peer.json").read_text())
    peak = info["peak_rss_mb"] if peak_rss_mb is None else peak_rss_mb
    info.update(seconds=info["attribute_seconds"], peak_rss_mb=round(peak, 1))
    info["work"] = peer_work(info["rows_computed"], batch, prompt["n_positions"])
    return info


def run_case(args, model, item, prompt, work: Path) -> dict[str, Any]:  # noqa: ANN001
    length = prompt["n_positions"]
    budget = args.budget if length >= args.budget_from else None
    folder = work / "fair" / f"{item['kind']}-{length}-{budget or 'all'}"
    runs: dict[str, list[dict[str, Any]]] = {}
    for repeat in range(args.repeats):
        for variant in variants(args):
            name = _name(variant)
            if any("skipped" in r for r in runs.get(name, [])):
                continue
            result = run_variant(args, model, item, prompt, budget, variant, folder)
            runs.setdefault(name, []).append(result)
            print(
                f"  {item['kind']} {length} {name} run {repeat + 1}: {_seconds(result)}", flush=True
            )
    case = {"kind": item["kind"], "length": length, "budget": budget, "runs": runs}
    case["skipped"] = {n: r[0]["skipped"] for n, r in runs.items() if "skipped" in r[0]}
    for name, results in runs.items():
        timed = [r for r in results if "seconds" in r]
        if timed:
            best = min(timed, key=lambda r: r["seconds"])
            case.setdefault("best_of", {})[name] = _work_summary(best, item["kind"], length)
    finished = [v for v in variants(args) if any("seconds" in r for r in runs[_name(v)])]
    peers = [v for v in finished if v[0] == "peer"]
    if ("ours", 32, True) in finished and peers:  # circuit-tracer's default run first
        tool, batch, heap = max(peers, key=lambda v: (v[1] == 512 and not v[2], -v[1]))
        spec = {
            "ours": str(folder / "ours-b32-heap" / "graph"),
            "peer": str(folder / f"{tool}-b{batch}{'-heap' if heap else ''}"),
            "kind": item["kind"],
            "transcoder": item["native"],
            "ids": prompt["ids"],
            "device": "cpu",
        }
        case["compared_with"] = _name((tool, batch, heap))
        compared, _ = worker("compare", spec, folder, args.threads)
        case["compare"] = compared.get("overall_agreeing")
    return case


def _same_spec(path: Path, spec: dict[str, Any]) -> bool:
    """Whether an earlier ours run had this spec (its result file's path aside)."""
    if not path.is_file():
        return False
    earlier = json.loads(path.read_text())
    earlier.pop("result", None)
    return earlier == spec


def _name(variant: tuple[str, int, bool]) -> str:
    tool, batch, heap = variant
    if tool == "ours":
        return f"ours b{batch}"
    return f"peer b{batch}" + (" heap" if heap else "")


def _seconds(result: dict[str, Any]) -> str:
    if "skipped" in result:
        return result["skipped"]
    return f"{result['seconds']:.1f} s" + (" (read back, --reuse)" if result.get("reused") else "")


def _work_summary(result: dict[str, Any], kind: str, length: int) -> dict[str, Any]:
    work = result.get("work") or {**result["backward"], "batch": result["batch_size"]}
    flops = backward_flops(work, length, result["n_active"], kind)
    return {
        "seconds": result["seconds"],
        "graph_seconds": _graph_seconds(result),
        "peak_rss_mb": result["peak_rss_mb"],
        "rows": result["rows_computed"],
        "passes": work["passes"],
        "gflop": flops / 1e9,
        "gflop_per_pass": flops / 1e9 / max(work["passes"], 1),
        "gflop_per_s": flops / 1e9 / result["seconds"],
        "work": work,
        "upper_bound": "work" in result,
        "scores": {k: result.get(k) for k in SCORE_KEYS},
        "reused": bool(result.get("reused")),
    }


def _graph_seconds(result: dict[str, Any]) -> float | None:
    """The run's time for the graph alone, what circuit-tracer's `attribute()` times: ours
    without scores and pruning (None for runs from before it was recorded)."""
    if "attribute_seconds" in result:  # circuit-tracer's run
        return result["seconds"]
    return result.get("graph_seconds")


SCORE_KEYS = ("replacement_score", "completeness_score", "completeness_circuit_tracer")
"""Per run: replacement and completeness as the tool reports them (circuit-tracer's
`compute_graph_scores`; ours the paper's completeness), and ours by circuit-tracer's
formula (`graph.scores.circuit_tracer_scores`), all on the unpruned graph."""


def score_lines(case: dict[str, Any]) -> list[str]:
    """One row per case: both tools' scores of their fastest default-batch graphs."""
    best = case.get("best_of", {})
    ours = (best.get("ours b32") or {}).get("scores", {})
    peer = next((s["scores"] for n, s in best.items() if n.startswith("peer")), {})

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    return [
        f"| {case['kind']} | {case['length']} | {cell(ours.get('replacement_score'))} "
        f"| {cell(peer.get('replacement_score'))} | {cell(ours.get('completeness_score'))} "
        f"| {cell(ours.get('completeness_circuit_tracer'))} "
        f"| {cell(peer.get('completeness_score'))} |"
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(args.work)
    cases = args.case_list
    kinds = sorted({kind for kind, _ in cases})
    items = {kind: transcoder_folders(work, kind) for kind in kinds}
    lengths = sorted({length for _, length in cases})
    spec = {"transcoders": list(items.values()), "lengths": lengths}
    prepared, _ = worker("prepare", spec, work / "prepare", args.threads)
    for item in items.values():
        item["export"] = export(item, args.threads)
    prompts = {p["length"]: p for p in prepared["prompts"]}
    rows = []
    for kind, length in cases:
        print(f"{kind} {length} tokens", flush=True)
        rows.append(run_case(args, prepared["model_folder"], items[kind], prompts[length], work))
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": args.machine,
        "note": args.note,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "versions_ours": {**prepared["versions"], "git": git_state()},
        "settings": {k: v for k, v in vars(args).items() if k not in ("work", "results")},
        "cases": rows,
    }
    write_results(report, Path(args.results))
    return 0


def case_lines(case: dict[str, Any]) -> list[str]:
    best = case.get("best_of", {})
    lines = []
    for name, summary in best.items():
        bound = " (≤)" if summary["upper_bound"] else ""
        read_back = " (read back)" if summary.get("reused") else ""
        graph = summary.get("graph_seconds")
        lines.append(
            f"| {case['kind']} | {case['length']} | {case['budget'] or 'all'} | {name}{read_back} "
            f"| {summary['seconds']:.1f} | {'-' if graph is None else f'{graph:.1f}'} "
            f"| {summary['peak_rss_mb']:.0f} | {summary['rows']} "
            f"| {summary['passes']} | {summary['gflop_per_pass']:.2f}{bound} "
            f"| {summary['gflop_per_s']:.0f}{bound} |"
        )
    for name, reason in case.get("skipped", {}).items():
        lines.append(
            f"| {case['kind']} | {case['length']} | {case['budget'] or 'all'} | {name} "
            f"| {reason} | | | | | | |"
        )
    return lines


def ratio_lines(case: dict[str, Any]) -> list[str]:
    best = case.get("best_of", {})
    ours = {n: s for n, s in best.items() if n.startswith("ours")}
    peer = {n: s for n, s in best.items() if n.startswith("peer")}
    if not ours or not peer:
        tried = any(name.startswith("peer") for name in case.get("runs", {}))
        verdict = "circuit-tracer did not finish" if tried else "circuit-tracer not run"
        bound = _memory_bound(case)
        memory = f" {bound} |" if bound else " |"
        return [f"| {case['kind']} | {case['length']} | {verdict} | | |{memory} |"]
    ours_best = min(ours.values(), key=lambda s: s["seconds"])
    peer_best = min(peer.values(), key=lambda s: s["seconds"])
    default = "-"
    if "ours b32" in ours and "peer b512" in peer:
        default = f"{peer['peer b512']['seconds'] / ours['ours b32']['seconds']:.1f}×"
    agreement = case.get("compare") or {}
    relative = f"{agreement['relative']:.1e}" if "relative" in agreement else "-"
    if case.get("compared_with", "peer b512") != "peer b512":
        relative += f" (ours b32 vs {case['compared_with']})"
    name_of = {id(s): n for n, s in best.items()}
    graph = ours_best.get("graph_seconds")
    graph_ratio = "-" if not graph else f"{peer_best['seconds'] / graph:.1f}×"
    return [
        f"| {case['kind']} | {case['length']} | {default} "
        f"| {peer_best['seconds'] / ours_best['seconds']:.1f}× "
        f"({name_of[id(peer_best)]} / {name_of[id(ours_best)]}) | {graph_ratio} "
        f"| {peer_best['peak_rss_mb'] / ours_best['peak_rss_mb']:.2f} | {relative} |"
    ]


def _memory_bound(case: dict[str, Any]) -> str:
    """'≥ r': circuit-tracer's largest peak before it was stopped over ours (best run)."""
    stopped = [
        r["peak_rss_mb_at_least"]
        for name, results in case.get("runs", {}).items()
        if name.startswith("peer")
        for r in results
        if "peak_rss_mb_at_least" in r
    ]
    ours = [s for n, s in case.get("best_of", {}).items() if n.startswith("ours")]
    if not stopped or not ours:
        return ""
    ours_best = min(ours, key=lambda s: s["seconds"])
    return f"≥ {max(stopped) / ours_best['peak_rss_mb']:.2f}"


def write_results(report: dict[str, Any], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"attribution-fair-{report['date']}-{report['machine']}"
    Path(f"{stem}.json").write_text(json.dumps(report, indent=1))
    s = report["settings"]
    lines = [
        f"# Attribution, fair side by side: {report['date']}, {report['machine']}",
        "",
        f"- machine: {report['platform']}, {report['cpu_count']} CPUs; torch threads "
        f"{s['threads']} for both tools; git {report['versions_ours']['git']}",
        f"- each variant run {s['repeats']} times, alternating ours / peer, fastest kept; "
        "peer 'heap': circuit-tracer under the heap policy circuitscope's command sets",
        f"- all active features below {s['budget_from']} tokens, max_feature_nodes="
        f"{s['budget']} from there; max_n_logits 10, desired_logit_prob 0.95",
    ]
    if report["note"]:
        lines.append(f"- note: {report['note']}")
    lines += [
        "",
        "| kind | tokens | ratio, both at their defaults (peer b512 / ours b32) | ratio, both at "
        "their best | the same, graph only | peak memory peer / ours (best) | graphs: max ΔA / "
        "max A |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in report["cases"]:
        lines += ratio_lines(case)
    lines += [
        "",
        "Every variant's fastest run, and its work counted (`backward_flops` in the script; "
        "'≤': circuit-tracer's, if every pass reached the top layer; 'read back': a run an "
        "earlier call finished, read with --reuse; 's, graph only': our `trace` less its "
        "scores and pruning, the part circuit-tracer's `attribute()` does):",
        "",
        "| kind | tokens | budget | variant | s | s, graph only | MB | rows | passes | GFLOP per "
        "pass | GFLOP/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case in report["cases"]:
        lines += case_lines(case)
    lines += [
        "",
        "Scores of the unpruned graphs (ours: the b32 run; circuit-tracer: its fastest run). "
        "Completeness as the paper defines it leaves error and token nodes out; "
        "circuit-tracer's formula counts them as fully explained (`graph/scores.py`):",
        "",
        "| kind | tokens | replacement, ours | replacement, circuit-tracer | completeness, ours "
        "(paper) | completeness, ours by circuit-tracer's formula | completeness, "
        "circuit-tracer |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in report["cases"]:
        lines += score_lines(case)
    text = "\n".join(lines) + "\n"
    Path(f"{stem}.md").write_text(text)
    print("\n" + text + f"\nwritten {stem}.md and .json")


if __name__ == "__main__":
    raise SystemExit(main())
