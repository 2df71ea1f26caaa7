"""Frozen attention's mixing, dense against blockwise causal (`models/causal_mix.py`).

    .venv/bin/python benchmarks/causal_mix.py [--lengths 128 256 512 1024] [--batch 32]

One attribution pass's mixing in one layer of SmolLM2-135M's shape (9 heads of 64, a
batch of rows in the columns): the forward product and the backward `Pᵀ @ grad`
that every pass repeats, timed for the dense matmul and for `causal_mix`,
alternating, best of `--repeats`. Prints milliseconds, the ratio and the multiply-adds
each computes (the blockwise one skips the blocks above the diagonal blocks), and
writes the table to benchmarks/results/causal-mix-<date>-<machine>.md.
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import date
from pathlib import Path

import torch

from circuitscope.models.causal_mix import BLOCK, causal_mix


def causal_probs(heads: int, length: int) -> torch.Tensor:
    scores = torch.randn(heads, length, length)
    above = torch.ones(length, length, dtype=torch.bool).triu(1)
    return scores.masked_fill(above, float("-inf")).softmax(-1)


def seconds(mix, probs: torch.Tensor, columns: torch.Tensor, grad: torch.Tensor) -> float:  # noqa: ANN001
    start = time.perf_counter()
    out = mix(probs, columns)
    torch.autograd.grad(out, columns, grad)
    return time.perf_counter() - start


def multiply_adds(length: int, width: int, heads: int, blockwise: bool) -> int:
    """Of the forward and the backward together."""
    if not blockwise or length < 2 * BLOCK:
        return 2 * heads * length * length * width
    bounds = [*range(0, length, BLOCK), length]
    blocks = list(zip(bounds[:-1], bounds[1:], strict=True))
    forward = sum((end - start) * end for start, end in blocks)
    backward = sum((length - start) * (end - start) for start, end in blocks)
    return heads * (forward + backward) * width


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 256, 512, 1024])
    parser.add_argument("--batch", type=int, default=32, help="rows per pass")
    parser.add_argument("--heads", type=int, default=9)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--machine", default=f"cpu-{torch.get_num_threads()}thread")
    args = parser.parse_args()
    width = args.batch * args.head_dim
    lines = [
        f"# Frozen attention's mixing, dense vs blockwise causal ({date.today()}, {args.machine})",
        "",
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}, "
        f"block {BLOCK}, batch {args.batch}, {args.heads} heads of {args.head_dim}; "
        f"forward + backward, best of {args.repeats}.",
        "",
        "| tokens | dense ms | blockwise ms | ratio | dense GMAC | blockwise GMAC |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    print("\n".join(lines))
    for length in args.lengths:
        probs = causal_probs(args.heads, length)
        columns = torch.randn(args.heads, length, width, requires_grad=True)
        grad = torch.randn(args.heads, length, width)
        times = {"dense": [], "blockwise": []}
        for _ in range(args.repeats):
            times["dense"].append(seconds(torch.matmul, probs, columns, grad))
            times["blockwise"].append(seconds(causal_mix, probs, columns, grad))
        dense, blocks = min(times["dense"]) * 1e3, min(times["blockwise"]) * 1e3
        work = [multiply_adds(length, width, args.heads, b) / 1e9 for b in (False, True)]
        lines.append(
            f"| {length} | {dense:.1f} | {blocks:.1f} | {dense / blocks:.2f} "
            f"| {work[0]:.2f} | {work[1]:.2f} |"
        )
        print(lines[-1], flush=True)
    results = Path(__file__).parent / "results"
    target = results / f"causal-mix-{date.today()}-{args.machine}.md"
    target.write_text("\n".join(lines) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
