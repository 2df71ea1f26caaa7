"""TopK transcoder training, circuitscope against EleutherAI sparsify, same data and settings.

    .venv/bin/python benchmarks/training_vs_sparsify.py                 # everything (~25 min)
    .venv/bin/python benchmarks/training_vs_sparsify.py --steps 32 --eval-every 8

Steps, each in a fresh subprocess:

1. `prepare` (once, reused): SmolLM2-135M's MLP inputs and outputs (all 30 layers, BOS
   left out) on packed 128-token contexts of the offline default corpus's held-out
   documents (`--heldout-tokens`), to out/bench/sparsify-cmp/data/heldout.safetensors;
   and, when `--data` names no store, `--train-tokens` of its training split (shuffled
   with seed 0) to train.safetensors.
2. Training data (`--data`): the activation store out/smollm2-store (65,536 tokens of
   the training split, float16, `circuitscope collect`) when it is there, read in its
   own order (its shards are already shuffled in groups), else the prepared file. Batch
   j = rows [j·B, (j+1)·B), wrapping round after the last row; `--steps` steps.
3. `ours`: circuitscope's `train()` (PLT, TopK) on those batches. `peer`:
   benchmarks/peer_sparsify.py under the sparsify virtualenv's python: sparsify's
   unchanged `Trainer.fit` on the same rows in the same order.
4. Quality: every `--eval-every` steps each trainer's current transcoder is evaluated on
   the held-out rows (training_rows.HeldoutMetrics: normalized MSE (FVU)
   Σ‖ŷ−y‖² / Σ‖y−ȳ‖² per layer, L0, dead features), with the clock paused; at the end
   (`eval`) both saved results are read as circuitscope transcoders (sparsify's folder
   by circuitscope's sparsify importer) and evaluated by the same figures.

Both trainers train from precomputed activations (no model forward passes in the timed
part), on the same number of threads (`--threads`, default 1), one after the other.
Reported: tokens/s (wall and CPU time) from the start of step `--warmup` to the end of
the last step, evaluations excluded; and time to quality: the (wall and CPU) time from
the start of step 0 at which each trainer's held-out nMSE first reaches sparsify's final
held-out nMSE, interpolated linearly between checkpoints. Writes
benchmarks/results/training-vs-sparsify-<date>-<machine>.md and .json.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from training_rows import (  # pyright: ignore[reportMissingImports]
    HeldoutMetrics,
    RowReader,
    StepLog,
    data_files,
    timing_record,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "out" / "bench" / "sparsify-cmp"
STORE = ROOT / "out" / "smollm2-store"
PEER_PYTHON = "/work/sparsify-venv/bin/python"
PEER = "sparsify fp32"


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
        if n_tokens <= 0:
            continue
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


def _data_spec(args: argparse.Namespace) -> str:
    if args.data:
        return args.data
    return str(
        STORE if (STORE / "manifest.json").is_file() else WORK / "data" / "train.safetensors"
    )


def _stats(spec: str, reader: RowReader) -> Any:
    from circuitscope.data.stats import ActivationStats, StatsAccumulator

    folder = Path(spec)
    if folder.is_dir():
        return ActivationStats.load(folder / "stats.safetensors")
    accumulator = StatsAccumulator(reader.n_layers, reader.d_model)
    for start in range(0, reader.n_rows, 4096):
        accumulator.add(*reader.rows(start, min(4096, reader.n_rows - start)))
    return accumulator.result()


class ReaderSource:
    """circuitscope's BatchSource over a RowReader: batch j = rows [j·B, (j+1)·B).

    Records when each batch is asked for (the start of a step) and, every `eval_every`
    steps, first evaluates the live transcoder with the clock paused."""

    def __init__(self, spec: str, batch_size: int) -> None:
        self.reader = RowReader(data_files(spec))
        self.batch_size = batch_size
        self.n_layers, self.d_model = self.reader.n_layers, self.reader.d_model
        self.model_id, self.architecture = "smollm2-135m", "llama"
        self.input_site = "mlp_in"
        self.stats = _stats(spec, self.reader)
        self.spec = spec
        self.log = StepLog()

    def batch(self, step: int, rows: tuple[int, int] | None) -> tuple[torch.Tensor, torch.Tensor]:
        self.log.step_starts(step)
        start = step * self.batch_size
        count = self.batch_size
        if rows is not None:
            start, count = start + rows[0], rows[1] - rows[0]
        return self.reader.rows(start, count)

    def describe(self) -> dict[str, Any]:
        return {"source": "benchmark rows", "data": self.spec}


@torch.no_grad()
def _live_eval(holder: dict[str, Any], source: ReaderSource, x: torch.Tensor, y: torch.Tensor):
    """The live (normalised-space) transcoder on the held-out rows; FVU is scale-free."""
    from circuitscope.training.forward import training_forward

    transcoder = holder["transcoder"]
    s_in = torch.tensor(source.stats.input_scales())[None, :, None]
    s_out = torch.tensor(source.stats.output_scales())[None, :, None]
    config = transcoder.config
    metrics = HeldoutMetrics(config.n_layers, list(config.n_features), config.d_model)
    for xb, yb in zip(x.split(512), y.split(512), strict=True):
        out = training_forward(transcoder, xb * s_in)
        target = yb * s_out
        for layer, acts in enumerate(out.activations):
            metrics.add(layer, out.reconstruction[:, layer], target[:, layer], acts != 0)
    result = metrics.result()
    return {k: result[k] for k in ("nmse", "l0", "dead")}


def ours(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    from circuitscope.training import trainer as trainer_module
    from circuitscope.training.forward import training_forward
    from circuitscope.training.settings import TrainSettings

    if args.dense:  # the dense TopK path used before the sparse one (for before/after)
        trainer_module.training_forward = functools.partial(training_forward, sparse=False)  # type: ignore[assignment]
    source = ReaderSource(_data_spec(args), args.batch_tokens)
    steps = args.steps or source.reader.n_rows // args.batch_tokens
    holder: dict[str, Any] = {}
    base = trainer_module.LossModule

    class CapturingLossModule(base):  # keeps a handle on the live transcoder
        def __init__(self, transcoder: Any, settings: Any) -> None:
            super().__init__(transcoder, settings)
            holder["transcoder"] = transcoder

    trainer_module.LossModule = CapturingLossModule  # type: ignore[misc]
    if args.center_encoder:  # experiment: sparsify's start, b_enc = -mean(x) W_enc
        initial = trainer_module.init_transcoder
        s_in = torch.tensor(source.stats.input_scales(), dtype=torch.float64)
        mean_in = (source.stats.mean_in * s_in[:, None]).float()

        def centred(*init_args: Any, **init_kwargs: Any) -> Any:
            transcoder = initial(*init_args, **init_kwargs)
            with torch.no_grad():
                for layer in range(transcoder.config.n_layers):
                    block = transcoder.layer(layer)
                    block.b_enc.copy_(-(mean_in[layer] @ block.W_enc))
            return transcoder

        trainer_module.init_transcoder = centred  # type: ignore[assignment]
    end: list[tuple[float, float]] = []

    def end_of_training(*_args: Any, **_kwargs: Any) -> None:  # replaces the final checkpoint
        end.append(source.log.clock.now())

    trainer_module._save = end_of_training  # type: ignore[assignment]
    if args.eval_every:
        held = load_file(str(WORK / "data" / "heldout.safetensors"))
        source.log.evaluate = functools.partial(
            _live_eval, holder, source, held["mlp_in"].float(), held["mlp_out"].float()
        )
        source.log.eval_every = args.eval_every
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
    times = source.log.step_times
    assert len(times) == steps and end, (len(times), steps)
    info = {
        "trainer": "circuitscope",
        **timing_record(times, end[0], args.warmup, args.batch_tokens),
        "checkpoints": source.log.checkpoints,
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
    """Print JSON: held-out nMSE / L0 / dead per layer of the saved transcoder at args.out."""
    torch.set_num_threads(args.threads)
    from circuitscope.transcoders.transcoder import Transcoder

    transcoder = Transcoder.load(Path(args.out), lazy=False)
    held = load_file(str(WORK / "data" / "heldout.safetensors"))
    x, y = held["mlp_in"].float(), held["mlp_out"].float()
    config = transcoder.config
    metrics = HeldoutMetrics(config.n_layers, list(config.n_features), config.d_model)
    for xb, yb in zip(x.split(512), y.split(512), strict=True):
        acts, recon = transcoder.forward({layer: xb[:, layer] for layer in range(config.n_layers)})
        for layer in range(config.n_layers):
            metrics.add(layer, recon[layer], yb[:, layer], acts[layer] != 0)
    print(json.dumps(metrics.result()))


# ---------------------------------------------------------------- driver


def _run(command: list[str]) -> dict[str, Any]:
    print("$ " + " ".join(command), flush=True)
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"failed: {' '.join(command)}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _common(args: argparse.Namespace) -> list[str]:
    names = ("n_features", "k", "batch_tokens", "lr", "lr_warmup_steps", "warmup", "steps")
    return [f"--{name.replace('_', '-')}={getattr(args, name)}" for name in names] + [
        f"--threads={args.threads}",
        f"--seed={args.seed}",
    ]


def drive(args: argparse.Namespace) -> None:
    me = [sys.executable, str(Path(__file__).resolve())]
    data = WORK / "data"
    spec = _data_spec(args)
    need_train = not Path(spec).is_dir() and not Path(spec).is_file()
    if not (data / "heldout.safetensors").is_file() or need_train or args.reprepare:
        train_tokens = args.train_tokens if (need_train or args.reprepare) else 0
        _run(
            [
                *me,
                "prepare",
                f"--train-tokens={train_tokens}",
                f"--heldout-tokens={args.heldout_tokens}",
            ]
        )
    spec = _data_spec(args)
    args.steps = args.steps or RowReader(data_files(spec)).n_rows // args.batch_tokens
    variants = [("circuitscope fp32", ["--autocast=off"]), (PEER, None)]
    if not args.no_bf16:
        variants.append(("circuitscope bf16 autocast", ["--autocast=auto"]))
    if args.before:
        variants.append(("circuitscope fp32, dense TopK (before)", ["--autocast=off", "--dense"]))
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in variants}
    quality: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in variants}
    loads = [os.getloadavg()]
    heldout = str(data / "heldout.safetensors")
    for repeat in range(args.repeats):
        for name, flags in variants:
            if repeat > 0 and "before" in name:
                continue
            folder = WORK / "runs" / name.replace(",", "").replace(" ", "-")
            evals = [f"--eval-every={args.eval_every}"]
            if flags is None:
                _run(
                    [args.peer_python, str(ROOT / "benchmarks" / "peer_sparsify.py")]
                    + [spec, str(folder), f"--heldout={heldout}", *evals]
                    + _common(args)
                )
                info = json.loads((folder / "peer.json").read_text())
                transcoder = folder / "sparsify"
            else:
                _run([*me, "ours", str(folder), f"--data={spec}", *evals, *_common(args), *flags])
                info = json.loads((folder / "ours.json").read_text())
                transcoder = folder / "transcoder"
            runs[name].append(info)
            print(
                f"  {name}: {info['tokens_per_second']:.1f} tokens/s, "
                f"{info['tokens_per_cpu_second']:.1f} per CPU second",
                flush=True,
            )
            quality[name].append(_run([*me, "eval", str(transcoder), f"--threads={args.threads}"]))
            loads.append(os.getloadavg())
    report(args, spec, runs, quality, loads)


def _curve(info: dict[str, Any], final: dict[str, Any]) -> list[dict[str, Any]]:
    """Checkpoints (step, wall, cpu, nmse, l0, dead) plus the final evaluation at the end."""
    points = [
        {k: c[k] for k in ("step", "wall", "cpu", "nmse", "l0", "dead")}
        for c in info["checkpoints"]
    ]
    wall, cpu = info["end"]
    points.append(
        {
            "step": info["steps"],
            "wall": wall,
            "cpu": cpu,
            "nmse": final["nmse"],
            "l0": final["l0"],
            "dead": final["dead"],
        }
    )
    return points


def time_to(points: list[dict[str, Any]], target: float, key: str) -> float | None:
    """The first `key` time (or step) at which nmse reaches `target`, linearly interpolated."""
    for before, after in zip(points, points[1:], strict=False):
        if before["nmse"] <= target:
            return float(before[key])
        if after["nmse"] <= target:
            fraction = (before["nmse"] - target) / (before["nmse"] - after["nmse"])
            return float(before[key] + fraction * (after[key] - before[key]))
    return None


def _ratio(peer: float | None, ours: float | None) -> float | None:
    """peer / ours, or None when either never reached the target or ours is at 0 s."""
    if peer is None or ours is None or ours <= 0:
        return None
    return round(peer / ours, 2)


def report(
    args: argparse.Namespace,
    spec: str,
    runs: dict[str, list[dict[str, Any]]],
    quality: dict[str, list[dict[str, Any]]],
    loads: list[tuple[float, float, float]],
) -> None:
    best = {
        name: max(range(len(rs)), key=lambda i: rs[i]["tokens_per_second"])
        for name, rs in runs.items()
    }
    info = {name: runs[name][best[name]] for name in runs}
    final = {name: quality[name][best[name]] for name in runs}
    curves = {name: _curve(info[name], final[name]) for name in runs}
    target = final[PEER]["nmse"]
    rows = []
    for name in runs:
        speed, cpu_speed = info[name]["tokens_per_second"], info[name]["tokens_per_cpu_second"]
        reach = {key: time_to(curves[name], target, key) for key in ("wall", "cpu", "step")}
        peer_reach = {key: time_to(curves[PEER], target, key) for key in ("wall", "cpu", "step")}
        rows.append(
            {
                "trainer": name,
                "tokens_per_second": round(speed, 1),
                "all_runs": [round(r["tokens_per_second"], 1) for r in runs[name]],
                "ratio_vs_sparsify": round(speed / info[PEER]["tokens_per_second"], 3),
                "tokens_per_cpu_second": round(cpu_speed, 1),
                "cpu_ratio_vs_sparsify": round(cpu_speed / info[PEER]["tokens_per_cpu_second"], 3),
                "heldout_nmse": round(final[name]["nmse"], 4),
                "heldout_l0": round(final[name]["l0"], 2),
                "dead_fraction": round(final[name]["dead"], 4),
                "time_to_target_wall": None if reach["wall"] is None else round(reach["wall"], 1),
                "time_to_target_cpu": None if reach["cpu"] is None else round(reach["cpu"], 1),
                "steps_to_target": None if reach["step"] is None else round(reach["step"], 1),
                "time_to_target_ratio_wall": _ratio(peer_reach["wall"], reach["wall"]),
                "time_to_target_ratio_cpu": _ratio(peer_reach["cpu"], reach["cpu"]),
                "nmse_per_layer": final[name]["nmse_per_layer"],
                "dead_per_layer": final[name]["dead_per_layer"],
                "curve": [
                    {k: round(v, 4) if isinstance(v, float) else v for k, v in p.items()}
                    for p in curves[name]
                ],
            }
        )
    header = (
        f"{'trainer':<40} {'tok/s':>7} {'ratio':>6} {'tok/cpu-s':>9} {'ratio':>6} "
        f"{'nMSE':>7} {'dead':>6} {'t->target':>9} {'ratio':>6}"
    )
    print(f"target: sparsify's final held-out nMSE {target:.4f}")
    print(header)
    for r in rows:
        reach_t = r["time_to_target_wall"]
        print(
            f"{r['trainer']:<40} {r['tokens_per_second']:>7.1f} {r['ratio_vs_sparsify']:>6.2f} "
            f"{r['tokens_per_cpu_second']:>9.1f} {r['cpu_ratio_vs_sparsify']:>6.2f} "
            f"{r['heldout_nmse']:>7.4f} {r['dead_fraction']:>6.3f} "
            f"{'-' if reach_t is None else f'{reach_t:.0f} s':>9} "
            f"{r['time_to_target_ratio_wall'] or '-':>6}"
        )
    settings = {
        "model": "SmolLM2-135M (30 layers, d_model 576), all 30 layers",
        "kind": "per-layer transcoder (MLP input -> MLP output), TopK with ReLU",
        "n_features_per_layer": args.n_features,
        "k": args.k,
        "batch_tokens": args.batch_tokens,
        "steps": args.steps,
        "train_tokens": args.steps * args.batch_tokens,
        "data": os.path.relpath(spec, ROOT),
        "data_rows": RowReader(data_files(spec)).n_rows,
        "heldout_tokens": final[PEER]["heldout_tokens"],
        "optimizer": f"Adam lr {args.lr}, linear warm-up {args.lr_warmup_steps} steps then "
        "linear decay to 0, no gradient clipping, no AuxK",
        "threads": args.threads,
        "eval_every": args.eval_every,
        "timed": f"tokens/s: start of step {args.warmup} to the end of step {args.steps - 1}; "
        "time to target: from the start of step 0; held-out evaluations excluded from both; "
        "training from precomputed activations (no model forward passes)",
        "repeats": args.repeats,
    }
    machine = args.machine
    today = args.date or str(date.today())
    result = {
        "date": today,
        "machine": machine,
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "settings": settings,
        "target_nmse": target,
        "rows": rows,
        "load_average_1_5_15": [list(map(lambda v: round(v, 2), x)) for x in loads],
        "note": args.note,
    }
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"training-vs-sparsify-{today}-{machine}{args.suffix}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    names = list(runs)
    lines = [
        f"# TopK transcoder training: circuitscope vs sparsify, {today}",
        "",
        f"{machine}, {result['cpu']}, torch {result['torch']}, {args.threads} thread(s) per "
        "trainer, trainers run one after the other"
        + (" (repeats interleaved; the fastest run of each shown)." if args.repeats > 1 else "."),
        "",
        *(f"- {k}: {v}" for k, v in settings.items()),
        "",
        "## Speed and quality",
        "",
        f"Target for time to quality: sparsify's final held-out nMSE, {target:.4f}.",
        "",
        "| trainer | tokens/s (wall) | all runs | ratio | tokens/CPU-s | ratio | held-out nMSE "
        "| L0 | dead | time to target (wall) | ratio | time to target (CPU) | ratio "
        "| steps to target |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:

        def fmt(v: Any, unit: str = "") -> str:
            return "not reached" if v is None else f"{v}{unit}"

        lines.append(
            f"| {r['trainer']} | {r['tokens_per_second']:.1f} | "
            f"{', '.join(f'{v:.1f}' for v in r['all_runs'])} | {r['ratio_vs_sparsify']:.2f} | "
            f"{r['tokens_per_cpu_second']:.1f} | {r['cpu_ratio_vs_sparsify']:.2f} | "
            f"{r['heldout_nmse']:.4f} | {r['heldout_l0']:.2f} | {r['dead_fraction']:.3f} | "
            f"{fmt(r['time_to_target_wall'], ' s')} | {fmt(r['time_to_target_ratio_wall'])} | "
            f"{fmt(r['time_to_target_cpu'], ' s')} | {fmt(r['time_to_target_ratio_cpu'])} | "
            f"{fmt(r['steps_to_target'])} |"
        )
    lines += [
        "",
        "## Held-out nMSE at the checkpoints (wall seconds since step 0, evaluations excluded)",
        "",
        "| step | " + " | ".join(f"{n}: s / nMSE / dead" for n in names) + " |",
        "| --- |" + " --- |" * len(names),
    ]
    by_step = {n: {p["step"]: p for p in curves[n]} for n in names}
    for step in sorted({p["step"] for n in names for p in curves[n]}):
        cells = []
        for n in names:
            p = by_step[n].get(step)
            cells.append(
                "" if p is None else f"{p['wall']:.0f} / {p['nmse']:.4f} / {p['dead']:.3f}"
            )
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Load average (1, 5, 15 min) before and after each run: "
        + "; ".join(f"{a:.1f} {b:.1f} {c:.1f}" for a, b, c in loads)
        + ".",
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
    parser.add_argument("--data", default="", help="store folder or safetensors file of rows")
    parser.add_argument("--train-tokens", type=int, default=16384, help="(prepare, no store)")
    parser.add_argument("--heldout-tokens", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=128, help="0: one epoch of the data")
    parser.add_argument("--eval-every", type=int, default=16)
    parser.add_argument("--n-features", type=int, default=4096)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--batch-tokens", type=int, default=512)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-warmup-steps", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2, help="steps left out of tokens/s")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--autocast", default="off", choices=["off", "auto", "bf16"])
    parser.add_argument("--dense", action="store_true", help="(ours) the dense TopK path")
    parser.add_argument(
        "--center-encoder",
        action="store_true",
        help="(ours, experiment) start with b_enc = -mean(x) W_enc, as sparsify does",
    )
    parser.add_argument("--before", action="store_true", help="also time the dense path once")
    parser.add_argument("--no-bf16", action="store_true", help="skip the bf16 autocast run")
    parser.add_argument("--reprepare", action="store_true", help="record the activations again")
    parser.add_argument("--peer-python", default=PEER_PYTHON)
    parser.add_argument("--machine", default=f"cpu-{os.cpu_count()}core")
    parser.add_argument("--date", default="", help="date in the results' name (default today)")
    parser.add_argument("--suffix", default="", help="appended to the results' name")
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    {"all": drive, "prepare": prepare, "ours": ours, "eval": evaluate}[args.stage](args)


if __name__ == "__main__":
    main()
