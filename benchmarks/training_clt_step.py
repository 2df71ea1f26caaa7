"""CPU seconds per training step (forward, loss, backward, Adam) of a transcoder on random data.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/training_clt_step.py clt:128:jumprelu:512
    OMP_NUM_THREADS=1 PYTHONPATH=/other/checkout/src .venv/bin/python \
        benchmarks/training_clt_step.py clt:512:topk:512

Each argument is KIND:FEATURES:ACTIVATION:BATCH (30 layers x 576, SmolLM2's shape, bf16
autocast). One thread and process CPU time, so another job on the machine does not
inflate the figure (with 2 threads, OpenMP's spinning under contention does). Median of
6 steps after one warm-up step.

JumpReLU's thresholds start near 0, where half the features fire; a trained one fires
few. `JUMPRELU_L0=48` sets each feature's threshold at the quantile of its
pre-activations on the batch that leaves about 48 active per token, and
`JUMPRELU_BANDWIDTH=0.05` the straight-through window (the default 0.1), so the sparse
decode (`decode_entries`) is measured where it applies; `DENSE=1` keeps the dense decode.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import torch

from circuitscope.allocator import reuse_freed_memory
from circuitscope.training import forward
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
        k=int(os.environ.get("K", "16")),
    )
    config = training_config(settings, N_LAYERS, D_MODEL, "random", "llama", "mlp_in")
    transcoder = init_transcoder(config, settings, torch.zeros(N_LAYERS, D_MODEL))
    params = parameter_list(transcoder)
    optimizer = make_optimizer([p for _, p in params], 1e-3)
    module = LossModule(transcoder, settings)
    x, y = torch.randn(batch, N_LAYERS, D_MODEL), torch.randn(batch, N_LAYERS, D_MODEL)
    if activation == "jumprelu" and os.environ.get("JUMPRELU_L0"):
        trained_thresholds(transcoder, x, float(os.environ["JUMPRELU_L0"]))
    if os.environ.get("DENSE"):
        forward.SPARSE_DECODE_DENSITY = -1.0
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


@torch.no_grad()
def trained_thresholds(transcoder: Any, x: torch.Tensor, l0: float) -> None:
    """Thresholds that leave about `l0` features active per token on `x` (the first 256
    rows), and the bandwidth of JUMPRELU_BANDWIDTH (if set)."""
    bandwidth = os.environ.get("JUMPRELU_BANDWIDTH")
    for layer in range(N_LAYERS):
        block = transcoder.layer(layer)
        h = (x[:256, layer] @ block.W_enc + block.b_enc).float()
        block.activation.threshold.copy_(torch.quantile(h, 1 - l0 / h.shape[1], dim=0))
        if bandwidth:
            block.activation.bandwidth = float(bandwidth)


def main() -> None:
    torch.set_num_threads(1)
    reuse_freed_memory()
    for spec in sys.argv[1:]:
        kind, n_features, activation, batch = spec.split(":")
        seconds = step_cpu_seconds(kind, int(n_features), activation, int(batch))
        print(f"| {spec} | {seconds * 1000:.0f} | {int(batch) / seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
