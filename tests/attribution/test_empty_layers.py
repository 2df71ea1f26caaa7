"""Layers where no feature fires, and prompts where none fires at all: the graph is just
smaller (error nodes and tokens carry everything), from memory and from lazy files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from attribution_perturbation import measured_columns, source_columns

from circuitscope.attribution.attribute import AttributionLimits, attribute
from circuitscope.attribution.replacement import build_replacement
from circuitscope.attribution.targets import top_logit_targets
from circuitscope.cli import main
from circuitscope.graph.files import load_graph
from circuitscope.graph.graph import ERROR, FEATURE
from circuitscope.models.adapter import ModelAdapter
from circuitscope.testing.tiny_models import tiny_model, tiny_tokenizer
from circuitscope.testing.tiny_transcoders import tiny_transcoder
from circuitscope.transcoders.transcoder import Transcoder

PROMPT = "The capital of France is"


def _silenced(adapter: ModelAdapter, kind: str, layers: list[int], folder: Path) -> Transcoder:
    """A tiny fp64 transcoder whose features never fire in `layers`, reopened lazily."""
    transcoder = tiny_transcoder(adapter, kind, dtype="float64", input_site="resid_mid")  # type: ignore[arg-type]
    for layer in layers:
        threshold = transcoder.layer(layer).activation.threshold
        assert isinstance(threshold, torch.Tensor)
        with torch.no_grad():
            threshold.fill_(1e9)
    transcoder.save(folder)
    return Transcoder.load(folder)


@pytest.mark.parametrize("kind", ["clt", "plt"])
@pytest.mark.parametrize("silent", [[1], [0, 1, 2]], ids=["one-layer", "every-layer"])
def test_silent_layers_give_a_smaller_exact_graph(kind: str, silent: list[int], tmp_path: Path):
    adapter = ModelAdapter(tiny_model("llama", dtype=torch.float64))
    transcoder = _silenced(adapter, kind, silent, tmp_path / "tc")
    tokenizer = tiny_tokenizer()
    ids = torch.tensor([[tokenizer.bos_token_id, *tokenizer(PROMPT).input_ids]])
    none = transcoder.active_decoders(1, torch.zeros(0, dtype=torch.long))  # read lazily
    assert tuple(none.shape) == (0, transcoder.config.n_outputs(1), adapter.d_model)
    rep = build_replacement(adapter, transcoder, ids)
    assert not bool(torch.isin(rep.features.layer, torch.tensor(silent)).any())
    targets = top_logit_targets(adapter, tokenizer, rep.recording.logits[0, -1], 3)
    graph = attribute(rep, targets, AttributionLimits(batch_size=8), progress=False).graph
    n_features = int((graph.node_kind == FEATURE).sum())
    assert n_features == len(rep.features)
    assert (n_features == 0) == (len(silent) == adapter.n_layers)
    columns = source_columns(graph).tolist()
    directions = torch.stack([t.vector for t in targets])
    measured = measured_columns(rep, graph, columns, directions)
    torch.testing.assert_close(graph.edges[:, columns], measured, atol=1e-9, rtol=1e-7)
    errors = graph.node_kind[columns] == ERROR
    assert graph.edges[:, columns][:, errors].abs().max() > 1e-3


def test_trace_command_with_a_silent_layer(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    model = tiny_model("llama")
    model_dir = tmp_path / "model"
    model.save_pretrained(model_dir)
    tiny_tokenizer().save_pretrained(model_dir)
    adapter = ModelAdapter(model)
    transcoder = tiny_transcoder(adapter, "clt")
    with torch.no_grad():
        transcoder.layer(1).activation.threshold.fill_(1e9)  # type: ignore[union-attr]
    transcoder.save(tmp_path / "tc")
    out = tmp_path / "graph"
    args = ["trace", str(model_dir), str(tmp_path / "tc"), PROMPT, "-o", str(out)]
    assert main([*args, "--no-progress"]) == 0
    graph = load_graph(out)
    layers = graph.node_layer[graph.node_kind == FEATURE]
    assert len(layers) > 0 and not bool((layers == 1).any())
    assert "replacement score" in capsys.readouterr().out
