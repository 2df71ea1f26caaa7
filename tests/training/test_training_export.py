"""`export-checkpoint`: a checkpoint saved as the transcoder training would have saved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from training_fixtures import model_and_corpus_folders, transcoder_weights

from circuitscope.cli import main


def test_the_last_checkpoint_exports_to_the_final_transcoder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    model, corpus = model_and_corpus_folders(tmp_path, 200, seed=3)
    run = tmp_path / "run"
    args = ["train", str(model), str(run), "--n-features", "32", "--steps", "8"]
    args += ["--batch-size", "64", "--checkpoint-every", "4", "--keep-checkpoints", "4"]
    args += ["--corpus", str(corpus), "--context-length", "32", "--no-progress"]
    assert main(args) == 0
    assert main(["export-checkpoint", str(run)]) == 0
    assert "wrote the transcoder of step 8" in capsys.readouterr().out
    final, exported = (
        transcoder_weights(run / "transcoder"),
        transcoder_weights(run / "transcoder-step-8"),
    )
    assert final.keys() == exported.keys() and len(final) > 0
    assert all(torch.equal(final[key], exported[key]) for key in final)
    assert main(["export-checkpoint", str(run), "--step", "4", "--out", str(tmp_path / "s4")]) == 0
    early = transcoder_weights(tmp_path / "s4")
    assert not all(torch.equal(final[key], early[key]) for key in final)
    training = json.loads((tmp_path / "s4" / "config.json").read_text())["training"]
    assert training["checkpoint_step"] == 4 and training["tokens"] == 4 * 64

    assert main(["export-checkpoint", str(run), "--step", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("has no checkpoint of step 5 (it has: step-00000004, step-00000008)")
    assert main(["export-checkpoint", str(tmp_path)]) == 2
