"""The training loop: normalise, forward, loss, Adam step, log, checkpoint; resumable.

A run's folder holds:

    checkpoints/      atomic checkpoints (see `checkpoint`)
    train_log.jsonl   one JSON line per logged step
    transcoder/       the trained transcoder, scales folded in (acts on raw activations)
"""

from __future__ import annotations

import copy
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from circuitscope.errors import CircuitscopeError
from circuitscope.training import distributed
from circuitscope.training.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    restore,
    save_checkpoint,
)
from circuitscope.training.forward import (
    TrainingForward,
    aux_reconstruction,
    clamp_thresholds,
    decoder_norms,
    parameter_list,
    thresholds,
    training_forward,
)
from circuitscope.training.init import init_transcoder, training_config
from circuitscope.training.losses import (
    aux_k_loss,
    learning_rate,
    pre_activation_loss,
    reconstruction_loss,
    tanh_sparsity_loss,
    warmup_factor,
)
from circuitscope.training.metrics import FeatureTracker, normalized_mse
from circuitscope.training.settings import ADDED_SETTINGS, RESUME_KEYS, TrainSettings
from circuitscope.training.sources import BatchSource
from circuitscope.transcoders.config import TranscoderConfig
from circuitscope.transcoders.transcoder import Transcoder

LOG_FILE = "train_log.jsonl"
TRANSCODER_DIR = "transcoder"


@dataclass
class TrainResult:
    transcoder_path: Path | None
    """The saved transcoder (on the main process)."""
    final: dict[str, Any]
    """The last log record."""
    tokens_per_second: float
    """Training throughput of this call (all processes together)."""


class LossModule(nn.Module):
    """The transcoder and its loss, as one module (what DDP wraps)."""

    def __init__(
        self,
        transcoder: Transcoder,
        settings: TrainSettings,
        info: distributed.DistInfo | None = None,
    ) -> None:
        super().__init__()
        self.transcoder = transcoder
        self.settings = settings
        self.info = info

    def forward(
        self, x: Tensor, y: Tensor, lam: float, dead: list[Tensor] | None = None
    ) -> tuple[Tensor, dict[str, Tensor], TrainingForward]:
        """dead: per layer, the indices of the features counted dead (for AuxK)."""
        out = training_forward(self.transcoder, x)
        recon = reconstruction_loss(out.reconstruction, y)
        terms = {"reconstruction": recon}
        loss = recon
        use_penalty = self.settings.activation in ("jumprelu", "relu")
        if use_penalty:
            norms = decoder_norms(self.transcoder)
            sparsity = tanh_sparsity_loss(out.activations, norms, self.settings.sparsity_c)
            terms["sparsity"] = sparsity
            loss = loss + lam * sparsity
            thetas = thresholds(self.transcoder)
            if thetas is not None and self.settings.preact_coefficient > 0:
                preact = pre_activation_loss(out.pre_activations, thetas, norms)
                terms["preact"] = preact
                loss = loss + self.settings.preact_coefficient * preact
        if self.settings.aux_k > 0:
            aux = torch.zeros((), device=y.device)
            found = (
                aux_reconstruction(
                    self.transcoder, x, out.pre_activations, dead, self.settings.aux_k
                )
                if dead
                else None
            )
            if found is not None:
                aux = aux_k_loss(found, y, out.reconstruction, self._mean_over_processes())
                loss = loss + self.settings.aux_coefficient * aux
            terms["aux"] = aux
        return loss, terms, out

    def _mean_over_processes(self) -> Callable[[Tensor], Tensor] | None:
        info = self.info
        if info is None or info.world_size == 1:
            return None
        return lambda t: distributed.all_reduce_sum(t, info) / info.world_size


def input_samples(source: BatchSource, settings: TrainSettings, s_in: Tensor) -> Tensor:
    """The first `n_features` tokens' normalised inputs [n, n_layers, d] (from the batches of
    the first steps, which training then reads again), for `encoder_init` "data"."""
    taken: list[Tensor] = []
    step = 0
    while sum(len(x) for x in taken) < settings.n_features:
        taken.append(source.batch(step, None)[0])
        step += 1
    return torch.cat(taken)[: settings.n_features].float() * s_in[None, :, None].float()


def check_settings(settings: TrainSettings) -> None:
    """Refuse settings that cannot train (one line each)."""
    if settings.aux_k < 0 or settings.aux_coefficient < 0:
        raise CircuitscopeError("--aux-k and --aux-coefficient must be >= 0")
    if settings.aux_k > 0 and settings.activation == "relu":
        raise CircuitscopeError(
            "--aux-k needs --activation topk, batchtopk or jumprelu: a ReLU feature counted "
            "dead had no positive pre-activation, so AuxK would train nothing"
        )


def source_config(settings: TrainSettings, source: BatchSource) -> TranscoderConfig:
    """The config of the transcoder a run with `settings` trains on `source`."""
    return training_config(
        settings,
        source.n_layers,
        source.d_model,
        source.model_id,
        source.architecture,
        source.input_site,
    )


def normalization_scales(source: BatchSource) -> tuple[Tensor, Tensor]:
    """([n_layers] input scales, [n_layers] output scales) that bring `source`'s
    activations to mean norm √d_model (folded into the saved weights)."""
    stats = source.stats
    s_in = torch.tensor(stats.input_scales(), dtype=torch.float32)
    s_out = torch.tensor(stats.output_scales(), dtype=torch.float32)
    return s_in, s_out


def make_optimizer(params: list[nn.Parameter], lr: float) -> torch.optim.Adam:
    """Adam, fused (one kernel per parameter: the same update in one pass instead of
    about eight) where this torch has it for the parameters' device, else the default."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.Adam(params, lr=lr)


def use_autocast(setting: str, device: torch.device) -> bool:
    """Whether to autocast matmuls to bf16: asked for, or auto on CUDA / CPUs with native bf16."""
    if setting == "off":
        return False
    if setting == "bf16" or device.type == "cuda":
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def train(
    source: BatchSource,
    settings: TrainSettings,
    out: Path,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train a transcoder on `source` into folder `out` (see the module docstring)."""
    info = distributed.setup(settings.device)
    try:
        return _train(source, settings, out, resume, progress, info)
    finally:
        distributed.cleanup(info)


def _train(
    source: BatchSource,
    settings: TrainSettings,
    out: Path,
    resume: bool,
    progress: bool,
    info: distributed.DistInfo,
) -> TrainResult:
    check_settings(settings)
    device = info.device
    torch.manual_seed(settings.seed)
    stats = source.stats
    s_in, s_out = normalization_scales(source)
    variance = (stats.out_variance() * s_out.double() ** 2).float().to(device)
    config = source_config(settings, source)
    means = (stats.mean_out * s_out.double()[:, None]).float()
    samples = input_samples(source, settings, s_in) if settings.encoder_init == "data" else None
    transcoder = init_transcoder(config, settings, means, samples).to(device)
    params = parameter_list(transcoder)
    optimizer = make_optimizer([p for _, p in params], settings.lr)
    tracker = FeatureTracker(config.n_layers, settings.n_features, settings.dead_after_tokens)
    start = _maybe_resume(out, resume, settings, params, optimizer, tracker)
    module: nn.Module = LossModule(transcoder, settings, info)
    if info.world_size > 1:
        module = nn.parallel.DistributedDataParallel(module)
    rows = info.rows(settings.batch_size)
    autocast = use_autocast(settings.autocast, device)
    s_in_d, s_out_d = s_in.to(device)[None, :, None], s_out.to(device)[None, :, None]
    log_path = out / LOG_FILE
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        _truncate_log(log_path, start)
    clock = _RunClock(_logged_times(log_path) if start > 0 else (0.0, 0.0))
    wandb_run = _wandb(settings) if info.is_main else None
    from tqdm import tqdm

    bar = tqdm(
        total=settings.steps, initial=start, disable=not (progress and info.is_main), desc="train"
    )
    record: dict[str, Any] = {}
    t0, done_tokens = time.perf_counter(), 0
    for step in range(start, settings.steps):
        x, y = source.batch(step, rows)
        x, y = x.to(device) * s_in_d, y.to(device) * s_out_d
        lr = learning_rate(step, settings.steps, settings.lr, settings.lr_warmup, settings.lr_decay)
        for group in optimizer.param_groups:
            group["lr"] = lr
        lam = settings.sparsity_coefficient * warmup_factor(
            step, settings.steps, settings.sparsity_warmup
        )
        dead = None
        if settings.aux_k > 0:  # counted before this step, as the log's dead fraction
            dead = [ids.to(device) for ids in tracker.dead_features()]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss, terms, fwd = module(x, y, lam, dead)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = (
            torch.nn.utils.clip_grad_norm_([p for _, p in params], settings.grad_clip)
            if settings.grad_clip > 0
            else torch.zeros(())
        )
        optimizer.step()
        clamp_thresholds(transcoder)
        fires = torch.stack(fwd.fire_counts()).cpu()
        tracker.update(distributed.all_reduce_sum(fires, info), settings.batch_size)
        done_tokens += settings.batch_size
        last = step + 1 == settings.steps
        if (step + 1) % settings.log_every == 0 or last:
            record = _log_record(
                step + 1, lr, lam, loss, terms, grad_norm, fwd, y, variance, tracker
            )
            record.update(clock.now())
            tracker.reset_window()
            if info.is_main:
                with log_path.open("a") as handle:
                    handle.write(json.dumps(record) + "\n")
                bar.set_postfix(
                    nmse=f"{record['nmse']:.3f}",
                    L0=f"{record['l0']:.1f}",
                    dead=f"{record['dead']:.2f}",
                )
                if wandb_run is not None:
                    wandb_run.log(record, step=step + 1)
        every = settings.checkpoint_every
        if (every and (step + 1) % every == 0) or last:
            if info.is_main:
                _save(out, step + 1, params, optimizer, tracker, settings)
            distributed.barrier(info)
        bar.update(1)
    bar.close()
    elapsed = max(time.perf_counter() - t0, 1e-9)
    path = None
    if info.is_main:
        path = save_transcoder(
            transcoder, s_in, s_out, out / TRANSCODER_DIR, settings, source, record
        )
        if wandb_run is not None:
            wandb_run.finish()
    return TrainResult(path, record, done_tokens / elapsed)


def _maybe_resume(
    out: Path,
    resume: bool,
    settings: TrainSettings,
    params: list[tuple[str, nn.Parameter]],
    optimizer: torch.optim.Optimizer,
    tracker: FeatureTracker,
) -> int:
    found = latest_checkpoint(out) if out.exists() else None
    if not resume:
        if found is not None:
            raise CircuitscopeError(
                f"{out} already holds checkpoints: pass --resume to continue, or another folder"
            )
        return 0
    if found is None:
        print(f"note: no checkpoint in {out}; starting from step 0", file=sys.stderr)
        return 0
    checkpoint = load_checkpoint(found)
    changed = resume_conflicts(checkpoint.meta.get("settings", {}), settings)
    if changed:
        raise CircuitscopeError(
            f"cannot resume {found}: settings differ from the checkpoint's ({', '.join(changed)})"
        )
    restore(checkpoint, params, optimizer)
    tracker.load_state({k[8:]: v for k, v in checkpoint.extras.items() if k.startswith("tracker.")})
    if "torch_rng" in checkpoint.extras:
        torch.set_rng_state(checkpoint.extras["torch_rng"])
    return checkpoint.step


def resume_conflicts(saved: dict[str, Any], settings: TrainSettings) -> list[str]:
    """The settings in which `settings` differ from a checkpoint's `saved` ones so that the
    run would not continue the same way (see RESUME_KEYS)."""
    now, defaults = asdict(settings), asdict(TrainSettings())
    saved = {**{key: defaults[key] for key in ADDED_SETTINGS}, **saved}
    keys = [*RESUME_KEYS, *(["dead_after_tokens"] if settings.aux_k > 0 else [])]
    if saved["aux_k"] == now["aux_k"] == 0:
        keys.remove("aux_coefficient")  # unused without AuxK
    return [key for key in keys if key in saved and saved[key] != now[key]]


def _save(
    out: Path,
    step: int,
    params: list[tuple[str, nn.Parameter]],
    optimizer: torch.optim.Optimizer,
    tracker: FeatureTracker,
    settings: TrainSettings,
) -> None:
    extras = {f"tracker.{k}": v for k, v in tracker.state().items()}
    extras["torch_rng"] = torch.get_rng_state()
    meta = {"settings": asdict(settings)}
    save_checkpoint(out, step, params, optimizer, extras, meta, keep=settings.keep_checkpoints)


class _RunClock:
    """Wall and process CPU seconds of a run, counting the parts before a resume."""

    def __init__(self, before: tuple[float, float]) -> None:
        self.wall0 = time.perf_counter() - before[0]
        self.cpu0 = time.process_time() - before[1]

    def now(self) -> dict[str, float]:
        return {
            "elapsed_s": round(time.perf_counter() - self.wall0, 3),
            "cpu_s": round(time.process_time() - self.cpu0, 3),
        }


def _logged_times(path: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of the last line of a run's log (0 without one)."""
    if not path.is_file():
        return 0.0, 0.0
    lines = path.read_text().splitlines()
    last = json.loads(lines[-1]) if lines else {}
    return float(last.get("elapsed_s", 0.0)), float(last.get("cpu_s", 0.0))


def _truncate_log(path: Path, start: int) -> None:
    """Drop log lines past `start` (written after the checkpoint a resume starts from)."""
    if not path.is_file():
        return
    if start == 0:
        path.unlink()
        return
    kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= start]
    path.write_text("".join(line + "\n" for line in kept))


@torch.no_grad()
def _log_record(
    step: int,
    lr: float,
    lam: float,
    loss: Tensor,
    terms: dict[str, Tensor],
    grad_norm: Tensor,
    fwd: TrainingForward,
    target: Tensor,
    variance: Tensor,
    tracker: FeatureTracker,
) -> dict[str, Any]:
    nmse = normalized_mse(fwd.reconstruction, target, variance)
    l0 = fwd.l0_per_layer()
    dead, dense = tracker.dead_fraction(), tracker.dense_fraction()
    return {
        "step": step,
        "loss": float(loss),
        **{k: float(v) for k, v in terms.items()},
        "lr": lr,
        "lambda": lam,
        "grad_norm": float(grad_norm),
        "nmse": float(nmse.mean()),
        "l0": float(l0.mean()),
        "dead": float(dead.mean()),
        "dense": float(dense.mean()),
        "nmse_per_layer": [round(float(v), 5) for v in nmse],
        "l0_per_layer": [round(float(v), 2) for v in l0],
        "dead_per_layer": [round(float(v), 4) for v in dead],
    }


def save_transcoder(
    transcoder: Transcoder,
    s_in: Tensor,
    s_out: Tensor,
    folder: Path,
    settings: TrainSettings,
    source: BatchSource,
    final: dict[str, Any],
    step: int | None = None,
) -> Path:
    """Fold the normalisation into a copy of the weights and write the native folder
    (`step`: of a checkpoint part-way through the run; None: the end)."""
    from circuitscope import __version__
    from circuitscope.transcoders.normalization import fold_scales

    saved = copy.deepcopy(transcoder).to("cpu")
    fold_scales(saved, s_in.tolist(), s_out.tolist())
    summary = {k: v for k, v in final.items() if not k.endswith("_per_layer")}
    saved.config = saved.config.with_changes(
        training={
            "trainer": f"circuitscope {__version__}",
            "settings": asdict(settings),
            "data": source.describe(),
            "tokens": (settings.steps if step is None else step) * settings.batch_size,
            "final": summary,
            **({} if step is None else {"checkpoint_step": step}),
        }
    )
    return saved.save(folder)


def _wandb(settings: TrainSettings) -> Any:
    if not settings.wandb_project:
        return None
    try:
        import wandb  # type: ignore[import-not-found]
    except ImportError:
        raise CircuitscopeError("--wandb-project needs wandb: pip install wandb") from None
    return wandb.init(project=settings.wandb_project, config=asdict(settings))
