"""Training on a tiny model's activations: it learns, it is sparse, it resumes exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from training_fixtures import tiny_store_fixture  # noqa: F401

from circuitscope.data.store_reader import ActivationStore
from circuitscope.errors import CircuitscopeError
from circuitscope.training.checkpoint import latest_checkpoint, load_checkpoint
from circuitscope.training.settings import TrainSettings
from circuitscope.training.sources import StoreSource
from circuitscope.training.trainer import train
from circuitscope.transcoders.transcoder import Transcoder

FAST = dict(
    n_features=64,
    batch_size=256,
    lr=2e-3,
    autocast="off",
    dead_after_tokens=5000,
    log_every=50,
    checkpoint_every=0,
)


def _train(store: Path, out: Path, **changes: object) -> tuple[TrainSettings, dict]:
    settings = TrainSettings(**{**FAST, **changes})  # type: ignore[arg-type]
    source = StoreSource(ActivationStore(store), settings.batch_size, settings.seed)
    result = train(source, settings, out, progress=False)
    return settings, result.final


@torch.no_grad()
def _raw_nmse(transcoder: Transcoder, store: Path) -> float:
    """Normalized MSE of a saved transcoder on raw (unnormalised) store activations."""
    s = ActivationStore(store)
    x, y = s.read_shard(0)
    x, y = x.float(), y.float()
    _, recon = transcoder.forward({layer: x[:, layer] for layer in range(3)})
    errors = [(recon[layer] - y[:, layer]).pow(2).sum(-1).mean() for layer in range(3)]
    variance = s.stats.out_variance().float()
    return float(torch.stack(errors).div(variance).mean())


def test_clt_learns_and_reaches_target_l0(tiny_store: Path, tmp_path: Path):
    _, dense = _train(tiny_store, tmp_path / "weak", steps=300, sparsity_coefficient=0.03)
    _, sparse = _train(tiny_store, tmp_path / "run", steps=300, sparsity_coefficient=1.0)
    assert sparse["nmse"] < 0.5  # from 1.0 (predicting the mean) at the start
    assert sparse["l0"] <= 12  # target L0: at most 12 of 64 features per layer
    assert dense["l0"] > 2 * sparse["l0"]  # λ sets the sparsity
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").open()]
    assert [r["step"] for r in log] == [50, 100, 150, 200, 250, 300]
    assert log[0]["nmse"] > sparse["nmse"]
    saved = Transcoder.load(tmp_path / "run" / "transcoder", lazy=False)
    assert saved.config.normalization == "folded" and saved.config.kind == "clt"
    assert saved.config.training["settings"]["sparsity_coefficient"] == 1.0
    # The folded transcoder acts on raw activations as well as it did on normalised ones.
    assert _raw_nmse(saved, tiny_store) == pytest.approx(sparse["nmse"], abs=0.08)


def test_topk_plt_has_exactly_k_active(tiny_store: Path, tmp_path: Path):
    _, final = _train(tiny_store, tmp_path / "topk", steps=100, kind="plt", activation="topk", k=5)
    assert final["l0"] == pytest.approx(5.0) and final["nmse"] < 0.7


def test_checkpoints_refuse_to_be_overwritten_and_corrupt_ones_fail(
    tiny_store: Path, tmp_path: Path
):
    out = tmp_path / "run"
    _train(tiny_store, out, steps=20, checkpoint_every=10)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "latest",
        "step-00000010",
        "step-00000020",
    ]
    with pytest.raises(CircuitscopeError, match="already holds checkpoints"):
        _train(tiny_store, out, steps=20)
    settings = TrainSettings(**{**FAST, "steps": 40, "checkpoint_every": 10})  # type: ignore[arg-type]
    source = StoreSource(ActivationStore(tiny_store), 256, 0)
    with pytest.raises(CircuitscopeError, match=r"settings differ .*steps"):
        train(source, settings, out, resume=True, progress=False)
    path = latest_checkpoint(out)
    assert path is not None and load_checkpoint(path).step == 20
    weights = path / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x55
    weights.write_bytes(bytes(data))
    with pytest.raises(CircuitscopeError, match="weights.safetensors is corrupt"):
        load_checkpoint(path)
    (path / "state.json").write_text("{")
    with pytest.raises(CircuitscopeError, match="unreadable state.json"):
        load_checkpoint(path)


RUNNER = """
import sys
from pathlib import Path
from circuitscope.data.store_reader import ActivationStore
from circuitscope.training.settings import TrainSettings
from circuitscope.training.sources import StoreSource
from circuitscope.training.trainer import train
settings = TrainSettings(n_features=64, batch_size=256, autocast="off", steps=300,
                         checkpoint_every=25, log_every=25, sparsity_coefficient=0.3)
source = StoreSource(ActivationStore(sys.argv[1]), 256, 0)
train(source, settings, Path(sys.argv[2]), resume=sys.argv[3] == "1", progress=False)
"""


def _runner(store: Path, out: Path, resume: bool) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-c", RUNNER, str(store), str(out), "1" if resume else "0"]
    return subprocess.Popen(args, env=env, stderr=subprocess.PIPE)


def _final_weights(out: Path) -> dict[str, torch.Tensor]:
    path = latest_checkpoint(out)
    assert path is not None
    return load_file(str(path / "weights.safetensors"))


@pytest.mark.slow
def test_resume_after_sigkill_reaches_the_same_weights(tiny_store: Path, tmp_path: Path):
    straight = _runner(tiny_store, tmp_path / "straight", resume=False)
    assert straight.wait(timeout=300) == 0
    killed = _runner(tiny_store, tmp_path / "killed", resume=False)
    deadline = time.time() + 240
    while latest_checkpoint(tmp_path / "killed") is None or (
        load_checkpoint(latest_checkpoint(tmp_path / "killed")).step < 75  # type: ignore[arg-type]
    ):
        assert killed.poll() is None and time.time() < deadline
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    stopped_at = load_checkpoint(latest_checkpoint(tmp_path / "killed")).step  # type: ignore[arg-type]
    assert 75 <= stopped_at < 300
    resumed = _runner(tiny_store, tmp_path / "killed", resume=True)
    assert resumed.wait(timeout=300) == 0
    a, b = _final_weights(tmp_path / "straight"), _final_weights(tmp_path / "killed")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    log = [json.loads(line)["step"] for line in (tmp_path / "killed" / "train_log.jsonl").open()]
    assert log == list(range(25, 301, 25))


def test_fused_adam_on_cpu_takes_the_default_adam_steps():
    from circuitscope.training.trainer import make_optimizer

    g = torch.Generator().manual_seed(0)
    start = [torch.randn(50, 7, generator=g), torch.randn(7, generator=g)]
    runs = []
    for fused in (True, False):
        params = [torch.nn.Parameter(t.clone()) for t in start]
        optimizer = make_optimizer(params, 1e-2) if fused else torch.optim.Adam(params, lr=1e-2)
        assert bool(optimizer.defaults.get("fused")) == fused
        for step in range(5):
            for p in params:
                p.grad = torch.sin(p.detach() * (step + 1))
            optimizer.step()
        runs.append(params)
    for got, want in zip(*runs, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
