"""Attribution speed and agreement: circuitscope vs circuit-tracer 0.5.0 on SmolLM2-135M.

    .venv/bin/python benchmarks/attribution.py [--lengths 8 32 128 512] [--kinds clt plt]
                                               [--peer/--no-peer] [--quick]

For each transcoder kind and prompt length: one `trace` by circuitscope and one
`attribute` by circuit-tracer (in its own virtualenv), each in a fresh process;
wall time, peak memory (the process's max RSS), active features, rows computed;
then the largest difference between the two adjacency matrices on shared nodes.
Prints a table and writes benchmarks/results/attribution-<date>-<machine>.md/.json.
See benchmarks/README.md for the setup of the peer and what each column means.

This process imports nothing heavy: the steps run as children (attribution_workers.py
under this interpreter, peer_circuit_tracer.py under the peer's).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
WORKERS = HERE / "attribution_workers.py"
PEER = HERE / "peer_circuit_tracer.py"
TRANSCODERS = {
    "clt": {"n_features": 2048, "l0": 30.0, "seed": 0},
    "plt": {"n_features": 4096, "l0": 30.0, "seed": 0},
}


FULL = {
    "lengths": [8, 32, 128, 512],
    "max_feature_nodes": 2048,
    "budget_from": 32,
    "peer_budget_min": 15.0,
}
QUICK = {"lengths": [8], "max_feature_nodes": 512, "budget_from": 0, "peer_budget_min": 5.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--lengths", type=int, nargs="+", help="prompt positions, BOS included")
    parser.add_argument("--kinds", nargs="+", choices=sorted(TRANSCODERS), default=["clt", "plt"])
    parser.add_argument("--peer", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 8 tokens, max_feature_nodes 512 at every length, peer budget 5 min",
    )
    parser.add_argument("--peer-python", default="/work/peer-venv/bin/python")
    parser.add_argument(
        "--peer-results",
        help="an earlier results .json: reuse its circuit-tracer runs where the kind, prompt, "
        "budget and settings match and their output is still under --work (circuit-tracer "
        "does not change between runs; the table marks reused rows)",
    )
    parser.add_argument(
        "--peer-budget-min",
        type=float,
        help="skip a peer run estimated to take longer (default 15, --quick 5)",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="targets per backward, both")
    parser.add_argument(
        "--max-feature-nodes", type=int, help="feature rows from --budget-from on (default 2048)"
    )
    parser.add_argument(
        "--budget-from",
        type=int,
        help="the first length with a feature budget (default 32; below it, all features)",
    )
    parser.add_argument("--max-n-logits", type=int, default=10)
    parser.add_argument("--desired-logit-prob", type=float, default=0.95)
    parser.add_argument("--device", default="cpu", help="cpu or cuda, for both tools")
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads for both tools (OMP_NUM_THREADS); default: torch's (all cores)",
    )
    parser.add_argument("--work", default=str(ROOT / "out" / "bench"), help="scratch folder")
    parser.add_argument("--results", default=str(HERE / "results"))
    parser.add_argument("--machine", help="name in the results file (default cpu-<n>core)")
    parser.add_argument("--note", default="", help="a line recorded with the results")
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.peer_report = None
    if args.peer_results:
        try:
            args.peer_report = json.loads(Path(args.peer_results).read_text())
        except (OSError, ValueError) as error:
            parser.error(f"--peer-results {args.peer_results}: {error}")
    if args.machine is None:
        args.machine = f"{'gpu' if args.device.startswith('cuda') else 'cpu'}-{os.cpu_count()}core"
    args.lengths = sorted(set(args.lengths))
    return args


@dataclass
class Child:
    returncode: int
    seconds: float
    peak_rss_mb: float
    timed_out: bool
    log: Path


def run_child(
    command: list[str], log: Path, threads: int | None, timeout_s: float | None = None
) -> Child:
    """Run `command` to its end; its wall time and max RSS (from wait4, this child only)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with log.open("w") as handle:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
        timed_out = False
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if timeout_s is not None and time.perf_counter() - start > timeout_s:
                process.kill()
                timed_out = True
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.2)
        seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return Child(process.returncode, seconds, usage.ru_maxrss / 1024, timed_out, log)


def worker(
    step: str, spec: dict[str, Any], folder: Path, threads: int | None
) -> tuple[dict[str, Any], Child]:
    """Run one attribution_workers.py step; its JSON result and the child's measures."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = dict(spec, result=str(folder / f"{step}-result.json"))
    spec_path = folder / f"{step}-spec.json"
    spec_path.write_text(json.dumps(spec, indent=1))
    command = [sys.executable, str(WORKERS), step, str(spec_path)]
    child = run_child(command, folder / f"{step}.log", threads)
    if child.returncode != 0:
        raise SystemExit(
            f"{step} failed (exit {child.returncode}); see {child.log}:\n{_tail(child.log)}"
        )
    return json.loads(Path(spec["result"]).read_text()), child


def _tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# --- the steps ------------------------------------------------------------------------


def transcoder_folders(work: Path, kind: str) -> dict[str, Any]:
    spec = TRANSCODERS[kind]
    name = f"{kind}-{spec['n_features']}-l0_{spec['l0']:g}-seed{spec['seed']}"
    return {
        "kind": kind,
        **spec,
        "native": str(work / "transcoders" / name / "native"),
        "circuit_tracer": str(work / "transcoders" / name / "circuit-tracer"),
    }


def export(item: dict[str, Any], threads: int | None) -> str:
    """`circuitscope convert NATIVE CT --to circuit-tracer`, once."""
    target = Path(item["circuit_tracer"])
    marker = target / "bench-complete.json"
    if marker.is_file():
        return "reused"
    cli = str(Path(sys.executable).with_name("circuitscope"))
    command = [cli, "convert", item["native"], str(target), "--to", "circuit-tracer", "--force"]
    child = run_child(command, target.parent / "convert.log", threads)
    if child.returncode != 0:
        raise SystemExit(f"convert failed; see {child.log}:\n{_tail(child.log)}")
    marker.write_text(json.dumps({"from": item["native"]}))
    return f"exported in {child.seconds:.0f} s"


def peer_command(args: argparse.Namespace, model: str, item: dict, ids: list[int]) -> list[str]:
    return [
        args.peer_python,
        str(PEER),
        "--model",
        model,
        "--transcoder",
        item["circuit_tracer"],
        "--ids",
        ",".join(map(str, ids)),
        "--batch-size",
        str(args.batch_size),
        "--max-n-logits",
        str(args.max_n_logits),
        "--desired-logit-prob",
        str(args.desired_logit_prob),
        "--device",
        args.device,
        "--compat-folder",
        str(Path(args.work) / "peer-model"),
    ]


def check_peer(args: argparse.Namespace, model: str, item: dict, prompt: dict, work: Path) -> dict:
    """Load the export in circuit-tracer, compare its TL model with HF, count active features."""
    out = work / "runs" / f"{item['kind']}-check"
    command = peer_command(args, model, item, prompt["ids"]) + ["--out", str(out), "--check"]
    child = run_child(command, out / "peer-check.log", args.threads)
    if child.returncode != 0:
        raise SystemExit(
            f"circuit-tracer could not load {item['circuit_tracer']}:\n{_tail(child.log)}"
        )
    return json.loads((out / "peer-check.json").read_text())


def budget_for(args: argparse.Namespace, length: int) -> int | None:
    return args.max_feature_nodes if length >= args.budget_from else None


def run_peer(
    args: argparse.Namespace,
    model: str,
    item: dict,
    prompt: dict,
    budget: int | None,
    folder: Path,
    estimate_s: float | None,
) -> dict[str, Any]:
    limit_s = args.peer_budget_min * 60
    if estimate_s is not None and estimate_s > limit_s:
        return {
            "skipped": f"skipped (would take ~{estimate_s / 60:.0f} min)",
            "estimate_s": estimate_s,
        }
    out = folder / "peer"
    command = peer_command(args, model, item, prompt["ids"]) + ["--out", str(out)]
    if budget is not None:
        command += ["--max-feature-nodes", str(budget)]
    # Without an estimate (its first length), a hard stop at twice the budget.
    child = run_child(command, folder / "peer.log", args.threads, timeout_s=2 * limit_s)
    if child.timed_out:
        return {"skipped": f"stopped after {child.seconds / 60:.0f} min (over budget)"}
    if child.returncode != 0:
        raise SystemExit(f"circuit-tracer failed; see {child.log}:\n{_tail(child.log)}")
    info = json.loads((out / "peer.json").read_text())
    info.update(wall_seconds=round(child.seconds, 3), peak_rss_mb=round(child.peak_rss_mb, 1))
    if estimate_s is not None:
        info["estimate_s"] = round(estimate_s, 1)
    return info


REUSED_SETTINGS = ("batch_size", "max_n_logits", "desired_logit_prob", "device", "threads")


def earlier_peer(
    args: argparse.Namespace, row: dict[str, Any], prompt: dict, folder: Path
) -> dict[str, Any] | None:
    """The circuit-tracer run of `--peer-results` for this row, if it matches and its
    output in `folder` is the one that file describes; else None."""
    report = args.peer_report
    if report is None:
        return None
    settings = report["settings"]
    if any(settings.get(key) != getattr(args, key) for key in REUSED_SETTINGS):
        return None
    if report["prompts"].get(str(row["length"])) != prompt["text"]:
        return None
    for earlier in report["runs"]:
        same = (earlier["kind"], earlier["length"], earlier["max_feature_nodes"]) == (
            row["kind"],
            row["length"],
            row["max_feature_nodes"],
        )
        peer = earlier.get("peer", {})
        if not same or "attribute_seconds" not in peer:
            continue
        stored = folder / "peer" / "peer.json"
        if not stored.exists():
            return None
        if json.loads(stored.read_text())["attribute_seconds"] != peer["attribute_seconds"]:
            return None
        return {**peer, "reused_from": Path(args.peer_results).name}
    return None


def estimate_peer(previous: dict | None, row: dict[str, Any]) -> float | None:
    """The peer's last time for this kind, scaled by rows and by the cost of a row.

    A row costs a backward pass through `length` positions and, in circuit-tracer,
    a product with every active feature's decoder vectors (it computes all columns):
    scaled by the larger of the two ratios. A rough guide (it ignores the influence
    re-ranking a feature budget adds), hence the hard stop in `run_peer`.
    """
    if previous is None:
        return None
    rows = row["ours"]["rows_computed"] / previous["rows"]
    per_row = max(
        row["n_positions"] / previous["n_positions"],
        _columns(row) / previous["columns"],
    )
    return previous["seconds"] * rows * per_row


def _columns(row: dict[str, Any]) -> int:
    """Columns of a full row: active features, error nodes, tokens."""
    ours = row["ours"]
    return ours["n_active"] + (ours["n_layers"] + 1) * row["n_positions"]


def git_state() -> str:
    """The commit of the checkout, with '-dirty' when the working tree has changes."""
    try:
        command = ["git", "-C", str(ROOT), "describe", "--always", "--dirty"]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# --- main -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(args.work)
    today = datetime.date.today().isoformat()
    items = [transcoder_folders(work, kind) for kind in args.kinds]
    print(f"preparing transcoders and prompts under {work} ...", flush=True)
    prep_spec = {"transcoders": items, "lengths": args.lengths}
    prepared, _ = worker("prepare", prep_spec, work / "prepare", args.threads)
    for item in items:
        item["export"] = export(item, args.threads) if args.peer else "not needed"
    prompts = {p["length"]: p for p in prepared["prompts"]}
    model = prepared["model_folder"]
    checks = {}
    if args.peer:
        for item in items:
            checks[item["kind"]] = check_peer(args, model, item, prompts[args.lengths[0]], work)
            check = checks[item["kind"]]
            print(
                f"circuit-tracer loads the {item['kind']} export: {check['n_active']} active "
                f"features on the first prompt; its TL model's logits are the HF model's "
                f"within {check['tl_vs_hf_max_logit_diff']:.1e}",
                flush=True,
            )

    rows: list[dict[str, Any]] = []
    for item in items:
        previous_peer = None
        for length in args.lengths:
            row = run_one(args, model, item, prompts[length], work, previous_peer)
            rows.append(row)
            print(format_row(row), flush=True)
            if "attribute_seconds" in row.get("peer", {}):
                previous_peer = {
                    "seconds": row["peer"]["attribute_seconds"],
                    "rows": row["peer"]["rows_computed"],
                    "n_positions": row["n_positions"],
                    "columns": _columns(row),
                }
    report = {
        "date": today,
        "machine": args.machine,
        "note": args.note,
        "platform": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
        },
        "versions_ours": {**prepared["versions"], "git": git_state()},
        "versions_peer": next(iter(checks.values()), {}).get("versions", {}),
        "settings": {
            key: getattr(args, key)
            for key in (
                "lengths",
                "kinds",
                "peer",
                "batch_size",
                "max_feature_nodes",
                "budget_from",
                "max_n_logits",
                "desired_logit_prob",
                "device",
                "peer_budget_min",
                "threads",
                "peer_results",
            )
        },
        "transcoders": {item["kind"]: {**TRANSCODERS[item["kind"]]} for item in items},
        "peer_checks": checks,
        "prompts": {str(n): prompts[n]["text"] for n in args.lengths},
        "runs": rows,
    }
    write_results(report, Path(args.results))
    return 0


def run_one(
    args: argparse.Namespace,
    model: str,
    item: dict,
    prompt: dict,
    work: Path,
    previous_peer: dict | None,
) -> dict[str, Any]:
    length, kind = prompt["length"], item["kind"]
    budget = budget_for(args, length)
    folder = work / "runs" / f"{kind}-{length}-{budget or 'all'}"
    spec = {
        "transcoder": item["native"],
        "prompt": prompt,
        "out": str(folder / "ours"),
        "max_feature_nodes": budget,
        "batch_size": args.batch_size,
        "max_n_logits": args.max_n_logits,
        "desired_logit_prob": args.desired_logit_prob,
        "device": args.device,
    }
    ours, child = worker("ours", spec, folder, args.threads)
    ours.update(wall_seconds=round(child.seconds, 3), peak_rss_mb=round(child.peak_rss_mb, 1))
    row: dict[str, Any] = {
        "kind": kind,
        "length": length,
        "n_positions": prompt["n_positions"],
        "max_feature_nodes": budget,
        "ours": ours,
    }
    if not args.peer:
        return row
    estimate = estimate_peer(previous_peer, row)
    reused = earlier_peer(args, row, prompt, folder)
    row["peer"] = reused or run_peer(args, model, item, prompt, budget, folder, estimate)
    if "skipped" in row["peer"]:
        return row
    compare_spec = {
        "ours": str(folder / "ours"),
        "peer": str(folder / "peer"),
        "kind": kind,
        "transcoder": item["native"],
        "ids": prompt["ids"],
        "device": args.device,
    }
    row["compare"], _ = worker("compare", compare_spec, folder, args.threads)
    return row


# --- output ---------------------------------------------------------------------------

COLUMNS = (
    "kind",
    "tokens",
    "budget",
    "active",
    "rows",
    "ours s",
    "ours MB",
    "peer s",
    "peer MB",
    "time ×",
    "mem ×",
    "max ΔA",
    "rel ΔA",
)


def table_cells(row: dict[str, Any]) -> list[str]:
    ours, peer, compare = row["ours"], row.get("peer"), row.get("compare")
    cells = [
        row["kind"],
        str(row["n_positions"]),
        str(row["max_feature_nodes"] or "all"),
        str(ours["n_active"]),
        str(ours["rows_computed"]),
        f"{ours['trace_seconds']:.1f}",
        f"{ours['peak_rss_mb']:.0f}",
    ]
    if peer is None:
        return cells + ["not run"] + [""] * 5
    if "skipped" in peer:
        return cells + [peer["skipped"]] + [""] * 5
    cells += [
        f"{peer['attribute_seconds']:.1f}" + (" (earlier run)" if "reused_from" in peer else ""),
        f"{peer['peak_rss_mb']:.0f}",
        f"{peer['attribute_seconds'] / ours['trace_seconds']:.1f}",
        f"{peer['peak_rss_mb'] / ours['peak_rss_mb']:.2f}",
    ]
    overall = compare["overall_agreeing"] if compare else None
    if overall is None:
        return cells + ["", ""]
    return cells + [f"{overall['max_abs_diff']:.2e}", f"{overall['relative']:.1e}"]


def format_row(row: dict[str, Any]) -> str:
    return "  ".join(f"{h}={c}" for h, c in zip(COLUMNS, table_cells(row), strict=True) if c)


def markdown_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(table_cells(row)) + " |" for row in rows]
    return lines


def block_table(rows: list[dict[str, Any]]) -> list[str]:
    compared = [row for row in rows if row.get("compare")]
    if not compared:
        return []
    names = list(compared[0]["compare"]["blocks"])
    lines = [
        "| kind | tokens | " + " | ".join(names) + " |",
        "|" + "---|" * (len(names) + 2),
    ]
    for row in compared:
        blocks = row["compare"]["blocks"]
        cells = [_block_cell(n, blocks[n]) for n in names]
        lines.append(f"| {row['kind']} | {row['n_positions']} | " + " | ".join(cells) + " |")
    return lines


def _block_cell(name: str, block: dict[str, Any]) -> str:
    if not block["entries"]:
        return "-"
    if name.endswith("@BOS"):
        return f"ours {block['max_abs_ours']:.1e}, peer {block['max_abs_peer']:.1e}"
    return f"{block['max_abs_diff']:.1e} / {block['scale']:.1e}"


def selection_lines(rows: list[dict[str, Any]]) -> list[str]:
    """For runs whose rows were restricted to the most influential columns (--row-buffer-mb)."""
    lines = []
    for row in rows:
        selection = row.get("ours", {}).get("selection") or {}
        if selection.get("kept_columns") is None:
            continue
        exact = "provably the unrestricted choice" if selection["exact"] else "not certified"
        lines.append(
            f"- {row['kind']} {row['n_positions']} tokens: columns restricted to "
            f"{selection['kept_columns']} of {selection['n_active']} active features after "
            f"{selection['exploration_rows']} feature rows; selection {exact} (largest bound "
            f"over lowest pick {selection['worst_bound_ratio']:.3g})"
        )
    return lines


def agreement_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    for row in rows:
        compare = row.get("compare")
        if not compare:
            continue
        f = compare["features"]
        same_logits = compare["logits_ours"] == compare["logits_peer"]
        lines.append(
            f"- {row['kind']} {row['n_positions']} tokens: active features ours "
            f"{row['ours']['n_active']} / circuit-tracer {f['active_peer']}; features in graph "
            f"{f['in_graph_ours']} / {f['in_graph_peer']} ({f['in_graph_shared']} shared); "
            f"max activation difference {f['activation_max_abs_diff']:.1e}; logit targets "
            f"{'identical' if same_logits else 'differ'} "
            f"(max probability difference {compare['logit_prob_max_diff']:.1e}); "
            f"{compare['n_shared_nodes']} shared nodes."
        )
        for flip in compare["threshold_flips"]:
            lines.append(
                f"  - threshold flip: L{flip['layer']}/F{flip['index']}@{flip['position']} "
                f"active in {flip['active_in']} only (activation {flip['activation']:.7f}, "
                f"circuitscope's pre-activation {flip['pre_activation_ours']:.7f}, "
                f"threshold {flip['threshold']:.7f}); its error columns are the error@flip blocks"
            )
    return lines


def write_results(report: dict[str, Any], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"attribution-{report['date']}-{report['machine']}"
    Path(f"{stem}.json").write_text(json.dumps(report, indent=1))
    table = markdown_table(report["runs"])
    print("\n" + "\n".join(table))
    transcoders = ", ".join(
        f"{kind.upper()} {t['n_features']} features/layer"
        for kind, t in report["transcoders"].items()
    )
    s = report["settings"]
    lines = [
        f"# Attribution benchmark, {report['date']}, {report['machine']}",
        "",
        f"- machine: {report['platform']['platform']}, {report['platform']['cpu_count']} CPUs, "
        f"device {s['device']}",
        f"- circuitscope: {_versions(report['versions_ours'])}",
        f"- circuit-tracer: {_versions(report['versions_peer']) or 'not run'}",
        "- model: SmolLM2-135M-Instruct (bundled GGUF, dequantized to fp32), 30 layers, "
        "d_model 576",
        f"- transcoders: random, JumpReLU thresholds calibrated to ~30 active features per "
        f"layer per token: {transcoders}",
        "- prompts: prefixes of a fixed English paragraph, BOS (id 1) first; "
        "'tokens' counts positions with the BOS; the same ids for both tools",
        f"- {_budget_text(s)}; max_n_logits={s['max_n_logits']}, "
        f"desired_logit_prob={s['desired_logit_prob']}, batch_size={s['batch_size']}, "
        f"torch threads {s['threads'] or 'default'}; the same for both tools",
        f"- peer runs estimated over {s['peer_budget_min']:.0f} min are skipped",
    ]
    reused = sorted(
        {r["peer"]["reused_from"] for r in report["runs"] if "reused_from" in r.get("peer", {})}
    )
    if reused:
        lines.append(
            f"- circuit-tracer times marked 'earlier run' are from {', '.join(reused)} (the same "
            "machine, prompts, transcoders and settings); its saved graphs are compared again "
            "with this run's"
        )
    if report["note"]:
        lines.append(f"- note: {report['note']}")
    lines += ["", *table, ""]
    blocks = block_table(report["runs"])
    if blocks:
        lines += [
            "Largest edge difference per block (target <- source), as max |ΔA| / max |A| "
            "over both tools. error@BOS: the columns of error nodes at position 0, where the "
            "conventions differ (circuit-tracer zeroes them; see benchmarks/README.md), as "
            "each tool's max |A|. error@flip: the error columns at a feature that is active "
            "in one tool only (its pre-activation on the JumpReLU threshold, to the last bits):",
            "",
            *blocks,
            "",
            *agreement_lines(report["runs"]),
            "",
        ]
    selections = selection_lines(report["runs"])
    if selections:
        lines += ["Rows restricted to the most influential columns:", "", *selections, ""]
    lines.append("Columns: see benchmarks/README.md. Full numbers in the .json beside this file.")
    Path(f"{stem}.md").write_text("\n".join(lines) + "\n")
    print(f"\nwritten {stem}.md and .json")


def _budget_text(settings: dict[str, Any]) -> str:
    budget, start = settings["max_feature_nodes"], settings["budget_from"]
    if start <= min(settings["lengths"]):
        return f"max_feature_nodes={budget} at every length"
    return (
        f"all active features attributed below {start} tokens, "
        f"max_feature_nodes={budget} from {start}"
    )


def _versions(versions: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in versions.items())


if __name__ == "__main__":
    sys.exit(main())
