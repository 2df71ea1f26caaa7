"""Two processes with torchrun (gloo, CPU) take the same steps as one process."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ddp_runs import run_one_and_two
from safetensors.torch import load_file
from training_fixtures import tiny_store_fixture  # noqa: F401

SCRIPT = """
import sys
from pathlib import Path
from circuitscope.data.store_reader import ActivationStore
from circuitscope.training.settings import TrainSettings
from circuitscope.training.sources import StoreSource
from circuitscope.training.trainer import train
settings = TrainSettings(n_features=32, batch_size=256, autocast="off", steps=30,
                         checkpoint_every=0, log_every=10, sparsity_coefficient=0.3)
source = StoreSource(ActivationStore(sys.argv[1]), 256, 0)
train(source, settings, Path(sys.argv[2]), progress=False)
"""


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "checkpoints" / "step-00000030" / "weights.safetensors"))


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(tiny_store: Path, tmp_path: Path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    store = str(tiny_store)
    run_one_and_two([str(script)], [store, str(tmp_path / "one")], [store, str(tmp_path / "two")])
    one, two = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert one.keys() == two.keys()
    moved = 0.0
    for name in one:
        assert torch.allclose(one[name], two[name], atol=2e-5, rtol=1e-4), name
        moved = max(moved, float((one[name] - two[name]).abs().max()))
    assert moved < 2e-5
