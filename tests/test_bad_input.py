"""Mistakes off the main path, command by command: exit status 2, exactly one line on
stderr, no traceback, and no file of the inputs changed (checksums before and after)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from circuitscope.cli import main
from circuitscope.testing.tiny_graphs import write_tiny_folders

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny model, a CLT that fits it, one that does not (3 layers vs gpt2's), a trace
    folder, a settings file with a bad value, a plain file, and a graph folder emptied."""
    root = tmp_path_factory.mktemp("inputs")
    model, transcoder = write_tiny_folders(root / "a", "llama")
    _, other = write_tiny_folders(root / "b", "gemma2")
    trace = root / "trace"
    assert (
        main(["trace", str(model), str(transcoder), PROMPT, "-o", str(trace), "--no-progress"]) == 0
    )
    broken = root / "broken-trace"
    broken.mkdir()
    for name in ("graph.safetensors", "pruned.safetensors", "pruned.json"):
        (broken / name).write_bytes((trace / name).read_bytes())
    (broken / "graph.json").write_text("{}")
    plain = root / "notes.txt"
    plain.write_text("mine")
    bad_settings = root / "bad.yaml"
    bad_settings.write_text("top_k: many\n")
    return {
        "model": model,
        "transcoder": transcoder,
        "other": other,
        "trace": trace,
        "broken": broken,
        "plain": plain,
        "bad_settings": bad_settings,
        "root": root,
    }


def _checksums(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "out" not in p.relative_to(root).parts
    }


CASES = [
    # trace
    (["trace", "{model}", "{transcoder}", PROMPT, "-o", "{transcoder}"], "other than a trace"),
    (["trace", "{model}", "{transcoder}", PROMPT, "-o", "{plain}"], "is a file"),
    (["trace", "{model}", "{transcoder}", PROMPT, "--slug", "../../escape"], "plain name"),
    (["trace", "{model}", "{transcoder}", PROMPT, "--node-threshold", "1.5"], "node_threshold"),
    (["trace", "{model}", "{transcoder}", PROMPT, "--edge-threshold", "-1"], "edge_threshold"),
    (["trace", "{model}", "{transcoder}", PROMPT, "--max-n-logits", "0"], "max_n_logits"),
    (["trace", "{model}", "{transcoder}", PROMPT, "--desired-logit-prob", "1.5"], "desired_logit"),
    (["trace", "{model}", "{other}", PROMPT], "does not fit"),
    (["trace", "{model}", "{root}/missing-tc", PROMPT], "missing-tc"),
    # intervene
    (["intervene", "{model}", "{transcoder}", PROMPT, "--set", "1:3:5=nan"], "finite"),
    (["intervene", "{model}", "{transcoder}", PROMPT, "--set", "1:3:5=inf"], "finite"),
    (["intervene", "{model}", "{other}", PROMPT, "--set", "1:3:5=1"], "does not fit"),
    (
        ["intervene", "{model}", "{transcoder}", PROMPT, "--set", "1:3:5=1", "-o", "{root}"],
        "folder",
    ),
    (
        ["intervene", "{model}", "{transcoder}", PROMPT, "--zero", "1:3:5", "-o", "{plain}/x"],
        "file",
    ),
    # validate
    (["validate", "{broken}"], "graph.json lacks"),
    (["validate", "{trace}", "-o", "{plain}"], "is a file"),
    (["validate", "{trace}", "-o", "{transcoder}"], "holds other files"),
    (["validate", "{trace}", "--transcoder", "{other}"], "does not fit"),
    (["validate", "{trace}", "--bos", "never"], "traced with --bos auto, not --bos never"),
    # eval
    (["eval", "{model}", "{other}"], "does not fit"),
    (["eval", "{model}", "{transcoder}", "--out", "{plain}"], "is a file"),
    # run, settings files
    (["run", "{model}", PROMPT, "--config", "{bad_settings}"], "top_k: expected int"),
    (["run", "{model}", PROMPT, "--config", "{root}/missing.yaml"], "cannot read settings"),
    (["train", "{trace}", "--resume"], "no train_config.json"),
    # convert, collect
    (["convert", "{transcoder}", "{transcoder}"], "exists and is not empty"),
    (["convert", "{root}/missing-tc", "{root}/out/c"], "missing-tc"),
    (["collect", "{model}", "{transcoder}"], "not empty"),
    (["collect", "{model}", "{plain}"], "is a file; give a folder to write"),
    (["convert", "{transcoder}", "{plain}"], "is a file; give a folder to write"),
    (["collect", "{model}", "{root}/out/s", "--tokens", "0"], "--tokens must be positive"),
    # features, feature
    (["features", "{model}", "{other}", "-o", "{root}/out/f"], "does not fit"),
    (["features", "{model}", "{transcoder}", "-o", "{transcoder}"], "holds other files"),
    (
        ["features", "{model}", "{transcoder}", "--histogram-bins", "8", "--intervals", "16"],
        "exceed",
    ),
    (["feature", "{trace}", "0", "1"], "not a finished features folder"),
    # serve, export-html, supernodes
    (["serve", "{root}/missing", "--no-open-browser"], "missing"),
    (["export-html", "{trace}", "-o", "{transcoder}"], "is a folder"),
    (["supernodes", "{plain}"], "is not a trace folder"),
]


@pytest.mark.parametrize(
    ("args", "message"), CASES, ids=[" ".join(c[0][:1] + c[0][3:]) for c in CASES]
)
def test_a_mistake_is_one_line_and_changes_nothing(
    inputs: dict[str, Path], args: list[str], message: str, capsys: pytest.CaptureFixture[str]
):
    root = inputs["root"]
    before = _checksums(root)
    filled = [arg.format(**inputs) for arg in args]
    if args[0] == "trace" and "-o" not in args:
        filled += ["-o", str(root / "out" / "trace")]
    if args[0] == "validate" and "-o" not in args:
        filled += ["-o", str(root / "out" / "validation")]
    assert main([*filled, "--no-progress"] if args[0] in ("trace", "train") else filled) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert message in err, err
    assert _checksums(root) == before


def test_a_half_written_trace_folder_is_never_taken_for_a_finished_one(inputs, tmp_path):
    """Files are written whole (temporary name, then a rename): an interrupted write leaves
    no graph.json behind, so the folder is not a trace folder."""
    from circuitscope.graph.trace_folder import is_trace_folder

    out = tmp_path / "g"
    args = ["trace", str(inputs["model"]), str(inputs["transcoder"]), PROMPT, "-o", str(out)]
    assert main([*args, "--no-progress"]) == 0
    assert is_trace_folder(out)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert json.loads((out / "graph.json").read_text())["prompt"] == PROMPT


@pytest.mark.parametrize("command", ["trace", "intervene", "eval"])
def test_a_transcoder_for_another_model_is_refused_before_the_weights_load(
    inputs, command, monkeypatch, capsys
):
    import circuitscope.models.loading as loading

    weights: list[str] = []
    original = loading._load_pretrained

    def counting(factory: str, *args, **kwargs):
        if factory == "AutoModelForCausalLM":
            weights.append(factory)
        return original(factory, *args, **kwargs)

    monkeypatch.setattr(loading, "_load_pretrained", counting)
    args = [command, str(inputs["model"]), str(inputs["other"])]
    if command != "eval":
        args += [PROMPT, "--zero", "1:2:3"] if command == "intervene" else [PROMPT]
    if command == "trace":
        args += ["-o", str(inputs["root"] / "out" / "early")]
    assert main(args) == 2
    assert "does not fit" in capsys.readouterr().err
    assert weights == []
