"""One BOS policy for every command that runs the model: collect, train and eval show the
one they used and record it (the store's manifest, the transcoder's training data,
eval.json); validate refuses a policy other than the graph's before the model loads."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from circuitscope.cli import main
from circuitscope.testing.tiny_graphs import write_tiny_folders
from circuitscope.testing.tiny_models import TRAINING_TEXT
from circuitscope.transcoders.transcoder import Transcoder

TRAIN = ["--n-features", "16", "--steps", "3", "--batch-size", "100", "--autocast", "off"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bos")
    model, transcoder = write_tiny_folders(root)
    lines = TRAINING_TEXT.splitlines()
    corpus = root / "corpus.jsonl"  # 400 documents, about 20 held out
    documents = [" ".join(random.Random(i).sample(lines, 4)) for i in range(400)]
    corpus.write_text("".join(json.dumps({"text": d}) + "\n" for d in documents))
    return {"root": root, "model": model, "transcoder": transcoder, "corpus": corpus}


def _collect(folders: dict[str, Path], store: Path, *extra: str) -> int:
    args = ["collect", str(folders["model"]), str(store), "--corpus", str(folders["corpus"])]
    return main([*args, "--context-length", "32", "--tokens", "320", *extra])


def test_collect_and_train_from_its_store_record_and_show_the_bos(folders, tmp_path, capsys):
    auto, never = tmp_path / "auto", tmp_path / "never"
    assert _collect(folders, auto) == 0
    assert "contexts start with '<bos>', id 1 (--bos auto)" in capsys.readouterr().out
    assert _collect(folders, never, "--bos", "never") == 0
    assert "contexts start with no BOS (--bos never)" in capsys.readouterr().out
    manifests = {p.name: json.loads((p / "manifest.json").read_text()) for p in (auto, never)}
    assert [(m["bos"], m["sink_token_id"]) for m in manifests.values()] == [
        ("auto", 1),
        ("never", None),
    ]
    run = tmp_path / "run"
    assert main(["train", str(never), str(run), "--no-progress", *TRAIN]) == 0
    assert "contexts start with no BOS (--bos never), as collected" in capsys.readouterr().out
    data = Transcoder.load(run / "transcoder").config.training["data"]
    assert (data["source"], data["bos"], data["sink_token_id"]) == ("store", "never", None)
    wrong = ["train", str(never), str(tmp_path / "r2"), "--bos", "always", *TRAIN]
    assert main(wrong) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("was collected with --bos never; --bos always needs a store collected "
                        "with it (or train from the model)")  # fmt: skip
    assert len(err.splitlines()) == 1


def test_train_from_the_model_and_eval_use_the_given_bos(folders, tmp_path, capsys):
    run = tmp_path / "run"
    source = [str(folders["model"]), str(run), "--corpus", str(folders["corpus"])]
    args = ["train", *source, "--context-length", "32", "--bos", "never", "--no-progress"]
    assert main([*args, *TRAIN]) == 0
    assert "contexts start with no BOS (--bos never)\n" in capsys.readouterr().out
    data = Transcoder.load(run / "transcoder").config.training["data"]
    assert data == {"source": "model", "model": str(folders["model"]), "bos": "never"}
    evaluate = ["eval", str(folders["model"]), str(folders["transcoder"]), "--tokens", "64"]
    evaluate += ["--corpus", str(folders["corpus"]), "--context-length", "32"]
    for bos, shown, sink in (("never", "no BOS", None), ("always", "'<bos>', id 1", 1)):
        out = tmp_path / f"eval-{bos}"
        assert main([*evaluate, "--out", str(out), "--bos", bos]) == 0
        assert f"contexts start with {shown} (--bos {bos})" in capsys.readouterr().out
        report = json.loads((out / "eval.json").read_text())
        assert (report["data"]["bos"], report["data"]["sink_token_id"]) == (bos, sink)


def test_validate_refuses_another_bos_than_the_graphs_before_the_model_loads(
    folders, monkeypatch, capsys
):
    import circuitscope.models.loading as loading

    trace = folders["root"] / "trace"
    args = ["trace", str(folders["model"]), str(folders["transcoder"]), "The capital of"]
    assert main([*args, "--bos", "always", "-o", str(trace), "--no-progress"]) == 0
    loads: list[str] = []
    monkeypatch.setattr(loading, "load_model", lambda *a, **k: loads.append("model"))
    capsys.readouterr()
    assert main(["validate", str(trace), "--bos", "auto"]) == 2
    err = capsys.readouterr().err.strip()
    expected = f"{trace} was traced with --bos always, not --bos auto: validate replays"
    assert err == f"circuitscope validate: error: {expected} the graph's tokens " + (
        "(trace again to change the BOS)"
    )
    assert loads == [] and not (trace / "validation").exists()
