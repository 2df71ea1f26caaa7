"""Atomic, checksummed training checkpoints (safetensors + JSON, nothing pickled).

    run/checkpoints/step-00000100/weights.safetensors    the transcoder's parameters
    run/checkpoints/step-00000100/optimizer.safetensors  Adam's moments and step counts
    run/checkpoints/step-00000100/state.json             step, settings, checksums, extras
    run/checkpoints/latest                               the name of the newest complete one

A checkpoint is written into a temporary folder, synced and renamed, and only
then named in `latest` (itself replaced atomically): a kill at any moment leaves
the previous checkpoint usable.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from circuitscope.data.store_format import sha256_file
from circuitscope.errors import CircuitscopeError

WEIGHTS, OPTIMIZER, STATE, LATEST = (
    "weights.safetensors",
    "optimizer.safetensors",
    "state.json",
    "latest",
)


@dataclass
class Checkpoint:
    step: int
    weights: dict[str, Tensor]
    optimizer: dict[str, Tensor]
    extras: dict[str, Tensor]
    meta: dict[str, Any]


def _fsync_file(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def save_checkpoint(
    folder: Path,
    step: int,
    params: list[tuple[str, nn.Parameter]],
    optimizer: torch.optim.Optimizer,
    extras: dict[str, Tensor],
    meta: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write checkpoint `step` under folder/checkpoints and point `latest` at it."""
    root = folder / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:08d}"
    tmp = root / f".{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    weights = {n: p.detach().cpu().contiguous() for n, p in params}
    save_file(weights, str(tmp / WEIGHTS))
    save_file(_optimizer_tensors(optimizer, extras), str(tmp / OPTIMIZER))
    files = {f: sha256_file(tmp / f) for f in (WEIGHTS, OPTIMIZER)}
    state = {"step": step, "files": files, **meta}
    (tmp / STATE).write_text(json.dumps(state, indent=2) + "\n")
    for f in (WEIGHTS, OPTIMIZER, STATE):
        _fsync_file(tmp / f)
    final = root / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    latest_tmp = root / (LATEST + ".tmp")
    latest_tmp.write_text(name + "\n")
    _fsync_file(latest_tmp)
    os.replace(latest_tmp, root / LATEST)
    _prune(root, keep)
    return final


def _optimizer_tensors(
    optimizer: torch.optim.Optimizer, extras: dict[str, Tensor]
) -> dict[str, Tensor]:
    out = {f"extra.{k}": v.detach().cpu().contiguous() for k, v in extras.items()}
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            tensor = value if isinstance(value, Tensor) else torch.tensor(float(value))
            out[f"state.{index}.{key}"] = tensor.detach().cpu().contiguous()
    return out


def _prune(root: Path, keep: int) -> None:
    done = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-"))
    for old in done[: max(0, len(done) - max(keep, 1))]:
        shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint under folder/checkpoints, or None if there is none."""
    pointer = folder / "checkpoints" / LATEST
    if not pointer.is_file():
        return None
    path = folder / "checkpoints" / pointer.read_text().strip()
    if not path.is_dir():
        raise CircuitscopeError(f"{pointer} names {path.name}, which is missing")
    return path


def load_checkpoint(path: Path) -> Checkpoint:
    """Read and verify a checkpoint folder; corrupt or missing files raise CircuitscopeError."""
    state_path = path / STATE
    try:
        meta = json.loads(state_path.read_text())
    except (OSError, ValueError) as error:
        raise CircuitscopeError(f"checkpoint {path}: unreadable {STATE} ({error})") from None
    for file, digest in meta.get("files", {}).items():
        target = path / file
        if not target.is_file():
            raise CircuitscopeError(f"checkpoint {path}: missing {file}")
        if sha256_file(target) != digest:
            raise CircuitscopeError(f"checkpoint {path}: {file} is corrupt (checksum mismatch)")
    try:
        weights = load_file(str(path / WEIGHTS))
        tensors = load_file(str(path / OPTIMIZER))
    except Exception as error:  # safetensors raises several types for bad files
        raise CircuitscopeError(f"checkpoint {path}: unreadable tensors ({error})") from None
    extras = {k[6:]: v for k, v in tensors.items() if k.startswith("extra.")}
    optimizer = {k: v for k, v in tensors.items() if k.startswith("state.")}
    return Checkpoint(int(meta["step"]), weights, optimizer, extras, meta)


@torch.no_grad()
def restore(
    checkpoint: Checkpoint, params: list[tuple[str, nn.Parameter]], optimizer: torch.optim.Optimizer
) -> None:
    """Copy the checkpoint's weights and optimizer state into a freshly built run."""
    names = [n for n, _ in params]
    if sorted(names) != sorted(checkpoint.weights):
        raise CircuitscopeError("the checkpoint's parameters do not match this run's settings")
    for name, param in params:
        value = checkpoint.weights[name]
        if value.shape != param.shape:
            raise CircuitscopeError(f"checkpoint parameter {name} has shape {tuple(value.shape)}")
        param.copy_(value.to(param.device, param.dtype))
    state: dict[int, dict[str, Tensor]] = {}
    for key, value in checkpoint.optimizer.items():
        _, index, field = key.split(".", 2)
        state.setdefault(int(index), {})[field] = value
    devices = [p.device for _, p in params]
    for index, entry in state.items():
        for field, value in entry.items():
            if field != "step":
                entry[field] = value.to(devices[index])
    optimizer.load_state_dict(
        {"state": state, "param_groups": optimizer.state_dict()["param_groups"]}
    )
