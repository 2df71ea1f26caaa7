"""Tokens per second of activation collection and of CLT training, on this machine.

    .venv/bin/python benchmarks/training.py            # SmolLM2-135M, the default settings
    .venv/bin/python benchmarks/training.py --tiny     # the tiny test model (seconds)

Collection: `record_batch` (all 30 layers' MLP inputs and outputs) on packed contexts of
the default corpus. Training: the trainer's step (forward, loss, backward, clip, Adam) on
random normalised activations of the model's shape, with the default settings
(128 features per layer, batch 512) in fp32 and with bf16 autocast. Writes
benchmarks/results/training-<date>-<machine>.md and .json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import socket
import time
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
    start = time.perf_counter()
    tokens = 0
    for i in range(repeats):
        ids = contexts[i * batch : (i + 1) * batch]
        x, _ = record_batch(adapter, ids)
        tokens += len(x)
    return tokens / (time.perf_counter() - start)


def training_speed(
    n_layers: int, d_model: int, settings: TrainSettings, autocast: bool, steps: int
) -> float:
    config = training_config(settings, n_layers, d_model, "bench", "llama")
    transcoder = init_transcoder(config, settings, torch.zeros(n_layers, d_model))
    params = parameter_list(transcoder)
    optimizer = torch.optim.Adam([p for _, p in params], lr=settings.lr)
    module = LossModule(transcoder, settings)
    generator = torch.Generator().manual_seed(0)
    shape = (settings.batch_size, n_layers, d_model)
    x, y = torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss, _, _ = module(x, y, settings.sparsity_coefficient)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in params], settings.grad_clip)
        optimizer.step()
        clamp_thresholds(transcoder)
        times.append(time.perf_counter() - start)
    return settings.batch_size / (sum(times[1:]) / steps)


def main() -> None:
    parser = argparse.ArgumentParser(description="Tokens per second of collection and training.")
    parser.add_argument("--tiny", action="store_true", help="the tiny test model instead")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps")
    parser.add_argument("--batches", type=int, default=3, help="timed collection batches")
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

        loaded = load_model("smollm2-135m")
        adapter, tokenizer, name = loaded.adapter, loaded.tokenizer, "smollm2-135m"
        corpus = iter_documents(["default"])
        context = 128
    from circuitscope.data.packing import pack_contexts

    batch = 16
    n = batch * args.batches
    contexts = torch.stack(list(itertools.islice(pack_contexts(corpus, tokenizer, context), n)))
    settings = TrainSettings()
    rows = [
        (
            "collect",
            f"{name}, {batch} x {context} tokens, fp32",
            collection_speed(adapter, contexts, batch, args.batches),
        ),
    ]
    for autocast in (False, True):
        label = "bf16 autocast" if autocast else "fp32"
        speed = training_speed(adapter.n_layers, adapter.d_model, settings, autocast, args.steps)
        detail = (
            f"CLT {adapter.n_layers} x {settings.n_features}, batch {settings.batch_size}, {label}"
        )
        rows.append(("train", detail, speed))
    machine = f"{socket.gethostname()}-{torch.get_num_threads()}threads"
    print(f"{'stage':<8} {'settings':<52} {'tokens/s':>9}")
    for stage, detail, speed in rows:
        print(f"{stage:<8} {detail:<52} {speed:>9.0f}")
    RESULTS.mkdir(exist_ok=True)
    suffix = "-tiny" if args.tiny else ""
    stem = RESULTS / f"training-{date.today()}-cpu{torch.get_num_threads()}{suffix}"
    info = {
        "date": str(date.today()),
        "machine": machine,
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "rows": [{"stage": s, "settings": d, "tokens_per_second": round(v, 1)} for s, d, v in rows],
    }
    stem.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    table = "\n".join(f"| {s} | {d} | {v:.0f} |" for s, d, v in rows)
    stem.with_suffix(".md").write_text(
        f"# Training throughput, {info['date']}\n\n{machine}, torch {info['torch']}, "
        f"{info['threads']} threads\n\n| stage | settings | tokens/s |\n| --- | --- | --- |\n"
        f"{table}\n"
    )
    print(f"wrote {stem}.md and .json")


if __name__ == "__main__":
    main()
