"""Tokens per second of activation collection and of CLT training, on this machine.

    .venv/bin/python benchmarks/training.py            # SmolLM2-135M, the default settings
    .venv/bin/python benchmarks/training.py --tiny     # the tiny test model (seconds)
    .venv/bin/python benchmarks/training.py --device cuda --n-features 8192   # a lent GPU

Collection: `record_batch` (all 30 layers' MLP inputs and outputs) on packed contexts of
the default corpus. Training: the trainer's step (forward, loss, backward, clip, Adam) on
random normalised activations of the model's shape, with the default settings
(128 features per layer, batch 512; `--n-features`, `--batch-size` change them) in
fp32 and with bf16 autocast, on `--device`. Model FLOP utilisation: the step's
matmul FLOPs (`step_flops`) per second over the device's peak (`--peak-tflops`,
or the bf16/fp32 dense peak of a known GPU). Writes
benchmarks/results/training-<date>-<machine>.md and .json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import socket
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import torch

from circuitscope.data.collect import record_batch
from circuitscope.training.forward import clamp_thresholds, parameter_list
from circuitscope.training.init import init_transcoder, training_config
from circuitscope.training.settings import TrainSettings
from circuitscope.training.trainer import LossModule

RESULTS = Path(__file__).parent / "results"


def collection_speed(adapter, contexts: torch.Tensor, batch: int, repeats: int) -> float:
    record_batch(adapter, contexts[:2])  # warm-up
    _synchronize(str(adapter.device))
    start = time.perf_counter()
    tokens = 0
    for i in range(repeats):
        ids = contexts[i * batch : (i + 1) * batch]
        x, _ = record_batch(adapter, ids)
        tokens += len(x)
    _synchronize(str(adapter.device))
    return tokens / (time.perf_counter() - start)


PEAK_TFLOPS = {  # dense matmul peaks (no sparsity), from the vendors' data sheets
    "H100": {"bf16": 989.0, "fp32": 67.0},
    "H200": {"bf16": 989.0, "fp32": 67.0},
    "A100": {"bf16": 312.0, "fp32": 19.5},
}


def step_flops(settings: TrainSettings, n_layers: int, d_model: int) -> float:
    """Matmul FLOPs of one training step per token, forward and backward (backward twice
    the forward: input and weight gradients). Dense layers: the encoder and the decoder
    over every feature (a CLT's decoder writes to every later layer). TopK layers on the
    trainer's sparse path: the encoder's forward is dense, its backward and the decoder
    touch only the k kept features."""
    features = settings.n_features
    targets = n_layers * (n_layers + 1) // 2 if settings.kind == "clt" else n_layers
    if settings.activation == "topk":
        k = settings.k
        encoder = 2 * d_model * features * n_layers + 2 * 2 * k * d_model * n_layers
        return encoder + 3 * 2 * k * d_model * targets
    encoder = 2 * d_model * features * n_layers
    decoder = 2 * features * d_model * targets
    return 3 * (encoder + decoder)


def peak_tflops(device: str, precision: str, given: float | None) -> float | None:
    if given is not None:
        return given
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(torch.device(device))
    for key, peaks in PEAK_TFLOPS.items():
        if key in name:
            return peaks[precision]
    return None


def training_speed(
    n_layers: int,
    d_model: int,
    settings: TrainSettings,
    autocast: bool,
    steps: int,
    device: str = "cpu",
) -> float:
    config = training_config(settings, n_layers, d_model, "bench", "llama")
    transcoder = init_transcoder(config, settings, torch.zeros(n_layers, d_model)).to(device)
    params = parameter_list(transcoder)
    optimizer = torch.optim.Adam([p for _, p in params], lr=settings.lr)
    module = LossModule(transcoder, settings)
    generator = torch.Generator().manual_seed(0)
    shape = (settings.batch_size, n_layers, d_model)
    x = torch.randn(shape, generator=generator).to(device)
    y = torch.randn(shape, generator=generator).to(device)
    kind = torch.device(device).type
    times = []
    for _ in range(steps + 1):
        _synchronize(device)
        start = time.perf_counter()
        with torch.autocast(kind, dtype=torch.bfloat16, enabled=autocast):
            loss, _, _ = module(x, y, settings.sparsity_coefficient)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in params], settings.grad_clip)
        optimizer.step()
        clamp_thresholds(transcoder)
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return settings.batch_size / (sum(times[1:]) / steps)


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(torch.device(device))


def main() -> None:
    parser = argparse.ArgumentParser(description="Tokens per second of collection and training.")
    parser.add_argument("--tiny", action="store_true", help="the tiny test model instead")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps")
    parser.add_argument("--batches", type=int, default=3, help="timed collection batches")
    parser.add_argument("--collect-batch", type=int, default=16, help="contexts per batch")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N], for training")
    parser.add_argument("--n-features", type=int, help="features per layer (default: train's)")
    parser.add_argument("--batch-size", type=int, help="tokens per step (default: train's)")
    parser.add_argument("--peak-tflops", type=float, help="the device's peak, for utilisation")
    parser.add_argument("--kind", choices=["clt", "plt"], help="default: train's")
    parser.add_argument("--activation", help="jumprelu, topk, batchtopk or relu (default: train's)")
    parser.add_argument("--k", type=int, help="active features per token for topk/batchtopk")
    parser.add_argument(
        "--model-dtype", default="float32", choices=["float32", "bfloat16"], help="collection"
    )
    args = parser.parse_args()
    if args.tiny:
        from circuitscope.models.adapter import ModelAdapter
        from circuitscope.testing.tiny_models import tiny_model, tiny_tokenizer

        adapter, tokenizer, name = ModelAdapter(tiny_model("llama")), tiny_tokenizer(), "tiny-llama"
        corpus = ["The river ran past the old mill. " * 40] * 20
        context = 32
    else:
        from circuitscope.data.corpus import iter_documents
        from circuitscope.models.loading import load_model

        loaded = load_model("smollm2-135m", device=args.device, dtype=args.model_dtype)
        adapter, tokenizer, name = loaded.adapter, loaded.tokenizer, "smollm2-135m"
        corpus = iter_documents(["default"])
        context = 128
    from circuitscope.data.packing import pack_contexts

    batch = args.collect_batch
    n = batch * args.batches
    contexts = torch.stack(list(itertools.islice(pack_contexts(corpus, tokenizer, context), n)))
    settings = TrainSettings()
    sizes = {
        "n_features": args.n_features,
        "batch_size": args.batch_size,
        "kind": args.kind,
        "activation": args.activation,
        "k": args.k,
    }
    settings = replace(settings, **{k: v for k, v in sizes.items() if v is not None})
    rows: list[tuple[str, str, float, float | None]] = [
        (
            "collect",
            f"{name}, {batch} x {context} tokens, {args.model_dtype}, {args.device}",
            collection_speed(adapter, contexts, batch, args.batches),
            None,
        ),
    ]
    flops = step_flops(settings, adapter.n_layers, adapter.d_model)
    for autocast in (False, True):
        label = "bf16 autocast" if autocast else "fp32"
        speed = training_speed(
            adapter.n_layers, adapter.d_model, settings, autocast, args.steps, args.device
        )
        peak = peak_tflops(args.device, "bf16" if autocast else "fp32", args.peak_tflops)
        utilisation = None if peak is None else speed * flops / (peak * 1e12)
        detail = (
            f"{settings.kind.upper()} {adapter.n_layers} x {settings.n_features} "
            f"{settings.activation}, batch {settings.batch_size}, {label}, {args.device}"
        )
        rows.append(("train", detail, speed, utilisation))
    machine = f"{socket.gethostname()}-{torch.get_num_threads()}threads"
    print(f"{'stage':<8} {'settings':<60} {'tokens/s':>9} {'MFU':>7}")
    for stage, detail, speed, utilisation in rows:
        mfu = "-" if utilisation is None else f"{utilisation:.1%}"
        print(f"{stage:<8} {detail:<60} {speed:>9.0f} {mfu:>7}")
    RESULTS.mkdir(exist_ok=True)
    suffix = "-tiny" if args.tiny else ""
    where = (
        args.device.replace(":", "") if args.device != "cpu" else f"cpu{torch.get_num_threads()}"
    )
    stem = RESULTS / f"training-{date.today()}-{where}{suffix}"
    info = {
        "date": str(date.today()),
        "machine": machine,
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "step_flops_per_token": flops,
        "rows": [
            {"stage": s, "settings": d, "tokens_per_second": round(v, 1), "mfu": u}
            for s, d, v, u in rows
        ],
    }
    stem.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    table = "\n".join(
        f"| {s} | {d} | {v:.0f} | {'-' if u is None else f'{u:.1%}'} |" for s, d, v, u in rows
    )
    stem.with_suffix(".md").write_text(
        f"# Training throughput, {info['date']}\n\n{machine}, torch {info['torch']}, "
        f"{info['threads']} threads; MFU: matmul FLOPs per token {flops:.3g} (see step_flops)"
        f"\n\n| stage | settings | tokens/s | MFU |\n| --- | --- | --- | --- |\n{table}\n"
    )
    print(f"wrote {stem}.md and .json")


if __name__ == "__main__":
    main()
