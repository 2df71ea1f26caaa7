"""Shared by training_vs_sparsify.py and peer_sparsify.py (plain torch + safetensors only,
so that sparsify's virtualenv can import it too).

- `RowReader`: rows [start, start + count) of activations spread over safetensors files
  (an activation store's shards, or one prepared file), read lazily, as float32.
- `HeldoutMetrics`: the held-out figures both trainers are judged by: normalized MSE
  (FVU) Σ‖ŷ−y‖² / Σ‖y−ȳ‖² per layer, L0, and dead features (never active on the
  held-out tokens).
- `Clock`: elapsed wall and CPU time with pauses (held-out evaluations) left out.
- `timing_record`: the timing figures both runners write, from their step clocks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open


def data_files(spec: str) -> list[Path]:
    """An activation store folder (its shards, in manifest order) or one safetensors file."""
    path = Path(spec)
    if path.is_dir():
        manifest = json.loads((path / "manifest.json").read_text())
        return [path / shard["file"] for shard in manifest["shards"]]
    return [path]


class RowReader:
    """Rows of `mlp_in` / `mlp_out` [tokens, n_layers, d_model] over several files, in order."""

    def __init__(self, files: list[Path]) -> None:
        self.handles = [safe_open(str(f), framework="pt") for f in files]
        self.counts = [h.get_slice("mlp_in").get_shape()[0] for h in self.handles]
        shape = self.handles[0].get_slice("mlp_in").get_shape()
        self.n_layers, self.d_model = shape[1], shape[2]
        self.n_rows = sum(self.counts)

    def rows(self, start: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows start, start+1, ... (wrapping around at the end: epochs), float32."""
        xs, ys = [], []
        position = start % self.n_rows
        left = count
        while left > 0:
            file_index, offset = self._locate(position)
            take = min(left, self.counts[file_index] - offset)
            handle = self.handles[file_index]
            xs.append(handle.get_slice("mlp_in")[offset : offset + take])
            ys.append(handle.get_slice("mlp_out")[offset : offset + take])
            left -= take
            position = (position + take) % self.n_rows
        x = xs[0] if len(xs) == 1 else torch.cat(xs)
        y = ys[0] if len(ys) == 1 else torch.cat(ys)
        return x.float(), y.float()

    def _locate(self, position: int) -> tuple[int, int]:
        for index, count in enumerate(self.counts):
            if position < count:
                return index, position
            position -= count
        raise IndexError(position)


class HeldoutMetrics:
    """Accumulates per layer Σ‖ŷ−y‖², Σ‖y‖², Σy, active counts and fired features (float64)."""

    def __init__(self, n_layers: int, n_features: list[int], d_model: int) -> None:
        self.err = torch.zeros(n_layers, dtype=torch.float64)
        self.sq = torch.zeros(n_layers, dtype=torch.float64)
        self.total = torch.zeros(n_layers, d_model, dtype=torch.float64)
        self.active = torch.zeros(n_layers, dtype=torch.float64)
        self.fired = [torch.zeros(n, dtype=torch.bool) for n in n_features]
        self.n = 0

    @torch.no_grad()
    def add(self, layer: int, recon: torch.Tensor, target: torch.Tensor, on: torch.Tensor) -> None:
        """recon, target [b, d]; on [b, n_features] bool: which features are active."""
        target = target.double()
        self.err[layer] += (recon.double() - target).pow(2).sum()
        self.sq[layer] += target.pow(2).sum()
        self.total[layer] += target.sum(0)
        self.active[layer] += on.sum()
        self.fired[layer] |= on.any(0)
        if layer == 0:
            self.n += len(target)

    def result(self) -> dict[str, Any]:
        n, n_layers = self.n, len(self.fired)
        variance = self.sq - n * (self.total / n).pow(2).sum(-1)
        nmse = (self.err / variance).tolist()
        l0 = (self.active / n).tolist()
        dead = sum(float((~f).sum()) for f in self.fired) / sum(len(f) for f in self.fired)
        return {
            "heldout_tokens": n,
            "nmse": sum(nmse) / n_layers,
            "l0": sum(l0) / n_layers,
            "dead": dead,
            "nmse_per_layer": [round(v, 5) for v in nmse],
            "l0_per_layer": [round(v, 3) for v in l0],
            "dead_per_layer": [round(float((~f).float().mean()), 4) for f in self.fired],
        }


def active_mask(values: torch.Tensor, indices: torch.Tensor, n_features: int) -> torch.Tensor:
    """[b, k] kept values and their feature indices -> [b, n_features] bool (value != 0)."""
    on = torch.zeros(values.shape[0], n_features, dtype=torch.bool)
    return on.scatter_(1, indices, values != 0)


class Clock:
    """Wall (perf_counter) and CPU (process_time) seconds since `start`, pauses excluded."""

    def __init__(self) -> None:
        self.wall0 = self.cpu0 = 0.0
        self.paused_wall = self.paused_cpu = 0.0

    def start(self) -> None:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()

    def now(self) -> tuple[float, float]:
        wall = time.perf_counter() - self.wall0 - self.paused_wall
        cpu = time.process_time() - self.cpu0 - self.paused_cpu
        return wall, cpu

    @contextmanager
    def paused(self):  # noqa: ANN201
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.paused_wall += time.perf_counter() - wall
            self.paused_cpu += time.process_time() - cpu


class StepLog:
    """When each training step starts (wall, CPU), and every `eval_every` steps a held-out
    checkpoint taken first with the clock paused (so evaluation is not timed)."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.step_times: list[tuple[float, float]] = []
        self.checkpoints: list[dict[str, Any]] = []
        self.evaluate: Callable[[], dict[str, Any]] | None = None
        self.eval_every = 0

    def step_starts(self, step: int) -> None:
        if step == 0:
            self.clock.start()
        if self.evaluate is not None and self.eval_every and step % self.eval_every == 0:
            with self.clock.paused():
                self.checkpoints.append({"step": step, **self.evaluate()})
            self.checkpoints[-1]["wall"], self.checkpoints[-1]["cpu"] = self.clock.now()
        self.step_times.append(self.clock.now())


def timing_record(
    times: list[tuple[float, float]],
    end: tuple[float, float],
    warmup: int,
    batch_tokens: int,
) -> dict[str, Any]:
    """Tokens/s (wall and CPU) over steps warmup.. from each step's (wall, cpu) start and the
    (wall, cpu) end of the last step."""
    steps = len(times)
    timed_steps = steps - warmup
    wall = end[0] - times[warmup][0]
    cpu = end[1] - times[warmup][1]
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "steps": steps,
        "tokens": steps * batch_tokens,
        "timed_steps": timed_steps,
        "timed_seconds": wall,
        "timed_cpu_seconds": cpu,
        "tokens_per_second": timed_steps * batch_tokens / wall,
        "tokens_per_cpu_second": timed_steps * batch_tokens / cpu,
        "step_times": [list(t) for t in times],
        "end": list(end),
    }
