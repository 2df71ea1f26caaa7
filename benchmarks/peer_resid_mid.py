"""A resid_mid CLT, side by side: circuitscope vs circuit-tracer 0.5.0 on SmolLM2-135M.

    .venv/bin/python benchmarks/peer_resid_mid.py [--n-features 256] [--l0 8] [--threads 2]

1. Writes a seeded random CLT in circuit-tracer's own layout (`config.yaml` with
   `feature_input_hook: hook_resid_mid`, `feature_output_hook: hook_mlp_out`;
   `W_enc_{i}.safetensors` holding W_enc_{i} [n, d], b_enc_{i} [n], b_dec_{i} [d],
   threshold_{i} [n]; `W_dec_{i}.safetensors` holding W_dec_{i} [n, L - i, d]: what
   its `load_clt` reads). Encoders and decoders are Gaussian; each layer's JumpReLU
   threshold is the (1 − l0/n) quantile of its pre-activations on the residual stream
   after attention (circuitscope's `resid_mid` site) over a sample text, so about l0
   features fire per layer and token (as `circuitscope.testing.sparse_random` does for
   `mlp_in`). Made once under --work and reused.
2. `circuitscope convert` reads that folder into a native one (our circuit-tracer
   importer is part of what is checked).
3. Traces an 8-token prompt (BOS included) with every active feature (no budget):
   circuit-tracer in its own virtualenv (benchmarks/peer_circuit_tracer.py, first
   with --check: its TransformerLens model against the HF model), circuitscope with
   `attribution_workers.py ours`; then `attribution_workers.py compare`.
4. Prints the table and the verdict: the same features in both graphs, and every
   edge within --tolerance (1e-5) of the largest |edge|, apart from the BOS error
   columns (a convention: circuit-tracer zeroes them) and threshold flips (see
   benchmarks/README.md). Writes benchmarks/results/resid-mid-vs-circuit-tracer-
   <date>-<machine>.md/.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

from attribution import (
    ROOT,
    agreement_lines,
    block_table,
    git_state,
    peer_command,
    run_child,
    worker,
)

RESULTS = Path(__file__).resolve().parent / "results"
N_POSITIONS = 8
MODEL = "smollm2-135m"  # as attribution_workers.py


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--n-features", type=int, default=256, help="features per layer")
    parser.add_argument("--l0", type=float, default=8.0, help="active features per layer, token")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=1e-5, help="of the largest |edge|")
    parser.add_argument("--peer-python", default="/work/peer-venv/bin/python")
    parser.add_argument(
        "--reuse-peer",
        action="store_true",
        help="reuse circuit-tracer's run of an earlier call (same transcoder, prompt and "
        "settings; its output still under --work) instead of running it again",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="targets per backward, both")
    parser.add_argument("--max-n-logits", type=int, default=10)
    parser.add_argument("--desired-logit-prob", type=float, default=0.95)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch threads for both tools")
    parser.add_argument("--work", default=str(ROOT / "out" / "bench" / "resid-mid"))
    parser.add_argument("--results", default=str(RESULTS), help="'' to write no results")
    parser.add_argument("--machine", default=f"cpu-{os.cpu_count()}core")
    parser.add_argument("--note", default="", help="a line recorded with the results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(args.work)
    print(f"preparing the prompt and transcoders under {work} ...", flush=True)
    prepared, _ = worker("prepare", {"transcoders": [], "lengths": [N_POSITIONS]},
                         work / "prepare", args.threads)  # fmt: skip
    prompt, model_folder = prepared["prompts"][0], prepared["model_folder"]
    folders = transcoder_folders(args, work)
    made = make_transcoders(args, folders)
    peer = run_peer(args, model_folder, folders, prompt, work)
    runs = work / "runs" / folders["name"]
    ours_spec = {
        "device": args.device,
        "transcoder": str(folders["native"]),
        "prompt": prompt,
        "out": str(runs / "ours"),
        "max_n_logits": args.max_n_logits,
        "desired_logit_prob": args.desired_logit_prob,
        "max_feature_nodes": None,
        "batch_size": args.batch_size,
    }
    print("circuitscope: trace ...", flush=True)
    ours, ours_child = worker("ours", ours_spec, runs / "ours", args.threads)
    compare_spec = {"ours": str(runs / "ours"), "peer": str(runs / "peer"), "kind": "clt",
                    "device": args.device, "transcoder": str(folders["native"]),
                    "ids": prompt["ids"]}  # fmt: skip
    compared, _ = worker("compare", compare_spec, runs / "compare", args.threads)
    row = {
        "kind": "clt resid_mid",
        "n_positions": prompt["n_positions"],
        "ours": ours,
        "compare": compared,
        "ours_peak_rss_mb": ours_child.peak_rss_mb,
        "peer": peer,
    }
    verdict = verdicts(row, args.tolerance)
    lines = report_lines(row, verdict, args.tolerance)
    print("\n".join(lines), flush=True)
    if args.results:
        report = {
            "date": datetime.date.today().isoformat(),
            "machine": args.machine,
            "note": args.note,
            "command": shlex.join([".venv/bin/python", *sys.argv]),
            "platform": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
            "versions_ours": {**prepared["versions"], "git": git_state()},
            "versions_peer": peer["check"].get("versions", {}),
            "transcoder": made,
            "prompt": prompt,
            "settings": {
                k: getattr(args, k)
                for k in (
                    "batch_size",
                    "max_n_logits",
                    "desired_logit_prob",
                    "device",
                    "threads",
                    "tolerance",
                )
            },  # fmt: skip
            "run": row,
            "verdict": verdict,
        }
        write_results(report, lines, Path(args.results))
    return 0 if all(verdict.values()) else 1


def transcoder_folders(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    name = f"clt-resid_mid-{args.n_features}-l0_{args.l0:g}-seed{args.seed}"
    base = work / "transcoders" / name
    return {"name": name, "circuit_tracer": base / "circuit-tracer", "native": base / "native"}


def make_transcoders(args: argparse.Namespace, folders: dict[str, Any]) -> dict[str, Any]:
    """The circuit-tracer folder (a child of this script), then `circuitscope convert`."""
    source, native = folders["circuit_tracer"], folders["native"]
    marker = source / "bench-complete.json"
    if not marker.is_file():
        command = [sys.executable, __file__, "make-clt", str(source), str(args.n_features),
                   str(args.l0), str(args.seed)]  # fmt: skip
        child = run_child(command, source.parent / "make-clt.log", args.threads)
        if child.returncode != 0:
            raise SystemExit(f"making the CLT failed; see {child.log}")
        print(f"made {source} in {child.seconds:.0f} s", flush=True)
    if not (native / "bench-complete.json").is_file():
        cli = str(Path(sys.executable).with_name("circuitscope"))
        command = [cli, "convert", str(source), str(native), "--force"]
        child = run_child(command, native.parent / "convert.log", args.threads)
        if child.returncode != 0:
            raise SystemExit(f"circuitscope convert failed; see {child.log}")
        (native / "bench-complete.json").write_text(json.dumps({"from": str(source)}))
    return json.loads(marker.read_text())


def run_peer(args: argparse.Namespace, model: str, folders: dict[str, Any], prompt: dict,
             work: Path) -> dict[str, Any]:  # fmt: skip
    """circuit-tracer: --check (TL vs HF logits, active features), then `attribute`."""
    settings = argparse.Namespace(**vars(args))
    item = {"circuit_tracer": str(folders["circuit_tracer"])}
    runs = work / "runs" / folders["name"]
    if args.reuse_peer and (runs / "peer" / "peer.json").is_file():
        print("circuit-tracer: reusing the earlier run", flush=True)
        return _peer_result(runs, peak_rss_mb=None, reused=True)
    base = peer_command(settings, model, item, prompt["ids"])
    print("circuit-tracer: load and check ...", flush=True)
    check = run_child([*base, "--out", str(runs / "peer-check"), "--check"],
                      runs / "peer-check.log", args.threads)  # fmt: skip
    if check.returncode != 0:
        raise SystemExit(f"circuit-tracer could not load the CLT; see {check.log}")
    print("circuit-tracer: attribute ...", flush=True)
    child = run_child([*base, "--out", str(runs / "peer")], runs / "peer.log", args.threads)
    if child.returncode != 0:
        raise SystemExit(f"circuit-tracer's attribute failed; see {child.log}")
    return _peer_result(runs, peak_rss_mb=child.peak_rss_mb, reused=False)


def _peer_result(runs: Path, peak_rss_mb: float | None, reused: bool) -> dict[str, Any]:
    result = json.loads((runs / "peer" / "peer.json").read_text())
    result["check"] = json.loads((runs / "peer-check" / "peer-check.json").read_text())
    result["peak_rss_mb_child"] = peak_rss_mb if peak_rss_mb is not None else result["peak_rss_mb"]
    result["reused"] = reused
    return result


def verdicts(row: dict[str, Any], tolerance: float) -> dict[str, bool]:
    compared = row["compare"]
    features = compared["features"]
    same = features["in_graph_ours"] == features["in_graph_peer"] == features["in_graph_shared"]
    return {
        "same_features": bool(same),
        "same_logits": compared["logits_ours"] == compared["logits_peer"],
        "edges_within_tolerance": compared["overall_agreeing"]["relative"] <= tolerance,
    }


def report_lines(row: dict[str, Any], verdict: dict[str, bool], tolerance: float) -> list[str]:
    ours, peer, compared = row["ours"], row["peer"], row["compare"]
    features = compared["features"]
    agreeing = compared["overall_agreeing"]
    lines = [
        "| | circuitscope | circuit-tracer 0.5.0 |",
        "|---|---|---|",
        f"| active features | {ours['n_active']} | {peer['n_active']} |",
        f"| features in the graph | {features['in_graph_ours']} | {features['in_graph_peer']} |",
        f"| logit targets | {len(compared['logits_ours'])} | {len(compared['logits_peer'])} |",
        f"| attribution s | {ours['trace_seconds']:.1f} | {peer['attribute_seconds']:.1f}"
        f"{' (earlier run)' if peer['reused'] else ''} |",
        f"| peak RSS MB (process) | {row['ours_peak_rss_mb']:.0f} "
        f"| {peer['peak_rss_mb_child']:.0f} |",
        "",
        *block_table([row]),
        "",
        *agreement_lines([row]),
        f"- circuit-tracer's TransformerLens model vs the HF model: max |logit difference| "
        f"{peer['check']['tl_vs_hf_max_logit_diff']:.1e}",
        "- every edge outside BOS errors and flips: max |difference| "
        f"{agreeing['max_abs_diff']:.2e} of largest |edge| {agreeing['scale']:.2e} "
        f"(relative {agreeing['relative']:.1e}; "
        f"tolerance {tolerance:g})",
        "",
        "verdict: " + ", ".join(f"{name} {'yes' if ok else 'NO'}" for name, ok in verdict.items()),
    ]
    return lines


def write_results(report: dict[str, Any], lines: list[str], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"resid-mid-vs-circuit-tracer-{report['date']}-{report['machine']}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1))
    transcoder, prompt = report["transcoder"], report["prompt"]
    head = [
        f"# resid_mid CLT: circuitscope vs circuit-tracer 0.5.0 ({report['date']}, "
        f"{report['machine']})",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Model: SmolLM2-135M-Instruct (bundled), fp32, {report['settings']['device']}. "
        f"Transcoder: a random CLT reading resid_mid (circuit-tracer's hook_resid_mid), "
        f"{transcoder['n_features']} features per layer, thresholds for L0 ~ "
        f"{transcoder['l0']:g}, seed {transcoder['seed']}, written in circuit-tracer's layout "
        "and read by `circuitscope convert`. Prompt "
        f"({prompt['n_positions']} positions with the BOS): {prompt['text']!r}. "
        "Every active feature is attributed (no budget).",
        "",
        f"Note: {report['note'] or '-'}",
        "",
        f"Versions: ours {report['versions_ours']}; circuit-tracer's {report['versions_peer']}.",
        "",
    ]
    reading = [
        "",
        "Reading: peak RSS is each child process's maximum resident memory (wait4), loading",
        "included. A block cell is max |ours − circuit-tracer| / largest |edge| of that block",
        "(target kind <- source kind), on the nodes both graphs hold. error@BOS: the error",
        "nodes at position 0 (both tools zero them); error@flip: error columns at a feature",
        "that is active in one tool only because its pre-activation sits on the threshold",
        "(listed above if any). `git` in the versions is the checkout the run used ('-dirty': with",
        "uncommitted changes of engineers working in the same tree).",
    ]
    stem.with_suffix(".md").write_text("\n".join([*head, *lines, *reading]) + "\n")
    print(f"wrote {stem}.md and .json", flush=True)


def make_clt_main(argv: list[str]) -> int:
    """`peer_resid_mid.py make-clt FOLDER N_FEATURES L0 SEED` (a child of `main`)."""
    folder, n_features, l0, seed = Path(argv[0]), int(argv[1]), float(argv[2]), int(argv[3])
    made = make_circuit_tracer_clt(folder, n_features, l0, seed)
    print(json.dumps(made))
    return 0


def make_circuit_tracer_clt(folder: Path, n_features: int, l0: float, seed: int) -> dict:
    """The random resid_mid CLT in circuit-tracer's layout (see the module doc)."""
    import torch
    import yaml
    from safetensors.torch import save_file

    from circuitscope.models import sites
    from circuitscope.models.loading import load_model
    from circuitscope.testing.sparse_random import SAMPLE_TEXT

    loaded = load_model(MODEL)
    n_layers, d_model = loaded.adapter.n_layers, loaded.adapter.d_model
    ids = torch.tensor([loaded.tokenizer(SAMPLE_TEXT).input_ids])
    capture = [sites.resid_mid(layer) for layer in range(n_layers)]
    with torch.no_grad():
        cache = loaded.adapter.run(ids, capture=capture).cache
    generator = torch.Generator().manual_seed(seed)

    def gaussian(*shape: int, scale: float) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) * scale

    folder.mkdir(parents=True, exist_ok=True)
    for layer in range(n_layers):
        w_enc = gaussian(n_features, d_model, scale=d_model**-0.5)
        b_enc = gaussian(n_features, scale=0.01)
        # Position 0 is the attention sink (its norm is large) and carries no features.
        resid_mid = cache[sites.resid_mid(layer)][0, 1:].float()  # [seq - 1, d_model]
        pre = resid_mid @ w_enc.T + b_enc  # [seq - 1, n_features]
        threshold = torch.quantile(pre.flatten(), 1.0 - l0 / n_features).clamp(min=1e-3)
        encoder = {
            f"W_enc_{layer}": w_enc,
            f"b_enc_{layer}": b_enc,
            f"b_dec_{layer}": gaussian(d_model, scale=0.01),
            f"threshold_{layer}": torch.full((n_features,), float(threshold)),
        }
        save_file(encoder, str(folder / f"W_enc_{layer}.safetensors"))
        w_dec = gaussian(n_features, n_layers - layer, d_model, scale=0.1 * d_model**-0.5)
        save_file({f"W_dec_{layer}": w_dec}, str(folder / f"W_dec_{layer}.safetensors"))
    config = {
        "model_name": str(loaded.model.config._name_or_path),
        "model_kind": "cross_layer_transcoder",
        "feature_input_hook": "hook_resid_mid",
        "feature_output_hook": "hook_mlp_out",
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    made = {"n_features": n_features, "l0": l0, "seed": seed, "n_layers": n_layers}
    (folder / "bench-complete.json").write_text(json.dumps(made))
    return made


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if sys.argv[1:2] == ["make-clt"]:
        sys.exit(make_clt_main(sys.argv[2:]))
    sys.exit(main())
