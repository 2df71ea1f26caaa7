"""`train --preset`: the presets resolve to their documented settings; a preset run
resumes exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from training_fixtures import model_and_corpus_folders, rewind_to_checkpoint, transcoder_weights

from circuitscope.cli import main, parse_command
from circuitscope.commands.training_commands import TrainConfig, with_preset
from circuitscope.training.presets import preset_values

# The recipes as docs/training.md states them ("Presets"); on CUDA wider and longer.
_DEMO = dict(
    kind="plt",
    n_features=2048,
    activation="topk",
    k=32,
    steps=600,
    skip_connection=True,
    encoder_init="data",
    context_length=129,
)
_QUALITY = dict(
    kind="plt", n_features=4096, activation="topk", k=32, steps=2800, skip_connection=True
)
DOCUMENTED = {
    ("demo", "cpu"): _DEMO,
    ("quality", "cpu"): _QUALITY,
    ("demo", "cuda"): {**_DEMO, "n_features": 8192, "steps": 2400},
    ("quality", "cuda"): {**_QUALITY, "n_features": 16384, "steps": 12000},
}


@pytest.mark.parametrize(("name", "device"), sorted(DOCUMENTED))
def test_presets_resolve_to_the_documented_settings(name: str, device: str):
    config = with_preset(TrainConfig(source="m", out="o", preset=name, device=device))  # type: ignore[arg-type]
    for key, value in DOCUMENTED[name, device].items():
        assert getattr(config, key) == value, key
    batch = 1024 if device == "cpu" else 4096
    assert config.batch_size == batch and config.model_dtype == "bfloat16"
    tokens = config.steps * config.batch_size
    documented_tokens = {
        ("demo", "cpu"): 614_400,
        ("quality", "cpu"): 2_867_200,
        ("demo", "cuda"): 9_830_400,
        ("quality", "cuda"): 49_152_000,
    }
    assert tokens == documented_tokens[name, device]


def test_options_given_win_over_the_preset():
    config = TrainConfig(source="m", out="o", preset="quality", n_features=512, lr=3e-4)
    resolved = with_preset(config)
    assert resolved.n_features == 512 and resolved.lr == 3e-4  # given
    assert resolved.k == 32 and resolved.steps == 2800  # from the preset
    assert with_preset(TrainConfig(source="m", out="o")) == TrainConfig(source="m", out="o")


def test_an_unknown_preset_is_refused():
    with pytest.raises(ValueError, match="unknown preset 'fast'"):
        preset_values("fast", "cpu")


def test_a_preset_run_resumes_exactly(tmp_path: Path):
    model, corpus = model_and_corpus_folders(tmp_path, 200, seed=2)
    small = ["--n-features", "32", "--steps", "8", "--batch-size", "64", "--k", "4"]
    common = [
        *small,
        "--checkpoint-every",
        "4",
        "--log-every",
        "1",
        "--keep-checkpoints",
        "4",
        "--no-progress",
    ]
    common += ["--preset", "demo", "--corpus", str(corpus), "--context-length", "32"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(["train", str(model), str(whole), *common]) == 0
    assert main(["train", str(model), str(cut), *common]) == 0
    saved = json.loads((whole / "train_config.json").read_text())
    assert saved["preset"] == "demo" and saved["kind"] == "plt" and saved["k"] == 4
    assert saved["activation"] == "topk" and saved["model_dtype"] == "bfloat16"
    # Undo the second half of `cut`: back to its step-4 checkpoint, then resume.
    rewind_to_checkpoint(cut, 4, 8)
    assert main(["train", str(cut), "--resume", "--no-progress"]) == 0
    a, b = transcoder_weights(whole / "transcoder"), transcoder_weights(cut / "transcoder")
    assert a.keys() == b.keys() and len(a) > 0
    assert all(torch.equal(a[key], b[key]) for key in a)
    # the log's clocks go on from where the resumed checkpoint's last line left them
    log = [json.loads(line) for line in (cut / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6, 7, 8]
    for key in ("elapsed_s", "cpu_s"):
        times = [r[key] for r in log]
        assert times == sorted(times) and times[-1] > 0, key


def test_an_option_given_at_its_default_still_wins_over_the_preset():
    """`--no-skip-connection` and `--aux-k 0` switch off what a preset turns on, though
    they equal the options' defaults (they used to be taken as not given)."""
    _, quality = parse_command(["train", "m", "o", "--preset", "quality", "--no-skip-connection"])
    assert quality.skip_connection is False and quality.steps == 2800
    _, demo = parse_command(["train", "m", "o", "--preset", "demo", "--no-skip-connection"])
    assert demo.skip_connection is False and demo.steps == 600
    _, untouched = parse_command(["train", "m", "o", "--preset", "quality"])
    assert untouched.skip_connection is True


def test_a_settings_file_wins_over_the_preset_and_the_command_line_over_both(tmp_path: Path):
    settings = tmp_path / "settings.yaml"
    settings.write_text("k: 8\nsteps: 40\nskip_connection: false\n")
    argv = ["train", "m", "o", "--preset", "quality", "--config", str(settings)]
    _, from_file = parse_command(argv)
    assert (from_file.k, from_file.steps, from_file.skip_connection) == (8, 40, False)
    assert from_file.n_features == 4096  # not in the file: the preset's
    # --k 16 is k's default: given on the command line, it still wins over the file's 8
    _, given = parse_command([*argv, "--steps", "1000", "--k", "16"])
    assert (given.k, given.steps) == (16, 1000)
