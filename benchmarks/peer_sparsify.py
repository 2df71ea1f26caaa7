"""EleutherAI sparsify's trainer on precomputed activations (run with the peer's python).

    /work/sparsify-venv/bin/python benchmarks/peer_sparsify.py DATA OUT --k 32 ...

Imports nothing from circuitscope (only benchmarks/training_rows.py, plain torch). DATA
is an activation store folder (its shards in order) or one safetensors file, each with
`mlp_in` and `mlp_out` [tokens, n_layers, d_model]. sparsify's `Trainer` hooks a model's
modules; here the "model" is a stand-in whose `layers.{l}.mlp` modules are called with
rows of DATA and return the matching `mlp_out` rows, so the unchanged `Trainer.fit` (its
hooks, bias initialisation, FVU loss, Adam, LR schedule, dead-feature bookkeeping)
trains a TopK transcoder per layer on exactly the batches circuitscope trains on: the
"input_ids" are row numbers, batch j is rows [j·B, (j+1)·B) (wrapping round: epochs).

Timing: the stand-in's forward is called once at the start of each step; the end of
the last step is when `Trainer.save` is first called. Every `--eval-every` steps (before
that step's forward) the current SAEs are evaluated on `--heldout` with
`training_rows.HeldoutMetrics`, clock paused: evaluation is not counted. Writes
OUT/sparsify/layers.{l}.mlp/{cfg.json,sae.safetensors} (sparsify's own format) and
OUT/peer.json (step times, held-out checkpoints, tokens/s).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("SPARSIFY_DISABLE_TRITON", "1")

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from torch import nn  # noqa: E402
from training_rows import (  # noqa: E402  # pyright: ignore[reportMissingImports]
    HeldoutMetrics,
    RowReader,
    StepLog,
    active_mask,
    data_files,
    timing_record,
)


class _MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.target: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert self.target is not None
        return self.target


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mlp = _MLP()


class _Base(nn.Module):
    def __init__(self, n_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_Block() for _ in range(n_layers))


class _Config:
    def __init__(self, n_layers: int) -> None:
        self.num_hidden_layers = n_layers


class ActivationReplay(nn.Module):
    """Calls each `layers.{l}.mlp` with mlp_in[rows, l] and makes it return mlp_out[rows, l]."""

    def __init__(self, reader: RowReader, seq: int) -> None:
        super().__init__()
        self.reader = reader
        self.base = _Base(reader.n_layers)
        self.config = _Config(reader.n_layers)
        self.dummy_inputs = {"input_ids": torch.zeros(1, seq, dtype=torch.long)}
        self.log = StepLog()
        self.timing = False

    @property
    def base_model(self) -> nn.Module:  # what sparsify hooks into
        return self.base

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def forward(self, input_ids: torch.Tensor) -> None:
        rows = input_ids.reshape(-1)
        if self.timing:
            self.log.step_starts(len(self.log.step_times))
        start, count = int(rows[0]), len(rows)
        contiguous = torch.equal(rows, torch.arange(start, start + count))
        assert contiguous or not self.timing, "rows not contiguous"  # (sparsify's dummy call)
        x_all, y_all = self.reader.rows(start, count)
        shape = (*input_ids.shape, x_all.shape[-1])
        for layer, block in enumerate(self.base.layers):
            block.mlp.target = y_all[:, layer].reshape(shape)  # type: ignore[union-attr]
            block.mlp(x_all[:, layer].reshape(shape))  # type: ignore[operator]
        return None


@torch.no_grad()
def heldout_eval(saes: dict[str, Any], x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """The current SAEs on the held-out rows: training_rows.HeldoutMetrics figures."""
    n_layers = x.shape[1]
    names = [f"layers.{layer}.mlp" for layer in range(n_layers)]
    metrics = HeldoutMetrics(n_layers, [saes[n].num_latents for n in names], x.shape[-1])
    for xb, yb in zip(x.split(512), y.split(512), strict=True):
        for layer, name in enumerate(names):
            sae = saes[name]
            top_acts, top_indices, _ = sae.encode(xb[:, layer].float())
            recon = sae.decode(top_acts, top_indices)
            on = active_mask(top_acts, top_indices, sae.num_latents)
            metrics.add(layer, recon, yb[:, layer], on)
    result = metrics.result()
    return {k: result[k] for k in ("nmse", "l0", "dead")}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("data", help="activation store folder or safetensors file")
    parser.add_argument("out")
    parser.add_argument("--n-features", type=int, default=4096)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--batch-tokens", type=int, default=512)
    parser.add_argument("--steps", type=int, default=0, help="0: one epoch of DATA")
    parser.add_argument("--seq", type=int, default=128, help="tokens per pseudo-sequence")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-warmup-steps", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--heldout", default="", help="held-out safetensors file")
    parser.add_argument("--eval-every", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import sparsify  # pyright: ignore[reportMissingImports]
    from sparsify import SaeConfig, TrainConfig, Trainer  # pyright: ignore[reportMissingImports]

    reader = RowReader(data_files(args.data))
    steps = args.steps or reader.n_rows // args.batch_tokens
    n_seq = steps * args.batch_tokens // args.seq
    dataset = [{"input_ids": torch.arange(i * args.seq, (i + 1) * args.seq)} for i in range(n_seq)]
    model = ActivationReplay(reader, args.seq)
    out = Path(args.out)
    cfg = TrainConfig(
        SaeConfig(num_latents=args.n_features, k=args.k, transcode=True),
        batch_size=args.batch_tokens // args.seq,
        loss_fn="fvu",
        optimizer="adam",
        lr=args.lr,
        lr_warmup_steps=args.lr_warmup_steps,
        hookpoints=["layers.*.mlp"],
        init_seeds=[args.seed],
        save_every=10**9,
        log_to_wandb=False,
        save_dir=str(out / "checkpoints"),
        run_name="run",
    )
    trainer = Trainer(cfg, dataset, model)  # type: ignore[arg-type]
    if args.heldout and args.eval_every:
        held = load_file(args.heldout)
        model.log.evaluate = functools.partial(
            heldout_eval, trainer.saes, held["mlp_in"].float(), held["mlp_out"].float()
        )
        model.log.eval_every = args.eval_every
    end: list[tuple[float, float]] = []
    save = trainer.save

    def save_and_time() -> None:
        if not end:
            end.append(model.log.clock.now())  # the end of the last step
        save()

    trainer.save = save_and_time  # type: ignore[method-assign]
    model.timing = True
    start = time.perf_counter()
    trainer.fit()
    total = time.perf_counter() - start
    times = model.log.step_times
    assert len(times) == steps and end, (len(times), steps)
    run = out / "checkpoints" / "run"
    dest = out / "sparsify"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for sub in sorted(run.iterdir()):
        if sub.is_dir() and (sub / "cfg.json").is_file():
            shutil.copytree(sub, dest / sub.name)
    info = {
        "trainer": f"eai-sparsify {getattr(sparsify, '__version__', '1.3.3')}",
        **timing_record(times, end[0], args.warmup, args.batch_tokens),
        "checkpoints": model.log.checkpoints,
        "fit_seconds": total,
        "hookpoints": cfg.hookpoints,
        "settings": {k: v for k, v in vars(args).items()},
    }
    (out / "peer.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps({"tokens_per_second": info["tokens_per_second"], "steps": steps}))


if __name__ == "__main__":
    main()
