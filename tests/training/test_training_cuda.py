"""Training on CUDA (run with `pytest -m gpu` where a GPU is): the same steps as on the
CPU, straight from a model on the GPU, and the presets' CUDA scale."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from circuitscope.cli import main
from circuitscope.testing.tiny_graphs import write_tiny_corpus, write_tiny_folders
from circuitscope.transcoders.transcoder import Transcoder

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

STEPS = ["--steps", "8", "--log-every", "1", "--batch-size", "60", "--no-progress"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cuda-train")
    model, _ = write_tiny_folders(root)
    corpus = write_tiny_corpus(root, 20)
    return {"model": model, "corpus": corpus, "root": root}


def _train(folders: dict[str, Path], name: str, *extra: str) -> list[dict]:
    out = folders["root"] / name
    args = ["train", str(folders["model"]), str(out), "--corpus", str(folders["corpus"])]
    assert main([*args, "--context-length", "16", *STEPS, *extra]) == 0
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("kind", ["clt", "plt-topk"])
def test_fp32_steps_on_cuda_follow_the_cpu_steps(folders, kind):
    """Recording from the model and training on the GPU in fp32: the losses of every step
    equal the CPU run's (the same batches, the same seeded initialisation)."""
    extra = ["--kind", "clt"] if kind == "clt" else ["--kind", "plt", "--activation", "topk"]
    extra += ["--n-features", "24", "--k", "4", "--autocast", "off", "--no-overlap"]
    cpu = _train(folders, f"cpu-{kind}", *extra, "--device", "cpu")
    cuda = _train(folders, f"cuda-{kind}", *extra, "--device", "cuda")
    assert [e["step"] for e in cuda] == [e["step"] for e in cpu] == list(range(1, 9))
    first = torch.tensor([cpu[0]["loss"], cuda[0]["loss"]])
    torch.testing.assert_close(first[1], first[0], rtol=1e-4, atol=0)
    losses = torch.tensor([[e["loss"] for e in cpu], [e["loss"] for e in cuda]])
    torch.testing.assert_close(losses[1], losses[0], rtol=2e-3, atol=0)


def test_the_demo_preset_trains_on_cuda_in_bf16(folders):
    """`--preset demo --device cuda` takes the preset's CUDA scale (16,384 features), records
    in bf16 with the producer thread, trains under bf16 autocast with the skip term, and
    the transcoder it saves lives on the tiny model's 3 layers and reconstructs."""
    log = _train(folders, "preset", "--preset", "demo", "--device", "cuda")
    saved = json.loads((folders["root"] / "preset" / "train_config.json").read_text())
    assert saved["n_features"] == 16384 and saved["batch_size"] == 60  # the flag wins
    assert saved["model_dtype"] == "bfloat16" and saved["skip_connection"] is True
    assert all(torch.isfinite(torch.tensor(e["loss"])) for e in log)
    assert log[-1]["l0"] == pytest.approx(32, abs=0.5)
    transcoder = Transcoder.load(folders["root"] / "preset" / "transcoder")
    assert transcoder.config.n_layers == 3 and transcoder.config.n_features == [16384] * 3
