"""TopK transcoder training, circuitscope against EleutherAI sparsify, same data and settings.

    .venv/bin/python benchmarks/training_vs_sparsify.py                 # everything
    .venv/bin/python benchmarks/training_vs_sparsify.py --train-tokens 8192 --repeats 1

Steps, each in a fresh subprocess:

1. `prepare`: SmolLM2-135M's MLP inputs and outputs (all 30 layers, BOS left out)
   on packed 128-token contexts of the offline default corpus: `--train-tokens`
   from its training split (shuffled with seed 0) and `--heldout-tokens` from its
   held-out documents, written to out/bench/sparsify-cmp/data/*.safetensors (float32)
   with the token ids. Done once and reused.
2. `ours`: circuitscope's `train()` (PLT, TopK) on the training file, batch j = rows
   [j·B, (j+1)·B), one epoch.
3. `peer`: benchmarks/peer_sparsify.py under the sparsify virtualenv's python:
   sparsify's unchanged `Trainer.fit` on the same rows in the same order.
4. `eval`: both results as circuitscope transcoders (sparsify's folder read by
   circuitscope's sparsify importer), evaluated by the same code on the held-out
   activations: normalized MSE (FVU) Σ‖ŷ−y‖² / Σ‖y−ȳ‖² per layer, L0, dead features.

Both trainers train from the precomputed activations (no model forward passes in
the timed part), on the same number of threads (`--threads`, default 1), one after
the other, repeats interleaved. tokens/s is measured between the start of step
`--warmup` and the start of the last step (no set-up, no final save). Writes
benchmarks/results/training-vs-sparsify-<date>-<machine>.md and .json.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "out" / "bench" / "sparsify-cmp"
PEER_PYTHON = "/work/sparsify-venv/bin/python"


# ---------------------------------------------------------------- prepare


def prepare(args: argparse.Namespace) -> None:
    import itertools

    from circuitscope.data.collect import record_batch
    from circuitscope.data.corpus import iter_documents
    from circuitscope.data.packing import pack_contexts
    from circuitscope.models.loading import load_model

    data = WORK / "data"
    data.mkdir(parents=True, exist_ok=True)
    loaded = load_model("smollm2-135m")
    context = 128
    for split, n_tokens, name in (
        ("train", args.train_tokens, "train"),
        ("heldout", args.heldout_tokens, "heldout"),
    ):
        n_contexts = -(-n_tokens // (context - 1))
        documents = iter_documents(["default"], split, 0)  # type: ignore[arg-type]
        ids = torch.stack(
            list(itertools.islice(pack_contexts(documents, loaded.tokenizer, context), n_contexts))
        )
        xs, ys = [], []
        for chunk in ids.split(16):
            x, y = record_batch(loaded.adapter, chunk)
            xs.append(x.float())
            ys.append(y.float())
        x, y = torch.cat(xs)[:n_tokens], torch.cat(ys)[:n_tokens]
        if split == "train":
            order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
            x, y = x[order].contiguous(), y[order].contiguous()
        save_file({"mlp_in": x, "mlp_out": y, "input_ids": ids}, str(data / f"{name}.safetensors"))
        print(f"{name}: {len(x)} tokens from {len(ids)} contexts")


# ---------------------------------------------------------------- ours


class ArraySource:
    """Batches j = rows [j·B, (j+1)·B) of in-memory activations; records when each is asked."""

    def __init__(self, path: Path, batch_size: int) -> None:
        from circuitscope.data.stats import StatsAccumulator

        tensors = load_file(str(path))
        self.x, self.y = tensors["mlp_in"], tensors["mlp_out"]
        self.batch_size = batch_size
        self.n_layers, self.d_model = self.x.shape[1], self.x.shape[2]
        self.model_id, self.architecture = "smollm2-135m", "llama"
        accumulator = StatsAccumulator(self.n_layers, self.d_model)
        accumulator.add(self.x, self.y)
        self.stats = accumulator.result()
        self.calls: list[float] = []

    def batch(self, step: int, rows: tuple[int, int] | None) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls.append(time.perf_counter())
        start = step * self.batch_size
        end = start + self.batch_size
        if rows is not None:
            start, end = start + rows[0], start + rows[1]
        return self.x[start:end].float(), self.y[start:end].float()

    def describe(self) -> dict[str, Any]:
        return {"source": "benchmark arrays"}


def ours(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    from circuitscope.training import trainer as trainer_module
    from circuitscope.training.forward import training_forward
    from circuitscope.training.settings import TrainSettings

    if args.dense:  # the dense TopK path used before the sparse one (for before/after)
        trainer_module.training_forward = functools.partial(training_forward, sparse=False)  # type: ignore[assignment]
    source = ArraySource(WORK / "data" / "train.safetensors", args.batch_tokens)
    steps = len(source.x) // args.batch_tokens
    warm = args.lr_warmup_steps / steps
    settings = TrainSettings(
        kind="plt",
        activation="topk",
        k=args.k,
        n_features=args.n_features,
        steps=steps,
        batch_size=args.batch_tokens,
        lr=args.lr,
        lr_warmup=warm,
        lr_decay=1 - warm,
        grad_clip=0.0,
        autocast=args.autocast,
        log_every=10**9,
        checkpoint_every=0,
        keep_checkpoints=1,
        seed=args.seed,
    )
    out = Path(args.out)
    import shutil

    if out.exists():
        shutil.rmtree(out)
    start = time.perf_counter()
    result = trainer_module.train(source, settings, out, progress=False)
    total = time.perf_counter() - start
    calls = source.calls
    timed = calls[-1] - calls[args.warmup]
    info = {
        "trainer": "circuitscope",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "steps": steps,
        "tokens": steps * args.batch_tokens,
        "timed_steps": len(calls) - 1 - args.warmup,
        "timed_seconds": timed,
        "tokens_per_second": (len(calls) - 1 - args.warmup) * args.batch_tokens / timed,
        "train_seconds": total,
        "trainer_reported_tokens_per_second": result.tokens_per_second,
        "autocast": args.autocast,
        "dense": args.dense,
    }
    (out / "ours.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps({"tokens_per_second": info["tokens_per_second"], "steps": steps}))


# ---------------------------------------------------------------- eval


@torch.no_grad()
def evaluate(args: argparse.Namespace) -> None:
    """Print JSON: held-out nMSE / L0 / dead per layer of the transcoder at args.out."""
    torch.set_num_threads(args.threads)
    from circuitscope.transcoders.transcoder import Transcoder

    transcoder = Transcoder.load(Path(args.out), lazy=False)
    held = load_file(str(WORK / "data" / "heldout.safetensors"))
    x, y = held["mlp_in"], held["mlp_out"]
    n_layers = transcoder.config.n_layers
    err = torch.zeros(n_layers, dtype=torch.float64)
    sq = torch.zeros(n_layers, dtype=torch.float64)
    total = torch.zeros(n_layers, y.shape[-1], dtype=torch.float64)
    active = torch.zeros(n_layers, dtype=torch.float64)
    fired = [torch.zeros(n, dtype=torch.bool) for n in transcoder.config.n_features]
    for xb, yb in zip(x.split(512), y.split(512), strict=True):
        acts, recon = transcoder.forward({layer: xb[:, layer] for layer in range(n_layers)})
        for layer in range(n_layers):
            target = yb[:, layer].double()
            err[layer] += (recon[layer].double() - target).pow(2).sum()
            sq[layer] += target.pow(2).sum()
            total[layer] += target.sum(0)
            on = acts[layer] != 0
            active[layer] += on.sum()
            fired[layer] |= on.any(0)
    n = len(x)
    variance = sq - n * (total / n).pow(2).sum(-1)  # the formula of training/evaluate.py
    nmse = (err / variance).tolist()
    l0 = (active / n).tolist()
    print(
        json.dumps(
            {
                "heldout_tokens": n,
                "nmse": sum(nmse) / n_layers,
                "l0": sum(l0) / n_layers,
                "dead": sum(float((~f).sum()) for f in fired) / sum(len(f) for f in fired),
                "nmse_per_layer": [round(v, 5) for v in nmse],
                "l0_per_layer": [round(v, 3) for v in l0],
            }
        )
    )


# ---------------------------------------------------------------- driver


def _run(command: list[str]) -> dict[str, Any]:
    print("$ " + " ".join(command), flush=True)
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"failed: {' '.join(command)}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _common(args: argparse.Namespace) -> list[str]:
    return [
        f"--{name.replace('_', '-')}={getattr(args, name)}"
        for name in ("n_features", "k", "batch_tokens", "lr", "lr_warmup_steps", "warmup")
    ] + [f"--threads={args.threads}", f"--seed={args.seed}"]


def drive(args: argparse.Namespace) -> None:
    me = [sys.executable, str(Path(__file__).resolve())]
    data = WORK / "data"
    if not (data / "train.safetensors").is_file() or args.reprepare:
        _run(
            [
                *me,
                "prepare",
                f"--train-tokens={args.train_tokens}",
                f"--heldout-tokens={args.heldout_tokens}",
            ]
        )
    variants = [("circuitscope fp32", ["--autocast=off"]), ("sparsify fp32", None)]
    if not args.no_bf16:
        variants.append(("circuitscope bf16 autocast", ["--autocast=auto"]))
    if args.before:
        variants.append(("circuitscope fp32, dense TopK (before)", ["--autocast=off", "--dense"]))
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in variants}
    quality: dict[str, dict[str, Any]] = {}
    for repeat in range(args.repeats):
        for name, flags in variants:
            if repeat > 0 and args.before and "before" in name:
                continue
            folder = WORK / "runs" / name.replace(",", "").replace(" ", "-")
            if flags is None:
                speed = _run(
                    [args.peer_python, str(ROOT / "benchmarks" / "peer_sparsify.py")]
                    + [str(data / "train.safetensors"), str(folder)]
                    + _common(args)
                )
                transcoder = folder / "sparsify"
            else:
                speed = _run([*me, "ours", str(folder), *_common(args), *flags])
                transcoder = folder / "transcoder"
            runs[name].append(speed)
            print(f"  {name}: {speed['tokens_per_second']:.1f} tokens/s", flush=True)
            if repeat == args.repeats - 1 or name not in quality:
                quality[name] = _run([*me, "eval", str(transcoder), f"--threads={args.threads}"])
    report(args, runs, quality)


def report(
    args: argparse.Namespace, runs: dict[str, list[dict[str, Any]]], quality: dict[str, Any]
) -> None:
    peer = "sparsify fp32"
    speed = {name: max(r["tokens_per_second"] for r in rs) for name, rs in runs.items()}
    rows = []
    for name in runs:
        q = quality[name]
        rows.append(
            {
                "trainer": name,
                "tokens_per_second": round(speed[name], 1),
                "all_runs": [round(r["tokens_per_second"], 1) for r in runs[name]],
                "ratio_vs_sparsify": round(speed[name] / speed[peer], 3),
                "heldout_nmse": round(q["nmse"], 4),
                "heldout_l0": round(q["l0"], 2),
                "dead_fraction": round(q["dead"], 4),
                "nmse_per_layer": q["nmse_per_layer"],
            }
        )
    header = f"{'trainer':<40} {'tokens/s':>9} {'ratio':>6} {'nMSE':>7} {'L0':>6} {'dead':>6}"
    print(header)
    for r in rows:
        print(
            f"{r['trainer']:<40} {r['tokens_per_second']:>9.1f} {r['ratio_vs_sparsify']:>6.2f} "
            f"{r['heldout_nmse']:>7.4f} {r['heldout_l0']:>6.2f} {r['dead_fraction']:>6.3f}"
        )
    steps = args.train_tokens // args.batch_tokens
    settings = {
        "model": "SmolLM2-135M (30 layers, d_model 576), all 30 layers",
        "kind": "per-layer transcoder (MLP input -> MLP output), TopK with ReLU",
        "n_features_per_layer": args.n_features,
        "k": args.k,
        "batch_tokens": args.batch_tokens,
        "train_tokens": steps * args.batch_tokens,
        "steps": steps,
        "epochs": 1,
        "heldout_tokens": quality[peer]["heldout_tokens"],
        "optimizer": f"Adam lr {args.lr}, linear warm-up {args.lr_warmup_steps} steps then "
        "linear decay to 0, no gradient clipping, no AuxK",
        "threads": args.threads,
        "timed": f"steps {args.warmup}..{steps - 1} (first {args.warmup} untimed), "
        "training from precomputed activations (model forward passes not included)",
    }
    machine = args.machine
    info = {
        "date": str(date.today()),
        "machine": machine,
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "settings": settings,
        "rows": rows,
        "note": args.note,
    }
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"training-vs-sparsify-{date.today()}-{machine}"
    stem.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    lines = [
        f"# TopK transcoder training: circuitscope vs sparsify, {info['date']}",
        "",
        f"{machine}, {info['cpu']}, torch {info['torch']}, {args.threads} thread(s) per trainer, "
        "trainers run one after the other (repeats interleaved; best run shown).",
        "",
        *(f"- {k}: {v}" for k, v in settings.items()),
        "",
        "| trainer | tokens/s (best) | all runs | ratio vs sparsify | held-out nMSE | L0 | dead |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *(
            f"| {r['trainer']} | {r['tokens_per_second']:.1f} | "
            f"{', '.join(f'{v:.1f}' for v in r['all_runs'])} | {r['ratio_vs_sparsify']:.2f} | "
            f"{r['heldout_nmse']:.4f} | {r['heldout_l0']:.2f} | {r['dead_fraction']:.3f} |"
            for r in rows
        ),
        "",
    ]
    if args.note:
        lines += [args.note, ""]
    stem.with_suffix(".md").write_text("\n".join(lines))
    print(f"wrote {stem}.md and .json")


def main() -> None:
    parser = argparse.ArgumentParser(description="circuitscope vs sparsify, TopK transcoders")
    parser.add_argument(
        "stage", nargs="?", default="all", choices=["all", "prepare", "ours", "eval"]
    )
    parser.add_argument("out", nargs="?", default="", help="(ours, eval) the run folder")
    parser.add_argument("--train-tokens", type=int, default=16384)
    parser.add_argument("--heldout-tokens", type=int, default=2048)
    parser.add_argument("--n-features", type=int, default=4096)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--batch-tokens", type=int, default=512)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-warmup-steps", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2, help="untimed first steps")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--autocast", default="off", choices=["off", "auto", "bf16"])
    parser.add_argument("--dense", action="store_true", help="(ours) the dense TopK path")
    parser.add_argument("--before", action="store_true", help="also time the dense path once")
    parser.add_argument("--no-bf16", action="store_true", help="skip the bf16 autocast run")
    parser.add_argument("--reprepare", action="store_true", help="record the activations again")
    parser.add_argument("--peer-python", default=PEER_PYTHON)
    parser.add_argument("--machine", default=f"cpu-{torch.get_num_threads()}core")
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    {"all": drive, "prepare": prepare, "ours": ours, "eval": evaluate}[args.stage](args)


if __name__ == "__main__":
    main()
