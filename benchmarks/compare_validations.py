"""Two validation runs of the same suite, prompt by prompt: is a difference more than noise?

    .venv/bin/python benchmarks/compare_validations.py A.json B.json [--layers]

A and B are `benchmarks/validation.py` results (benchmarks/results/validation-*.json)
of two transcoders on the same prompts. For each per-prompt figure (replacement and
completeness scores, ablation and doubling Spearman on the original and the replacement
model) it prints B's mean minus A's over the prompts both have, the standard error of
that paired mean, and on how many prompts B is higher. With --layers, also each run's
mean error-node share of the graph's influence by layer (`error_share_by_layer`) and B
minus A, where both runs recorded it.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

FIGURES = (
    "replacement_score",
    "completeness_score",
    "ablation",
    "ablation_replacement",
    "doubling",
    "doubling_replacement",
)


def rows_by_prompt(path: Path) -> dict[str, dict[str, Any]]:
    return {row["prompt"]: row for row in json.loads(path.read_text())["rows"]}


def paired(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]], figure: str) -> list[float]:
    """B minus A on each prompt where both have the figure."""
    return [
        b[p][figure] - a[p][figure]
        for p in a
        if p in b and a[p].get(figure) is not None and b[p].get(figure) is not None
    ]


def summary(diffs: list[float]) -> tuple[float, float, int]:
    """(mean, standard error of the mean, how many are > 0)."""
    mean = statistics.fmean(diffs)
    error = statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else float("nan")
    return mean, error, sum(d > 0 for d in diffs)


def layer_shares(rows: dict[str, dict[str, Any]]) -> list[float] | None:
    shares = [row["error_share_by_layer"] for row in rows.values() if "error_share_by_layer" in row]
    if not shares:
        return None
    return [statistics.fmean(column) for column in zip(*shares, strict=True)]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--layers", action="store_true")
    args = parser.parse_args()
    a, b = rows_by_prompt(args.a), rows_by_prompt(args.b)
    print(f"A: {args.a.name}\nB: {args.b.name}\n")
    print("| figure | prompts | mean A | mean B | B − A | ± s.e. | B higher on |")
    print("|---|---|---|---|---|---|---|")
    for figure in FIGURES:
        diffs = paired(a, b, figure)
        if not diffs:
            continue
        both = [p for p in a if p in b and a[p].get(figure) is not None]
        mean_a = statistics.fmean(a[p][figure] for p in both)
        mean_b = statistics.fmean(b[p][figure] for p in both)
        mean, error, higher = summary(diffs)
        print(
            f"| {figure} | {len(diffs)} | {mean_a:.3f} | {mean_b:.3f} | {mean:+.3f} "
            f"| {error:.3f} | {higher} of {len(diffs)} |"
        )
    shares_a, shares_b = layer_shares(a), layer_shares(b)
    if args.layers and shares_a and shares_b:
        print("\n| layer | error share A | error share B | B − A |\n|---|---|---|---|")
        for layer, (x, y) in enumerate(zip(shares_a, shares_b, strict=True)):
            print(f"| {layer} | {x:.4f} | {y:.4f} | {y - x:+.4f} |")
        total_a, total_b = sum(shares_a), sum(shares_b)
        print(f"| all | {total_a:.4f} | {total_b:.4f} | {total_b - total_a:+.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
