"""The machine's fp32 (and bf16) matmul rate: the ceiling every FLOP/s figure is read against.

`attribution_fair.py` reports achieved GFLOP/s per trace; this says what the same
cores reach on a large square matmul (the practical peak) and on the shapes a
frozen backward pass multiplies (rows x d_model against d_model x d_model and the
grouped-query value map), at 1 thread and at every thread count up to the cores.

    .venv/bin/python benchmarks/matmul_peak.py --machine cpu-2core-idle

Prints one table; writes `results/matmul-peak-<date>-<machine>.md/.json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class MatmulCase:
    """One timed shape: (m x k) @ (k x n)."""

    name: str
    m: int
    k: int
    n: int


CASES = [
    MatmulCase("square 2048", 2048, 2048, 2048),
    MatmulCase("square 1024", 1024, 1024, 1024),
    # A 32-row pass over 8 positions: 256 gradient rows through attention's output map.
    MatmulCase("256 rows @ O (576x576)", 256, 576, 576),
    # The same rows through the value map of SmolLM2's 3 key-value heads.
    MatmulCase("256 rows @ V (576x192)", 256, 576, 192),
    MatmulCase("4096 rows @ O (576x576)", 4096, 576, 576),
]


def best_seconds(case: MatmulCase, dtype: torch.dtype, repeats: int) -> float:
    """Fastest of `repeats` timings of one matmul, after a warm-up."""
    a = torch.randn(case.m, case.k, dtype=dtype)
    b = torch.randn(case.k, case.n, dtype=dtype)
    out = torch.empty(case.m, case.n, dtype=dtype)
    inner = max(1, int(2e9 / (2 * case.m * case.k * case.n)))
    for _ in range(2):
        torch.matmul(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            torch.matmul(a, b, out=out)
        best = min(best, (time.perf_counter() - start) / inner)
    return best


def measure(threads: list[int], dtypes: list[str], repeats: int) -> list[dict]:
    """GFLOP/s for every case, dtype and thread count."""
    rows = []
    for dtype_name in dtypes:
        dtype = getattr(torch, dtype_name)
        for case in CASES:
            for n_threads in threads:
                torch.set_num_threads(n_threads)
                seconds = best_seconds(case, dtype, repeats)
                gflops = 2 * case.m * case.k * case.n / seconds / 1e9
                rows.append(
                    {**asdict(case), "dtype": dtype_name, "threads": n_threads, "gflops": gflops}
                )
                print(f"{dtype_name:9} {case.name:26} {n_threads} thr  {gflops:7.1f} GFLOP/s")
    return rows


def table(rows: list[dict]) -> str:
    """Markdown: one row per (dtype, case), one column per thread count."""
    threads = sorted({r["threads"] for r in rows})
    head = "| dtype | shape | " + " | ".join(f"{t} thread GFLOP/s" for t in threads) + " |"
    lines = [head, "|" + " --- |" * (2 + len(threads))]
    keys = list(dict.fromkeys((r["dtype"], r["name"]) for r in rows))
    for dtype_name, name in keys:
        cells = [
            f"{r['gflops']:.1f}"
            for t in threads
            for r in rows
            if r["dtype"] == dtype_name and r["name"] == name and r["threads"] == t
        ]
        lines.append(f"| {dtype_name} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--machine", default=f"cpu-{os.cpu_count()}core")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    threads = sorted({1, os.cpu_count() or 1})
    rows = measure(threads, args.dtypes, args.repeats)
    text = table(rows)
    print(text)
    date = dt.date.today().isoformat()
    stem = RESULTS / f"matmul-peak-{date}-{args.machine}"
    header = f"# Matmul rate, {date}, {args.machine}\n\ntorch {torch.__version__}. {args.note}\n\n"
    stem.with_suffix(".md").write_text(header + text + "\n")
    payload = {"machine": args.machine, "torch": torch.__version__, "note": args.note, "rows": rows}
    stem.with_suffix(".json").write_text(json.dumps(payload, indent=1) + "\n")
    print(f"written {stem}.md/.json")


if __name__ == "__main__":
    main()
