"""`eval` splices the transcoder in through the model adapter, skip term and input site
included: its closed-loop run equals an independent fixed-point computation."""

from __future__ import annotations

import pytest
import torch

from circuitscope.models import sites
from circuitscope.models.adapter import ModelAdapter
from circuitscope.testing.tiny_models import tiny_model, tiny_tokenizer
from circuitscope.testing.tiny_transcoders import Variant, tiny_exact_pair, tiny_transcoder
from circuitscope.training.evaluate import evaluate, spliced_outputs
from circuitscope.transcoders.transcoder import Transcoder

SPLICED = (
    Variant("clt"),
    Variant("plt", skip=True),
    Variant("clt", "resid_mid"),
    Variant("plt", "resid_mid", skip=True),
)


def _ids() -> torch.Tensor:
    tokenizer = tiny_tokenizer()
    texts = ["the river ran past the mill and on", "two plus two is four and three is"]
    rows = [[tokenizer.bos_token_id, *tokenizer(text).input_ids][:9] for text in texts]
    return torch.tensor(rows)


def _fixed_point_logits(adapter: ModelAdapter, transcoder: Transcoder, ids: torch.Tensor):
    """The closed loop without `spliced_outputs`: splice constant reconstructions, read the
    inputs they lead to, reconstruct again. Layer l's input depends on layers < l only,
    so n_layers + 1 rounds reach the fixed point exactly."""
    kind = transcoder.config.input_kind
    n = adapter.n_layers
    capture = [sites.transcoder_input(kind, layer) for layer in range(n)]
    clean = adapter.run(ids, capture=[*capture, *(sites.mlp_out(i) for i in range(n))]).cache
    cache = clean
    for _ in range(n + 1):
        inputs = {layer: cache[capture[layer]][:, 1:] for layer in range(n)}
        _, recon = transcoder.forward(inputs)
        outputs = {
            layer: torch.cat([clean[sites.mlp_out(layer)][:, :1], recon[layer]], dim=1)
            for layer in range(n)
        }
        result = adapter.run(ids, mlp_out=outputs, capture=capture)
        cache = result.cache
    return result.logits


@pytest.mark.parametrize("variant", SPLICED, ids=lambda v: v.name)
def test_closed_loop_splice_equals_the_fixed_point(variant: Variant):
    adapter, transcoder = tiny_exact_pair("llama", variant)
    ids = _ids()
    with torch.no_grad():
        expected = _fixed_point_logits(adapter, transcoder, ids)
        clean = adapter.run(ids, capture=[sites.mlp_out(i) for i in range(adapter.n_layers)])
        outputs = {i: clean.cache[sites.mlp_out(i)] for i in range(adapter.n_layers)}
        splice = spliced_outputs(transcoder, outputs)
        kind = transcoder.config.input_kind
        spliced = adapter.run(ids, mlp_out=splice, live_input=kind).logits
    torch.testing.assert_close(spliced, expected, atol=1e-10, rtol=1e-10)
    assert (spliced - clean.logits).abs().max() > 1e-2  # the splice changed something

    report = evaluate(adapter, transcoder, [ids], n_contexts=len(ids))
    log_p = clean.logits[:, 1:-1].float().log_softmax(-1)
    log_q = expected[:, 1:-1].float().log_softmax(-1)
    kl = float((log_p.exp() * (log_p - log_q)).sum()) / log_p.shape[:2].numel()
    assert report.replacement.kl == pytest.approx(kl, rel=1e-5, abs=1e-9)
    assert kl > 1e-4


def test_l0_dead_and_dense_fractions_equal_a_brute_force_count():
    adapter = ModelAdapter(tiny_model("llama"))
    transcoder = tiny_transcoder(adapter, "plt", seed=4)
    ids = _ids()
    report = evaluate(adapter, transcoder, [ids], n_contexts=len(ids))
    kind, n_layers = transcoder.config.input_kind, adapter.n_layers
    cache = adapter.run(ids, capture=[sites.transcoder_input(kind, i) for i in range(n_layers)])
    dead = dense = total = 0
    for layer in range(n_layers):
        x = cache.cache[sites.transcoder_input(kind, layer)][:, 1:].reshape(-1, adapter.d_model)
        acts, _ = transcoder.forward({layer: x})
        counts = (acts[layer] != 0).sum(0)  # tokens each feature fired on
        tokens = x.shape[0]
        assert report.l0_per_layer[layer] == pytest.approx(float(counts.sum()) / tokens, abs=1e-3)
        assert report.dense_per_layer[layer] == pytest.approx(
            float((counts > 0.1 * tokens).float().mean()), abs=1e-4
        )
        dead += int((counts == 0).sum())
        dense += int((counts > 0.1 * tokens).sum())
        total += counts.numel()
    assert report.n_tokens == ids.shape[0] * (ids.shape[1] - 1)
    assert report.dead_fraction == pytest.approx(dead / total)
    assert report.dense_fraction == pytest.approx(dense / total)
    assert 0 < report.dense_fraction < 1  # the test sees both kinds
