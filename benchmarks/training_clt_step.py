"""CPU seconds per training step (forward, loss, backward, Adam) of a transcoder on random data.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/training_clt_step.py clt:128:jumprelu:512
    OMP_NUM_THREADS=1 PYTHONPATH=/other/checkout/src .venv/bin/python \
        benchmarks/training_clt_step.py clt:512:topk:512

Each argument is KIND:FEATURES:ACTIVATION:BATCH (30 layers x 576, SmolLM2's shape, bf16
autocast). One thread and process CPU time, so another job on the machine does not
inflate the figure (with 2 threads, OpenMP's spinning under contention does). Median of
6 steps after one warm-up step.
"""

from __future__ import annotations

import sys
import time

import torch

from circuitscope.allocator import reuse_freed_memory
from circuitscope.training.forward import parameter_list
from circuitscope.training.init import init_transcoder, training_config
from circuitscope.training.settings import TrainSettings
from circuitscope.training.trainer import LossModule, make_optimizer

N_LAYERS, D_MODEL, STEPS = 30, 576, 6


def step_cpu_seconds(kind: str, n_features: int, activation: str, batch: int) -> float:
    settings = TrainSettings(
        kind=kind,  # type: ignore[arg-type]
        n_features=n_features,
        activation=activation,  # type: ignore[arg-type]
        batch_size=batch,
        k=int(__import__("os").environ.get("K", "16")),
    )
    config = training_config(settings, N_LAYERS, D_MODEL, "random", "llama", "mlp_in")
    transcoder = init_transcoder(config, settings, torch.zeros(N_LAYERS, D_MODEL))
    params = parameter_list(transcoder)
    optimizer = make_optimizer([p for _, p in params], 1e-3)
    module = LossModule(transcoder, settings)
    x, y = torch.randn(batch, N_LAYERS, D_MODEL), torch.randn(batch, N_LAYERS, D_MODEL)
    times = []
    for _ in range(STEPS + 1):
        start = time.process_time()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss, _, _ = module(x, y, 1.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.process_time() - start)
    return sorted(times[1:])[STEPS // 2]


def main() -> None:
    torch.set_num_threads(1)
    reuse_freed_memory()
    for spec in sys.argv[1:]:
        kind, n_features, activation, batch = spec.split(":")
        seconds = step_cpu_seconds(kind, int(n_features), activation, int(batch))
        print(f"| {spec} | {seconds * 1000:.0f} | {int(batch) / seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
