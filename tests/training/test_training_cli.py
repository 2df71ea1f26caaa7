"""`collect`, `train` and `eval` from the command line, on a tiny model and text files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from training_fixtures import model_and_corpus_folders

from circuitscope.cli import main
from circuitscope.testing.tiny_models import tiny_model


@pytest.fixture(scope="module")
def model_and_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    model, corpus = model_and_corpus_folders(tmp_path_factory.mktemp("cli"), 600, seed=1)
    (corpus / "broken.bin").write_bytes(b"\x00\xff")
    return model, corpus


def test_collect_train_eval(
    model_and_corpus: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    model, corpus = model_and_corpus
    store, run = tmp_path / "store", tmp_path / "run"
    args = ["collect", str(model), str(store), "--corpus", str(corpus), "--tokens", "6000"]
    assert main([*args, "--context-length", "32", "--shard-tokens", "1000"]) == 0
    captured = capsys.readouterr()
    assert "wrote 6000 tokens x 3 layers in 6 shards" in captured.out
    assert "1 files skipped" in captured.out and "broken.bin: binary" in captured.err
    assert json.loads((store / "collect_config.json").read_text())["tokens"] == 6000
    settings = tmp_path / "settings.yaml"
    settings.write_text("n_features: 32\nsteps: 60\nbatch_size: 200\nlog_every: 20\n")
    train_args = ["train", str(store), str(run), "--config", str(settings), "--no-progress"]
    assert main([*train_args, "--sparsity-coefficient", "0.3", "--autocast", "off"]) == 0
    out = capsys.readouterr().out
    assert "trained CLT (32 features x 3 layers)" in out
    saved = json.loads((run / "transcoder" / "train_config.json").read_text())
    assert saved["n_features"] == 32 and saved["steps"] == 60 and saved["batch_size"] == 200
    assert (run / "training_curves.png").stat().st_size > 1000
    eval_args = ["eval", str(model), str(run / "transcoder"), "--corpus", str(corpus)]
    assert main([*eval_args, "--context-length", "32", "--tokens", "600"]) == 0
    report = json.loads((run / "transcoder" / "eval.json").read_text())
    assert report["n_tokens"] >= 600 and len(report["nmse_per_layer"]) == 3
    assert 0 < report["nmse"] < 1.0 and 0 < report["l0"] <= 32
    for name in ("replacement", "open_loop"):
        figures = report[name]
        assert 0 <= figures["top1_agreement"] <= 1 and figures["kl"] >= 0
        assert figures["loss_delta"] == pytest.approx(figures["loss"] - report["loss_original"])
    assert "top-1 agreement" in capsys.readouterr().out


def test_train_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    (tmp_path / "empty").mkdir()
    assert main(["train", str(tmp_path / "empty"), str(tmp_path / "run")]) == 2
    assert "neither an activation store nor a model folder" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("n_featurez: 3\n")
    assert main(["train", str(tmp_path / "x"), str(tmp_path / "run"), "--config", str(bad)]) == 2
    assert "unknown settings n_featurez" in capsys.readouterr().err


def test_resid_mid_store_trains_a_resid_mid_transcoder(
    model_and_corpus: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """--input-site resid_mid records the residual before the MLP's norm (the same tokens
    as an mlp_in store: its rows, through the MLP's norm, are the mlp_in store's), and the
    trained transcoder reads it (so trace, intervene and eval use it)."""
    import torch
    from safetensors.torch import load_file

    from circuitscope.data.store_format import MANIFEST
    from circuitscope.models.adapter import ModelAdapter
    from circuitscope.transcoders.transcoder import Transcoder

    model, corpus = model_and_corpus
    rows = {}
    for site in ("mlp_in", "resid_mid"):
        store = tmp_path / site
        args = ["collect", str(model), str(store), "--corpus", str(corpus), "--tokens", "500"]
        args += ["--context-length", "32", "--input-site", site, "--store-dtype", "bfloat16"]
        assert main(args) == 0
        assert json.loads((store / MANIFEST).read_text())["input_site"] == site
        shards = sorted(store.glob("shard_*.safetensors"))
        rows[site] = torch.cat([load_file(path)["mlp_in"] for path in shards]).double()
    adapter = ModelAdapter(tiny_model("llama", dtype=torch.float64))
    norm = adapter.layers[1].get_submodule(adapter.spec.mlp_norm)
    with torch.no_grad():
        normed = norm(rows["resid_mid"][:, 1])
    assert not torch.allclose(rows["resid_mid"], rows["mlp_in"], atol=0.1)
    torch.testing.assert_close(normed, rows["mlp_in"][:, 1], atol=0.05, rtol=0.02)  # bf16
    run = tmp_path / "run"
    train_args = ["train", str(tmp_path / "resid_mid"), str(run), "--no-progress"]
    train_args += ["--n-features", "16", "--steps", "5", "--batch-size", "100"]
    assert main([*train_args, "--autocast", "off"]) == 0
    trained = Transcoder.load(run / "transcoder")
    assert trained.config.input_site == "layers.{layer}.resid_mid"
    capsys.readouterr()
    wrong = ["train", str(tmp_path / "mlp_in"), str(tmp_path / "r2"), "--input-site", "resid_mid"]
    assert main(wrong) == 2
    assert "holds mlp_in activations" in capsys.readouterr().err


def test_every_saved_config_is_a_valid_config_file(
    model_and_corpus: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """collect, train and eval save their settings; each file is a valid --config for its
    command, numbers read by the field's type (YAML 1.1 reads 1e-3 as a string)."""
    model, corpus = model_and_corpus
    store = tmp_path / "store"
    args = ["collect", str(model), str(store), "--corpus", str(corpus), "--tokens", "800"]
    assert main([*args, "--context-length", "32", "--seed", "3"]) == 0
    again = tmp_path / "store2"
    saved = store / "collect_config.json"
    assert main(["collect", str(model), str(again), "--config", str(saved)]) == 0
    assert json.loads((again / "collect_config.json").read_text())["seed"] == 3
    settings = tmp_path / "settings.yaml"
    settings.write_text("n_features: 16\nsteps: 4\nbatch_size: 100\nlr: 1e-3\n")
    settings.write_text(settings.read_text() + "preact_coefficient: 3e-06\nautocast: 'off'\n")
    run = tmp_path / "run"
    assert main(["train", str(store), str(run), "--config", str(settings), "--no-progress"]) == 0
    saved_train = json.loads((run / "train_config.json").read_text())
    assert saved_train["lr"] == 1e-3 and saved_train["preact_coefficient"] == 3e-6
    rerun = tmp_path / "rerun"
    args = ["train", str(store), str(rerun), "--config", str(run / "train_config.json")]
    assert main([*args, "--no-progress", "--steps", "6"]) == 0  # the command line wins
    assert json.loads((rerun / "train_config.json").read_text())["steps"] == 6
    assert main(["train", str(rerun), "--resume", "--no-progress"]) == 0  # OUT alone
    finished = capsys.readouterr().out  # resumed at its last step: nothing ran, no NaN figures
    assert "the run had finished its 6 steps" in finished and "nan" not in finished
    eval_args = ["eval", str(model), str(run / "transcoder"), "--corpus", str(corpus)]
    assert main([*eval_args, "--context-length", "32", "--tokens", "64"]) == 0
    saved_eval = run / "transcoder" / "eval_config.json"
    assert main(["eval", str(model), str(run / "transcoder"), "--config", str(saved_eval)]) == 0
    capsys.readouterr()
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: many\n")
    assert main(["train", str(store), str(tmp_path / "r3"), "--config", str(bad)]) == 2
    assert "steps: expected int, got 'many'" in capsys.readouterr().err
