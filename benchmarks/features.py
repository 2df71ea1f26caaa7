"""Tokens per second of the feature-card pass against the model's forward pass alone.

    .venv/bin/python benchmarks/features.py   # SmolLM2-135M, 30 x 1024 PLT and CLT, 65,536 tokens
    .venv/bin/python benchmarks/features.py --tokens 16384 --repeats 2 --n-features 4096

Both run on the same packed contexts of the default corpus. "forward" is
`adapter.run(ids, unembed=False)`: the model up to its final norm, which is what
the pass needs (no unembedding), with no site captured: the bound. "pass" is
`collect_stats` (capture of every layer's transcoder input, encoding, top-k
tables, interval samples, histograms, densities), once per `--backends` entry:
`kernel` (the C loops of `features/firings.c`) and `torch` (their torch reference,
`CIRCUITSCOPE_KERNELS=0`); their results are checked equal. Each is timed
`--repeats` times, alternating, and the best time is kept. Then the cards
are made and written once (logit effects, decoding, files), timed apart: that
cost depends on the number of features, not on the corpus; so does that of the top
input tokens (`--input-tokens K`, timed apart again, every layer). The transcoders are
random with calibrated thresholds (`sparse_random_transcoder`, L0 about `--l0`).
Writes benchmarks/results/features-<date>-<machine>.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

from circuitscope.data.corpus import iter_documents
from circuitscope.data.packing import batched, pack_contexts
from circuitscope.features import firings_kernel
from circuitscope.features.build import all_features, make_cards
from circuitscope.features.files import write_cards
from circuitscope.features.input_tokens import top_input_tokens
from circuitscope.features.stats_settings import StatsSettings
from circuitscope.features.stream import FeatureStats, collect_stats
from circuitscope.models.loading import load_model
from circuitscope.testing.sparse_random import sparse_random_transcoder

RESULTS = Path(__file__).parent / "results"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_seconds(adapter, batches: list[torch.Tensor]) -> float:
    synchronize(adapter.device)
    start = time.perf_counter()
    with torch.no_grad():
        for ids in batches:
            adapter.run(ids, unembed=False)
    synchronize(adapter.device)
    return time.perf_counter() - start


def use_backend(name: str) -> None:
    """Run the pass's per-firing loops in C ("kernel") or in torch ("torch")."""
    os.environ[firings_kernel.SWITCH] = "0" if name == "torch" else "1"
    firings_kernel.library.cache_clear()
    if name == "kernel" and firings_kernel.library() is None:
        raise SystemExit("the C kernel could not be built (is there a C compiler?)")


def same_stats(a, b) -> bool:
    """Whether two passes kept the same counts, histograms and table entries (windows
    included; empty places hold nothing to compare)."""
    for layer, x in a.layers.items():
        y = b.layers[layer]
        if not (torch.equal(x.count, y.count) and torch.equal(x.histogram, y.histogram)):
            return False
        for s, t in ((x.top, y.top), (x.samples, y.samples)):
            kept = s.position >= 0
            if not torch.equal(kept, t.position >= 0):
                return False
            for name in ("key", "position", "value", "acts", "tokens"):
                if not torch.equal(getattr(s, name)[kept], getattr(t, name)[kept]):
                    return False
    return True


def chosen_features(transcoder, per_layer: int) -> dict[int, torch.Tensor]:
    """Every feature (per_layer 0), or `per_layer` seeded random ones per layer (what
    `--features-of` asks for)."""
    if per_layer <= 0:
        return all_features(transcoder)
    generator = torch.Generator().manual_seed(0)
    return {
        layer: torch.randperm(n, generator=generator)[:per_layer].sort().values
        for layer, n in enumerate(transcoder.config.n_features)
    }


def pass_seconds(
    adapter, transcoder, batches: list[torch.Tensor], settings: StatsSettings, per_layer: int = 0
):
    n = sum(len(b) for b in batches)
    features = chosen_features(transcoder, per_layer)
    synchronize(adapter.device)
    start = time.perf_counter()
    stats = collect_stats(adapter, transcoder, batches, n, features, settings, progress=False)
    synchronize(adapter.device)
    return time.perf_counter() - start, stats


def make_and_write(loaded, transcoder, stats, kind: str, enabled: bool) -> tuple[dict, int, float]:
    """(cards, bytes written, seconds) of making and writing every card once."""
    if not enabled:
        return {}, 0, 0.0
    start = time.perf_counter()
    cards = make_cards(loaded, transcoder, stats, kind, 10, n_input_tokens=0)  # timed apart
    with tempfile.TemporaryDirectory() as folder:
        write_cards(Path(folder), cards, transcoder.config.n_features, {})
        size = sum(p.stat().st_size for p in Path(folder).iterdir())
    return cards, size, time.perf_counter() - start


def input_token_seconds(loaded, transcoder, stats, k: int) -> float:
    """Seconds to rank every feature's top k input tokens, every layer (0 when k is 0)."""
    if k <= 0:
        return 0.0
    start = time.perf_counter()
    for layer, features in stats.features.items():
        divisor = stats.typical_input_divisor(layer)
        top_input_tokens(loaded.adapter, transcoder, layer, features, divisor, k)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description="Feature-card pass vs forward-only tokens/s.")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument(
        "--tokens", type=int, default=65536, help="corpus tokens (the `features` command's default)"
    )
    parser.add_argument("--context-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--n-features", type=int, default=1024)
    parser.add_argument("--l0", type=float, default=50.0)
    parser.add_argument(
        "--repeats", type=int, default=1, help="timings per backend; the best is kept"
    )
    parser.add_argument("--kinds", nargs="+", default=["plt", "clt"])
    parser.add_argument("--machine", default="cpu-2core-shared")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--model-dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument(
        "--backends",
        nargs="+",
        default=["kernel", "torch"],
        choices=["kernel", "torch"],
        help="the per-firing loops in C, in torch, or both (timed alternately, checked equal)",
    )
    parser.add_argument("--cards", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--input-tokens", type=int, default=10, help="0: not timed")
    parser.add_argument(
        "--features-per-layer",
        type=int,
        default=0,
        help="cards for this many random features per layer only, as --features-of (0: all)",
    )
    args = parser.parse_args()

    loaded = load_model(args.model, device=args.device, dtype=args.model_dtype)
    adapter, tokenizer = loaded.adapter, loaded.tokenizer
    n_contexts = -(-args.tokens // (args.context_length - 1))
    contexts = pack_contexts(iter_documents(["default"], "all"), tokenizer, args.context_length)
    batches = []
    for batch in batched(contexts, args.batch_size):
        batches.append(batch[: n_contexts - sum(len(b) for b in batches)])
        if sum(len(b) for b in batches) >= n_contexts:
            break
    tokens = sum(len(b) for b in batches) * (args.context_length - 1)
    settings = StatsSettings()
    rows = []
    for kind in args.kinds:
        transcoder = sparse_random_transcoder(adapter, tokenizer, kind, args.n_features, args.l0)
        forward_seconds(adapter, batches[:1])  # warm-up
        forward: list[float] = []
        passes: dict[str, list[float]] = {name: [] for name in args.backends}
        kept: dict[str, FeatureStats] = {}
        for _ in range(args.repeats):
            forward.append(forward_seconds(adapter, batches))
            for name in args.backends:
                use_backend(name)
                seconds, kept[name] = pass_seconds(
                    adapter, transcoder, batches, settings, args.features_per_layer
                )
                passes[name].append(seconds)
        use_backend("kernel" if "kernel" in args.backends else args.backends[0])
        stats = kept[args.backends[0]]
        equal = all(same_stats(stats, other) for other in kept.values())
        cards, size, card_seconds = make_and_write(loaded, transcoder, stats, kind, args.cards)
        inputs_seconds = input_token_seconds(loaded, transcoder, stats, args.input_tokens)
        fired = sum(int((s.count > 0).sum()) for s in stats.layers.values())
        for name, full in passes.items():
            row = {
                "kind": kind,
                "backend": name,
                "layers": adapter.n_layers,
                "n_features": args.n_features,
                "features_per_layer": args.features_per_layer or args.n_features,
                "tokens": tokens,
                "forward_tokens_per_s": tokens / min(forward),
                "pass_tokens_per_s": tokens / min(full),
                "ratio": min(forward) / min(full),
                "forward_seconds": forward,
                "pass_seconds": full,
                "backends_equal": equal,
                "cards_seconds": card_seconds,
                "input_tokens_seconds": inputs_seconds,
                "cards": len(cards),
                "features_fired": fired,
                "files_mb": size / 2**20,
            }
            rows.append(row)
            print(
                f"{kind} ({name}): forward {row['forward_tokens_per_s']:.0f} tok/s, pass "
                f"{row['pass_tokens_per_s']:.0f} tok/s (ratio {row['ratio']:.2f})"
            )
        print(
            f"{kind}: backends equal: {equal}; {len(cards)} cards made and written in "
            f"{card_seconds:.1f} s ({size / 2**20:.1f} MB); "
            f"top {args.input_tokens} input tokens of every feature in {inputs_seconds:.1f} s"
        )
    write_results(rows, args)


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine()


def write_results(rows: list[dict], args: argparse.Namespace) -> None:
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"features-{date.today()}-{args.machine}"
    meta = {
        "model": args.model,
        "context_length": args.context_length,
        "batch_size": args.batch_size,
        "l0": args.l0,
        "torch_threads": torch.get_num_threads(),
        "device": args.device,
        "device_name": device_name(args.device),
        "model_dtype": args.model_dtype,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    lines = [
        f"# Feature-card pass vs forward pass ({args.model}, {date.today()}, {args.machine})",
        "",
        f"Model on {meta['device_name']} in {args.model_dtype}; "
        f"context length {args.context_length}, batch {args.batch_size} contexts, random "
        f"transcoders with L0 about {args.l0}; best of {args.repeats}; machine {args.machine}.",
        "",
        "| transcoder | per-firing loops | features per layer carded | tokens | forward tok/s "
        f"| pass tok/s | pass / forward | same result | cards | cards s "
        f"| top {args.input_tokens} input tokens s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['layers']} x {r['n_features']} {r['kind'].upper()} | {r['backend']} "
            f"| {r['features_per_layer']} | {r['tokens']} | "
            f"{r['forward_tokens_per_s']:.0f} | {r['pass_tokens_per_s']:.0f} | {r['ratio']:.2f} | "
            f"{'yes' if r['backends_equal'] else 'NO'} | {r['cards']} | "
            f"{r['cards_seconds']:.1f} | {r['input_tokens_seconds']:.1f} |"
        )
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {stem}.md and .json")


if __name__ == "__main__":
    main()
