"""The `circuitscope` command: help, models, info, run, and one-line errors."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from circuitscope.cli import main
from circuitscope.commands import all_commands
from circuitscope.configs import missing_field_docs
from circuitscope.testing.tiny_models import save_tiny_folder


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_folder(tmp_path_factory.mktemp("tiny-gpt2"), "gpt2")


def test_every_config_field_has_a_docstring():
    for command in all_commands():
        assert missing_field_docs(command.config) == [], command.name


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in ("models", "info", "run"):
        assert name in out


def test_models_lists_all_architectures(capsys: pytest.CaptureFixture[str]):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("llama", "qwen2", "qwen3", "gemma2", "gemma3", "gpt2", "smollm2-135m"):
        assert name in out


def test_info_prints_widths_and_sites(tiny_folder: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["info", str(tiny_folder)]) == 0
    out = capsys.readouterr().out
    assert "gpt2" in out and "layers           3" in out and "d_mlp            64" in out
    assert "layers.0.mlp_out       output of transformer.h.0.mlp" in out


def test_run_prints_ranked_probabilities(tiny_folder: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["run", str(tiny_folder), "two plus two is", "--top-k", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    probabilities = [float(line.split()[-1]) for line in lines[1:]]
    assert len(probabilities) == 4
    assert probabilities == sorted(probabilities, reverse=True)
    assert 0 < sum(probabilities) <= 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "gpt-7", "hello"], "unknown model 'gpt-7'"),
        (["run", "./nowhere/model.gguf", "hello"], "no such GGUF file"),
        (["run", "TINY", "   "], "empty prompt"),
        (["run", "TINY", "hello", "--top-k", "0"], "--top-k must be at least 1"),
        (["run", "TINY", "hello", "--device", "cuda:7"], "no CUDA device"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], message: str, tiny_folder: Path, capsys: pytest.CaptureFixture[str]
):
    if not message.endswith("no CUDA device") or not _has_cuda():
        args = [str(tiny_folder) if a == "TINY" else a for a in args]
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        assert message in err


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_the_installed_command_exits_2_without_traceback(tmp_path: Path):
    corrupt = tmp_path / "broken.gguf"
    corrupt.write_bytes(b"GGUF" + b"\x00" * 64)
    env = {**os.environ, "CIRCUITSCOPE_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    process = subprocess.run(
        [sys.executable, "-m", "circuitscope", "run", str(corrupt), "hello"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert process.returncode == 2
    assert "Traceback" not in process.stderr
    assert "cannot read GGUF file" in process.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_bundled_smollm2_says_paris():
    process = subprocess.run(
        [sys.executable, "-m", "circuitscope", "run", "smollm2-135m", "The capital of France is"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == 0, process.stderr
    lines = process.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.endswith("-> next token:"))
    first = lines[header + 1]
    assert first.split()[0] == "1."
    assert "' Paris'" in first, first
    assert abs(float(first.split()[-1]) - 0.7491) < 0.01  # with the <|im_start|> sink first
