"""Thread CPU time of each phase of one TopK training step, for the circuitscope on sys.path.

    .venv/bin/python benchmarks/training_step_phases.py [fp32|bf16]
    PYTHONPATH=/path/to/other/checkout/src .venv/bin/python benchmarks/training_step_phases.py

The settings of training_vs_sparsify.py (PLT, 30 layers x 4,096 features, k = 32,
512-token batches, 1 thread) on the first 1,024 rows of the SmolLM2 store (or of
out/bench/sparsify-cmp/data/train.safetensors): 9 steps, the first left out; prints
one JSON line with the median forward / backward / Adam / bookkeeping / step
milliseconds (time.thread_time, so time slicing on a busy machine is not counted).
Works with older checkouts too (Adam is `make_optimizer` where the trainer has it).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from training_rows import RowReader, data_files  # noqa: E402  # pyright: ignore[reportMissingImports]

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    torch.set_num_threads(1)
    import circuitscope
    from circuitscope.training import trainer as trainer_module
    from circuitscope.training.forward import parameter_list
    from circuitscope.training.init import init_transcoder, training_config
    from circuitscope.training.settings import TrainSettings

    bf16 = len(sys.argv) > 1 and sys.argv[1] == "bf16"
    batch, n_features = 512, 4096
    store = ROOT / "out" / "smollm2-store"
    spec = store if store.is_dir() else ROOT / "out/bench/sparsify-cmp/data/train.safetensors"
    reader = RowReader(data_files(str(spec)))
    x_all, y_all = reader.rows(0, 2 * batch)
    n_layers, d = reader.n_layers, reader.d_model
    settings = TrainSettings(
        kind="plt",
        activation="topk",
        k=32,
        n_features=n_features,
        steps=100,
        batch_size=batch,
        grad_clip=0.0,
        autocast="off",
    )
    config = training_config(settings, n_layers, d, "smollm2-135m", "llama")
    transcoder = init_transcoder(config, settings, torch.zeros(n_layers, d))
    params = [p for _, p in parameter_list(transcoder)]
    make = getattr(trainer_module, "make_optimizer", None)
    optimizer = make(params, 1e-3) if make else torch.optim.Adam(params, lr=1e-3)
    module = trainer_module.LossModule(transcoder, settings)
    times: dict[str, list[float]] = {}
    for i in range(9):
        rows = slice((i % 2) * batch, (i % 2 + 1) * batch)
        x, y = x_all[rows], y_all[rows]
        t0 = time.thread_time()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _, fwd = module(x, y, 0.0)
        t1 = time.thread_time()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.thread_time()
        optimizer.step()
        t3 = time.thread_time()
        torch.stack(fwd.fire_counts())
        t4 = time.thread_time()
        if i == 0:
            continue
        phases = {
            "forward": t1 - t0,
            "backward": t2 - t1,
            "adam": t3 - t2,
            "bookkeeping": t4 - t3,
            "step": t4 - t0,
        }
        for name, seconds in phases.items():
            times.setdefault(name, []).append(seconds * 1000)
    out: dict[str, object] = {k: round(statistics.median(v)) for k, v in times.items()}
    out["tokens_per_cpu_second"] = round(batch / statistics.median(times["step"]) * 1000, 1)
    out["precision"] = "bf16 autocast" if bf16 else "fp32"
    out["circuitscope"] = str(Path(circuitscope.__file__).parent)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
