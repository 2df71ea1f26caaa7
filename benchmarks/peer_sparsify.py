"""EleutherAI sparsify's trainer on precomputed activations (run with the peer's python).

    /work/sparsify-venv/bin/python benchmarks/peer_sparsify.py DATA OUT --k 32 ...

Imports nothing from circuitscope. DATA is a safetensors file with `mlp_in` and
`mlp_out` [tokens, n_layers, d_model] (the benchmark's training tokens, already
shuffled). sparsify's `Trainer` hooks a model's modules; here the "model" is a
stand-in whose `layers.{l}.mlp` modules are called with row slices of DATA and
return the matching `mlp_out` rows, so the unchanged `Trainer.fit` (its hooks,
bias initialisation, FVU loss, Adam, LR schedule, dead-feature bookkeeping) trains a
TopK transcoder per layer on exactly the batches circuitscope trains on: the
"input_ids" are row numbers, batch j is rows [j·B, (j+1)·B). Timing: the stand-in
records the time of each forward call (one per step); tokens/s is measured between
the first call after `--warmup` steps and the last call, so neither set-up nor the
final save is counted. Writes OUT/sparsify/layers.{l}.mlp/{cfg.json,sae.safetensors}
(sparsify's own format) and OUT/peer.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("SPARSIFY_DISABLE_TRITON", "1")

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from torch import nn  # noqa: E402


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

    def __init__(self, mlp_in: torch.Tensor, mlp_out: torch.Tensor, seq: int) -> None:
        super().__init__()
        self.mlp_in, self.mlp_out = mlp_in, mlp_out
        self.base = _Base(mlp_in.shape[1])
        self.config = _Config(mlp_in.shape[1])
        self.dummy_inputs = {"input_ids": torch.zeros(1, seq, dtype=torch.long)}
        self.calls: list[float] = []
        self.timing = False

    @property
    def base_model(self) -> nn.Module:  # what sparsify hooks into
        return self.base

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def forward(self, input_ids: torch.Tensor) -> None:
        if self.timing:
            self.calls.append(time.perf_counter())
        rows = input_ids.reshape(-1)
        shape = (*input_ids.shape, self.mlp_in.shape[-1])
        x_all, y_all = self.mlp_in[rows].float(), self.mlp_out[rows].float()
        for layer, block in enumerate(self.base.layers):
            block.mlp.target = y_all[:, layer].reshape(shape)  # type: ignore[union-attr]
            block.mlp(x_all[:, layer].reshape(shape))  # type: ignore[operator]
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("out")
    parser.add_argument("--n-features", type=int, default=4096)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--batch-tokens", type=int, default=512)
    parser.add_argument("--seq", type=int, default=128, help="tokens per pseudo-sequence")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-warmup-steps", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import sparsify
    from sparsify import SaeConfig, TrainConfig, Trainer

    tensors = load_file(args.data)
    mlp_in, mlp_out = tensors["mlp_in"], tensors["mlp_out"]
    n_tokens = mlp_in.shape[0] // args.batch_tokens * args.batch_tokens
    n_seq = n_tokens // args.seq
    dataset = [{"input_ids": torch.arange(i * args.seq, (i + 1) * args.seq)} for i in range(n_seq)]
    model = ActivationReplay(mlp_in, mlp_out, args.seq)
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
    model.timing = True
    start = time.perf_counter()
    trainer.fit()
    total = time.perf_counter() - start
    calls = model.calls
    steps = len(calls)
    timed = calls[-1] - calls[args.warmup]
    tokens_per_second = (steps - 1 - args.warmup) * args.batch_tokens / timed
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
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "steps": steps,
        "tokens": steps * args.batch_tokens,
        "timed_steps": steps - 1 - args.warmup,
        "timed_seconds": timed,
        "tokens_per_second": tokens_per_second,
        "fit_seconds": total,
        "hookpoints": cfg.hookpoints,
        "settings": {k: v for k, v in vars(args).items()},
    }
    (out / "peer.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps({"tokens_per_second": tokens_per_second, "steps": steps}))


if __name__ == "__main__":
    main()
