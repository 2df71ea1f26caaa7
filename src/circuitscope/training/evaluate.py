"""Evaluating a transcoder on held-out text, alone and spliced into the model.

Position 0 (BOS) is left out everywhere: it carries no features and keeps the
model's own MLP outputs. Reported:

- normalized MSE per layer: Σ‖ŷ − y‖² / Σ‖y − ȳ‖² over the held-out tokens;
- L0 per layer: mean active features per token; dead: features that never fired;
  dense: features firing on more than `DENSE_FREQUENCY` (10%) of the tokens;
- the replacement model (closed loop): every MLP's output replaced by the
  transcoder's reconstruction (skip term included) computed from the spliced
  model's own inputs at the transcoder's input site, all layers at once: top-1
  agreement with the original model's next token,
  KL(original ‖ spliced), and the next-token loss of both;
- open loop: the reconstructions computed from the original model's inputs,
  spliced with `adapter.run(mlp_out=...)`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from circuitscope.data.collect import layer_sites
from circuitscope.models import sites
from circuitscope.models.adapter import MlpOutput, ModelAdapter
from circuitscope.training.metrics import DENSE_FREQUENCY
from circuitscope.transcoders.transcoder import Transcoder


@dataclass
class SpliceFigures:
    top1_agreement: float = 0.0
    kl: float = 0.0
    """Mean KL(original ‖ spliced) of the next-token distribution, in nats."""
    loss: float = 0.0
    """Mean next-token cross-entropy of the spliced model."""
    loss_delta: float = 0.0
    """loss − the original model's loss."""


@dataclass
class EvalReport:
    n_tokens: int = 0
    nmse: float = 0.0
    """Mean over layers of normalized MSE."""
    l0: float = 0.0
    """Mean over layers of L0."""
    dead_fraction: float = 0.0
    """Fraction of all features that never fired."""
    dense_fraction: float = 0.0
    """Fraction of all features that fired on more than 10% of the tokens."""
    nmse_per_layer: list[float] = field(default_factory=list)
    l0_per_layer: list[float] = field(default_factory=list)
    dead_per_layer: list[float] = field(default_factory=list)
    dense_per_layer: list[float] = field(default_factory=list)
    loss_original: float = 0.0
    replacement: SpliceFigures = field(default_factory=SpliceFigures)
    open_loop: SpliceFigures = field(default_factory=SpliceFigures)
    data: dict[str, Any] = field(default_factory=dict)


class _Sums:
    def __init__(self, n_layers: int, d: int, n_features: list[int]) -> None:
        self.tokens = 0
        self.err = torch.zeros(n_layers, dtype=torch.float64)
        self.sq = torch.zeros(n_layers, dtype=torch.float64)
        self.sum = torch.zeros(n_layers, d, dtype=torch.float64)
        self.active = torch.zeros(n_layers, dtype=torch.float64)
        self.fired = [torch.zeros(n, dtype=torch.bool) for n in n_features]
        self.fire_counts = [torch.zeros(n, dtype=torch.int64) for n in n_features]
        self.splice = {"replacement": [0.0, 0.0, 0.0], "open_loop": [0.0, 0.0, 0.0]}
        self.loss = 0.0
        self.predictions = 0


def spliced_outputs(
    transcoder: Transcoder, clean_outputs: dict[int, Tensor]
) -> dict[int, MlpOutput]:
    """Per layer, the MLP output of the closed-loop replacement model, for
    `adapter.run(mlp_out=..., live_input=transcoder.config.input_kind)`: ŷ computed from
    that very run's inputs (for a CLT, with what earlier layers' features wrote), skip
    term included; position 0 keeps `clean_outputs[l][:, :1]` (the original run's: BOS
    has no features, and nothing before it changes). Layers must run in order."""
    written: dict[int, Tensor] = {}

    def output_of(layer: int) -> Callable[[Tensor], Tensor]:
        def output(x: Tensor) -> Tensor:
            inputs = x[:, 1:]
            parts = transcoder.decode_from(layer, transcoder.encode(layer, inputs))
            for slot, out in enumerate(transcoder.config.output_layers(layer)):
                written[out] = written[out] + parts[slot] if out in written else parts[slot]
            recon = transcoder.add_fixed_outputs({layer: written.pop(layer)}, {layer: inputs})
            first = clean_outputs[layer][:, :1]
            return torch.cat([first, recon[layer].to(first.dtype)], dim=1)

        return output

    return {layer: output_of(layer) for layer in range(transcoder.config.n_layers)}


@torch.no_grad()
def evaluate(
    adapter: ModelAdapter, transcoder: Transcoder, batches: Iterable[Tensor], n_contexts: int
) -> EvalReport:
    """Evaluate on up to `n_contexts` contexts from `batches` ([batch, seq] ids, BOS first)."""
    config = transcoder.config
    n_layers, d = config.n_layers, config.d_model
    sums = _Sums(n_layers, d, config.n_features)
    seen = 0
    for ids in batches:
        ids = ids[: n_contexts - seen]
        seen += len(ids)
        _evaluate_batch(adapter, transcoder, ids, sums)
        if seen >= n_contexts:
            break
    return _report(sums)


def _evaluate_batch(
    adapter: ModelAdapter, transcoder: Transcoder, ids: Tensor, sums: _Sums
) -> None:
    n_layers, kind = transcoder.config.n_layers, transcoder.config.input_kind
    result = adapter.run(ids, capture=layer_sites(n_layers, kind))
    xs = {i: result.cache[sites.transcoder_input(kind, i)][:, 1:] for i in range(n_layers)}
    ys = {i: result.cache[sites.mlp_out(i)] for i in range(n_layers)}
    acts, recon = transcoder.forward(xs)
    for i in range(n_layers):
        y = ys[i][:, 1:].double()
        sums.err[i] += (recon[i].double() - y).pow(2).sum()
        sums.sq[i] += y.pow(2).sum()
        sums.sum[i] += y.reshape(-1, y.shape[-1]).sum(0)
        active = acts[i] != 0
        sums.active[i] += active.sum()
        per_feature = active.reshape(-1, active.shape[-1]).sum(0).cpu()
        sums.fired[i] |= per_feature > 0
        sums.fire_counts[i] += per_feature
    sums.tokens += int(ids.shape[0]) * (int(ids.shape[1]) - 1)
    logits = result.logits.float()
    targets = ids[:, 2:].to(logits.device)
    sums.loss += _cross_entropy(logits, targets)
    sums.predictions += targets.numel()
    splice = spliced_outputs(transcoder, ys)
    spliced = adapter.run(ids, mlp_out=splice, live_input=kind).logits.float()
    _add_splice(sums.splice["replacement"], logits, spliced, targets)
    replaced = {
        i: torch.cat([ys[i][:, :1], recon[i].to(ys[i].dtype)], dim=1) for i in range(n_layers)
    }
    open_loop = adapter.run(ids, mlp_out=replaced).logits.float()
    _add_splice(sums.splice["open_loop"], logits, open_loop, targets)


def _cross_entropy(logits: Tensor, targets: Tensor) -> float:
    """Summed next-token loss of positions 1..T-2 (predicting tokens 2..T-1)."""
    pred = logits[:, 1:-1]
    return float(
        nn.functional.cross_entropy(
            pred.reshape(-1, pred.shape[-1]), targets.reshape(-1), reduction="sum"
        )
    )


def _add_splice(acc: list[float], original: Tensor, spliced: Tensor, targets: Tensor) -> None:
    a, b = original[:, 1:-1], spliced[:, 1:-1]
    acc[0] += float((a.argmax(-1) == b.argmax(-1)).sum())
    log_p, log_q = a.log_softmax(-1), b.log_softmax(-1)
    acc[1] += float((log_p.exp() * (log_p - log_q)).sum())
    acc[2] += _cross_entropy(spliced, targets)


def _report(sums: _Sums) -> EvalReport:
    n = max(sums.tokens, 1)
    mean = sums.sum / n
    variance = sums.sq - n * mean.pow(2).sum(-1)
    nmse = (sums.err / variance.clamp_min(1e-12)).tolist()
    l0 = (sums.active / n).tolist()
    dead = [float((~f).float().mean()) for f in sums.fired]
    total_features = sum(len(f) for f in sums.fired)
    dense_flags = [counts > DENSE_FREQUENCY * n for counts in sums.fire_counts]
    m = max(sums.predictions, 1)
    loss_original = sums.loss / m
    splice = {
        name: SpliceFigures(v[0] / m, v[1] / m, v[2] / m, v[2] / m - loss_original)
        for name, v in sums.splice.items()
    }
    return EvalReport(
        n_tokens=sums.tokens,
        nmse=sum(nmse) / len(nmse),
        l0=sum(l0) / len(l0),
        dead_fraction=sum(float((~f).sum()) for f in sums.fired) / total_features,
        nmse_per_layer=[round(v, 5) for v in nmse],
        l0_per_layer=[round(v, 3) for v in l0],
        dead_per_layer=[round(v, 4) for v in dead],
        dense_fraction=sum(float(f.sum()) for f in dense_flags) / total_features,
        dense_per_layer=[round(float(f.float().mean()), 4) for f in dense_flags],
        loss_original=loss_original,
        replacement=splice["replacement"],
        open_loop=splice["open_loop"],
    )


def print_report(report: EvalReport) -> None:
    print(f"held-out tokens      {report.n_tokens}")
    print(f"normalized MSE       {report.nmse:.4f} (mean over layers)")
    print(
        f"L0                   {report.l0:.2f} per layer "
        f"({report.l0 * len(report.l0_per_layer):.0f} in all)"
    )
    print(f"dead features        {report.dead_fraction:.4f}")
    print(f"dense features       {report.dense_fraction:.4f} (firing on over 10% of tokens)")
    print(f"original loss        {report.loss_original:.4f}")
    for name, figures in (("replacement", report.replacement), ("open loop", report.open_loop)):
        print(
            f"{name:<20} top-1 agreement {figures.top1_agreement:.4f}, KL {figures.kl:.4f}, "
            f"loss {figures.loss:.4f} ({figures.loss_delta:+.4f})"
        )
    print("layer  nmse     L0      dead    dense")
    for layer, (a, b, c, e) in enumerate(
        zip(
            report.nmse_per_layer,
            report.l0_per_layer,
            report.dead_per_layer,
            report.dense_per_layer,
            strict=True,
        )
    ):
        print(f"{layer:>5}  {a:.4f}  {b:7.2f}  {c:.4f}  {e:.4f}")
