"""`circuitscope trace` end to end on tiny folders, and its bad inputs."""

import json
from pathlib import Path

import pytest
import torch

from circuitscope.cli import main
from circuitscope.graph.files import load_graph
from circuitscope.graph.neuronpedia import schema_problems
from circuitscope.testing.tiny_graphs import write_tiny_folders


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_tiny_folders(tmp_path_factory.mktemp("trace"))


def test_trace_writes_graph_files_and_a_summary(folders, tmp_path, capsys):
    model, transcoder = folders
    out = tmp_path / "graph"
    args = ["trace", str(model), str(transcoder), "The capital of France is", "-o", str(out)]
    assert main([*args, "--no-progress", "--slug", "capital"]) == 0
    printed = capsys.readouterr().out
    for needle in (
        "replacement score",
        "completeness score",
        "peak memory",
        "scores and pruning",
        "top features",
    ):
        assert needle in printed
    graph, pruned = load_graph(out, "graph"), load_graph(out, "pruned")
    assert graph.metadata["bos_prepended"] is True
    assert graph.input_tokens[0] == "<bos>" and graph.prompt == "The capital of France is"
    assert 0 < pruned.n_nodes < graph.n_nodes
    assert (out / "pruned.png").stat().st_size > 5000
    assert 0.0 < graph.metadata["scores"]["replacement"] <= 1.0
    document = json.loads((out / "capital.json").read_text())
    assert schema_problems(document) == []
    config = json.loads((out / "config.json").read_text())
    assert config["_config"] == "TraceConfig" and config["node_threshold"] == 0.8


def test_named_targets_and_a_contrast(folders, tmp_path, capsys):
    model, transcoder = folders
    out = tmp_path / "g"
    args = ["trace", str(model), str(transcoder), "The capital of France is", "-o", str(out)]
    assert main([*args, "--no-progress", "--target", " the", "--contrast", " of", " the"]) == 0
    graph = load_graph(out)
    assert graph.n_logits == 2
    assert graph.logit_labels[0].startswith("' the'") and "−" in graph.logit_labels[1]
    assert int(graph.node_feature[-1]) == -1  # the contrast is a direction, not a token


@pytest.mark.parametrize(
    ("extra", "prompt", "message"),
    [
        ([], "   ", "empty prompt"),
        ([], "capital " * 80, "context is 64"),
        (["--target", "Parisian capital"], "The capital", "not one"),
        (["--contrast", " Paris"], "The capital", "contrast takes two tokens"),
        (["--batch-size", "0"], "The capital", "at least 1"),
        (["--node-threshold", "1.5"], "The capital", "node_threshold must be in (0, 1]"),
        (["--edge-threshold", "-1"], "The capital", "edge_threshold must be in (0, 1]"),
        (["--max-n-logits", "0"], "The capital", "max_n_logits must be at least 1"),
        (["--desired-logit-prob", "1.5"], "The capital", "desired_logit_prob must be in"),
        (["--desired-logit-prob", "nan"], "The capital", "desired_logit_prob must be in"),
        (["--slug", "../../escape"], "The capital", "must be a plain name"),
    ],
)
def test_bad_input_is_one_clear_line(folders, tmp_path, capsys, extra, prompt, message):
    model, transcoder = folders
    args = ["trace", str(model), str(transcoder), prompt, "-o", str(tmp_path / "x"), *extra]
    assert main([*args, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_a_transcoder_for_another_model_is_refused(tmp_path, capsys):
    llama_model, _ = write_tiny_folders(tmp_path / "a", "llama")
    _, gemma_transcoder = write_tiny_folders(tmp_path / "b", "gemma2")
    args = ["trace", str(llama_model), str(gemma_transcoder), "The capital", "--no-progress"]
    assert main([*args, "-o", str(tmp_path / "x")]) == 2
    assert "does not fit" in capsys.readouterr().err


@pytest.mark.parametrize(("dtype", "itemsize"), [("float32", 4), ("bfloat16", 2)])
def test_trace_on_cpu_sets_the_allocator_policy_for_its_gradients(
    folders, tmp_path, monkeypatch, dtype, itemsize
):
    """The backward passes' gradients [batch, seq, d] are in the model's dtype."""
    import circuitscope.allocator as allocator

    calls: list[tuple[int, str]] = []
    monkeypatch.setattr(allocator, "set_policy_for_passes", lambda *a: calls.append(a))
    model, transcoder = folders
    out = tmp_path / "g"
    args = ["trace", str(model), str(transcoder), "The capital of France is", "-o", str(out)]
    assert main([*args, "--no-progress", "--batch-size", "8", "--dtype", dtype]) == 0
    graph = load_graph(out)
    config = json.loads((model / "config.json").read_text())
    d_model = config.get("hidden_size") or config["n_embd"]
    assert calls == [(8 * len(graph.input_tokens) * d_model * itemsize, "auto")]
    assert main([*args, "--no-progress", "--batch-size", "8", "--heap-passes", "always"]) == 0
    assert calls[-1][1] == "always"


def test_a_circuit_tracer_resid_mid_clt_converts_inspects_and_traces(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """circuit-tracer's own CLT layout (W_enc_i / W_dec_i + config.yaml, no side file),
    reading hook_resid_mid, as every published mntss CLT does."""
    import torch
    import yaml

    from circuitscope.models.adapter import ModelAdapter
    from circuitscope.testing.tiny_models import tiny_model, tiny_tokenizer
    from circuitscope.testing.tiny_transcoders import tiny_transcoder
    from circuitscope.transcoders.formats import write_format
    from circuitscope.transcoders.transcoder import Transcoder

    model = tiny_model("llama")
    model.save_pretrained(tmp_path / "model")
    tiny_tokenizer().save_pretrained(tmp_path / "model")
    theirs = tmp_path / "their-clt"
    write_format(
        tiny_transcoder(ModelAdapter(model), "clt", input_site="resid_mid"),
        theirs,
        "circuit-tracer",
    )
    (theirs / "circuitscope.json").unlink()
    assert yaml.safe_load((theirs / "config.yaml").read_text())["feature_input_hook"] == (
        "hook_resid_mid"
    )
    assert main(["inspect", str(theirs)]) == 0
    assert "input_site         layers.{layer}.resid_mid" in capsys.readouterr().out
    assert main(["convert", str(theirs), str(tmp_path / "native")]) == 0
    assert Transcoder.load(tmp_path / "native").config.input_site == "layers.{layer}.resid_mid"
    graphs = []
    for folder in (theirs, tmp_path / "native"):
        out = tmp_path / f"graph-{folder.name}"
        args = ["trace", str(tmp_path / "model"), str(folder), "The capital of France is"]
        assert main([*args, "-o", str(out), "--no-progress"]) == 0
        graphs.append(load_graph(out))
    assert graphs[0].n_features > 0
    torch.testing.assert_close(graphs[0].edges, graphs[1].edges, atol=0, rtol=0)


@pytest.mark.parametrize("bos", ["auto", "never"])
def test_run_and_trace_report_the_same_probabilities(folders, tmp_path, capsys, bos):
    """One attention-sink policy for every command that runs the model."""
    model, transcoder = folders
    assert main(["run", str(model), "The capital of France is", "--top-k", "3", "--bos", bos]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert ("<bos> first" in printed[0]) == (bos == "auto")
    probabilities = [float(line.split()[-1]) for line in printed[1:4]]
    out = tmp_path / "g"
    args = ["trace", str(model), str(transcoder), "The capital of France is", "-o", str(out)]
    assert main([*args, "--no-progress", "--bos", bos, "--max-n-logits", "3"]) == 0
    graph = load_graph(out)
    traced = graph.node_value[graph.n_sources :].tolist()
    assert traced == pytest.approx(probabilities[: len(traced)], abs=6e-5)
    assert graph.metadata["bos_prepended"] == (bos == "auto")


def test_a_trace_folders_config_is_a_valid_config_file(folders, tmp_path):
    model, transcoder = folders
    first, second = tmp_path / "first", tmp_path / "second"
    args = ["trace", str(model), str(transcoder), "The capital of France is", "--no-progress"]
    assert main([*args, "-o", str(first), "--node-threshold", "0.7", "--max-n-logits", "2"]) == 0
    config = str(first / "config.json")
    assert main([*args, "-o", str(second), "--config", config]) == 0
    graph, pruned = load_graph(second), load_graph(second, "pruned")
    assert pruned.metadata["pruning"]["node_threshold"] == 0.7 and graph.n_logits <= 2


def test_the_summary_says_when_no_feature_survives_pruning(folders, tmp_path, capsys, monkeypatch):
    """A pruned graph of error and token nodes only (random transcoders at long prompts)
    gets a plain sentence, not an empty 'top features (of 0 kept)' list."""
    import dataclasses
    from types import SimpleNamespace

    import circuitscope.commands.attribution_commands as commands
    from circuitscope.graph.graph import ERROR, FEATURE

    real_summary = commands.print_summary

    def summary_without_features(result, top=10):
        real = result.pruned
        pruned = SimpleNamespace(
            n_nodes=real.n_nodes,
            n_edges=real.n_edges,
            node_influence=real.node_influence,
            node_kind=torch.full_like(real.node_kind, ERROR),
        )
        assert bool((real.node_kind == FEATURE).any())  # the real graph had some
        real_summary(dataclasses.replace(result, pruned=pruned))

    model, transcoder = folders
    args = ["trace", str(model), str(transcoder), "The capital of France is", "-o", str(tmp_path)]
    monkeypatch.setattr(commands, "print_summary", summary_without_features)
    assert main([*args, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "no feature node survives pruning" in printed and "top features" not in printed
