"""`circuitscope convert` and `circuitscope inspect`."""

from __future__ import annotations

from pathlib import Path

import pytest
from transcoder_fixtures import assert_same_outputs, make_transcoder, random_inputs

from circuitscope.cli import main
from circuitscope.transcoders.transcoder import Transcoder


def test_convert_native_to_circuit_tracer_and_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = make_transcoder("clt")
    original.save(tmp_path / "native")
    assert (
        main(["convert", str(tmp_path / "native"), str(tmp_path / "ct"), "--to", "circuit-tracer"])
        == 0
    )
    assert (tmp_path / "ct" / "config.yaml").is_file()
    assert "wrote CLT (3 layers, 48 features)" in capsys.readouterr().out
    assert main(["convert", str(tmp_path / "ct"), str(tmp_path / "back")]) == 0
    assert_same_outputs(original, Transcoder.load(tmp_path / "back"), random_inputs())


def test_inspect_prints_config_sizes_and_memory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    transcoder = make_transcoder("clt")
    transcoder.save(tmp_path)
    assert main(["inspect", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "(native)" in out
    assert "kind               clt" in out
    assert "n_features         [16, 16, 16]" in out
    assert f"parameters         {transcoder.n_parameters():,}" in out
    assert "memory (all)" in out and "memory (1 layer)" in out and "on disk" in out


def test_bad_input_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("circuitscope inspect: error: no such file")

    make_transcoder("clt").save(tmp_path / "clt")
    assert main(["convert", str(tmp_path / "clt"), str(tmp_path / "sp"), "--to", "sparsify"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "sparsify holds per-layer transcoders" in err

    assert main(["convert", str(tmp_path / "clt"), str(tmp_path / "clt"), "--to", "native"]) == 2
    assert "not empty (pass --force" in capsys.readouterr().err
