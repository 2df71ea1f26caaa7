"""A random sample of edges of a real-size graph against measured perturbations.

The bundled SmolLM2-135M (30 layers, in fp64 so that the measurement resolves
the smallest edges) with a random, realistically sparse transcoder. Tiny models
are checked on all columns (test_edges_match_perturbations.py).
"""

from typing import Literal

import pytest
import torch
from attribution_perturbation import measured_columns, source_columns

from circuitscope.attribution.attribute import AttributionLimits, attribute
from circuitscope.attribution.prompts import prompt_ids
from circuitscope.attribution.replacement import build_replacement
from circuitscope.attribution.targets import top_logit_targets
from circuitscope.graph.graph import ERROR, FEATURE, TOKEN
from circuitscope.models.adapter import ModelAdapter
from circuitscope.models.loading import load_model
from circuitscope.testing.sparse_random import sparse_random_transcoder

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("kind", "input_site"), [("clt", "mlp_in"), ("plt", "mlp_in"), ("clt", "resid_mid")]
)
def test_sampled_edges_equal_measured_perturbations_on_smollm2(
    kind: Literal["clt", "plt"], input_site: str
):
    loaded = load_model("smollm2-135m")
    adapter, tokenizer = ModelAdapter(loaded.adapter.model.double()), loaded.tokenizer
    transcoder = sparse_random_transcoder(
        adapter, tokenizer, kind, n_features=512, l0=8.0, dtype="float64", input_site=input_site
    )
    ids, _ = prompt_ids(tokenizer, "The capital of France is")
    rep = build_replacement(adapter, transcoder, ids)
    targets = top_logit_targets(adapter, tokenizer, rep.recording.logits[0, -1], 3)
    limits = AttributionLimits(max_feature_nodes=48, batch_size=16)
    graph = attribute(rep, targets, limits, progress=False).graph
    directions = torch.stack([target.vector for target in targets])
    columns = source_columns(graph)
    generator = torch.Generator().manual_seed(0)
    sample = []
    for kind_code in (FEATURE, ERROR, TOKEN):
        of_kind = columns[graph.node_kind[columns] == kind_code]
        sample += of_kind[torch.randperm(len(of_kind), generator=generator)[:8]].tolist()
    measured = measured_columns(rep, graph, sample, directions)
    predicted = graph.edges[:, sample]  # rows: the feature and logit targets
    kinds = graph.node_kind[sample]
    for kind_code in (FEATURE, ERROR, TOKEN):
        block = kinds == kind_code
        scale = float(predicted[:, block].abs().max())
        assert scale > 0, "vacuous: no edges of this kind in the sample"
        torch.testing.assert_close(
            predicted[:, block], measured[:, block], atol=1e-9 * scale, rtol=1e-7
        )
