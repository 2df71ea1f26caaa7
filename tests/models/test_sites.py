"""Recorded sites have the documented shapes, and the adapter computes the HF model."""

import copy

import torch

from circuitscope.models import sites
from circuitscope.models.adapter import ModelAdapter
from circuitscope.testing.tiny_models import tiny_model


def test_recorded_sites_have_documented_shapes(tiny_adapter: ModelAdapter, prompt_ids):
    recording = tiny_adapter.record(prompt_ids)
    seq = prompt_ids.shape[1]
    assert sorted(recording.cache) == sorted(sites.all_sites(tiny_adapter.n_layers))
    for name, value in recording.cache.items():
        assert tuple(value.shape) == (1, seq, tiny_adapter.d_model), name
    heads = tiny_adapter.config.num_attention_heads
    frozen = recording.frozen
    assert sorted(frozen.attention) == list(range(tiny_adapter.n_layers))
    for probs in frozen.attention.values():
        assert tuple(probs.shape) == (1, heads, seq, seq)
        torch.testing.assert_close(probs.sum(-1), torch.ones(1, heads, seq))
        assert torch.all(probs.triu(diagonal=1) == 0), "attention must be causal"
    assert sorted(frozen.norm_scales) == sorted(tiny_adapter.norm_paths())
    for scale in frozen.norm_scales.values():
        assert tuple(scale.shape) == (1, seq, 1)


def test_residual_sites_chain_through_layers(tiny_adapter: ModelAdapter, prompt_ids):
    cache = tiny_adapter.record(prompt_ids).cache
    assert torch.equal(cache[sites.EMBED], cache[sites.resid_pre(0)])
    for layer in range(1, tiny_adapter.n_layers):
        assert torch.equal(cache[sites.resid_pre(layer)], cache[sites.resid_post(layer - 1)])


def test_final_norm_site_gives_the_logits(tiny_adapter: ModelAdapter, prompt_ids):
    recording = tiny_adapter.record(prompt_ids)
    logits = tiny_adapter.logits_from_normed(recording.cache[sites.FINAL_NORM])
    cap = tiny_adapter.softcap
    if cap is not None:
        logits = torch.tanh(logits / cap) * cap
    torch.testing.assert_close(logits, recording.logits, atol=1e-6, rtol=0)


def test_embed_site_is_what_the_architecture_feeds_layer_0(arch, prompt_ids):
    adapter = ModelAdapter(tiny_model(arch))
    embed = adapter.record(prompt_ids).cache[sites.EMBED]
    embedding = adapter.embedding.weight
    assert isinstance(embedding, torch.Tensor)
    tokens = embedding[prompt_ids]
    if arch == "gpt2":
        wpe = adapter.model.get_submodule("transformer.wpe").weight
        assert isinstance(wpe, torch.Tensor)
        positions = wpe[: prompt_ids.shape[1]]
        expected = tokens + positions
    elif arch.startswith("gemma"):
        expected = tokens * adapter.d_model**0.5
    else:
        expected = tokens
    torch.testing.assert_close(embed, expected, atol=1e-6, rtol=1e-6)


def test_adapter_forward_equals_hf_logits(arch, prompt_ids):
    model = tiny_model(arch)
    reference = copy.deepcopy(model)
    reference.set_attn_implementation("eager")
    with torch.no_grad():
        expected = reference(prompt_ids).logits
        adapter = ModelAdapter(model)
        normal = adapter.run(prompt_ids).logits
        recorded = adapter.record(prompt_ids).logits
    assert (normal - expected).abs().max().item() < 1e-5
    assert (recorded - expected).abs().max().item() < 1e-5
    assert expected.std().item() > 0.1, "a trivial model would make this test vacuous"


def test_replacing_an_mlp_output_changes_the_logits(tiny_adapter: ModelAdapter, prompt_ids):
    recording = tiny_adapter.record(prompt_ids)
    layer = tiny_adapter.n_layers // 2
    own = recording.cache[sites.mlp_out(layer)]
    with torch.no_grad():
        plain = recording.logits
        same = tiny_adapter.run(prompt_ids, record=True, mlp_out={layer: own}).logits
        zeroed = tiny_adapter.run(prompt_ids, mlp_out={layer: torch.zeros_like(own)}).logits
    assert torch.equal(same, plain)
    assert (zeroed - plain).abs().max().item() > 1e-3


def test_replacement_reaches_later_sites_only(tiny_adapter: ModelAdapter, prompt_ids):
    layer = 1
    recording = tiny_adapter.record(prompt_ids)
    bumped = recording.cache[sites.mlp_out(layer)] + 1.0
    with torch.no_grad():
        cache = tiny_adapter.run(prompt_ids, record=True, mlp_out={layer: bumped}).cache
    assert torch.equal(cache[sites.mlp_out(layer)], bumped)
    assert torch.equal(cache[sites.resid_pre(layer)], recording.cache[sites.resid_pre(layer)])
    delta = cache[sites.resid_post(layer)] - recording.cache[sites.resid_post(layer)]
    torch.testing.assert_close(delta, torch.ones_like(delta), atol=1e-5, rtol=0)


def test_embed_replacement_by_its_own_value_changes_nothing(tiny_adapter: ModelAdapter, prompt_ids):
    recording = tiny_adapter.record(prompt_ids)
    with torch.no_grad():
        plain = recording.logits
        logits = tiny_adapter.run(prompt_ids, record=True, embed=recording.cache[sites.EMBED])
        logits = logits.logits
    assert torch.equal(logits, plain)


def test_capture_keeps_only_the_named_sites(tiny_adapter: ModelAdapter, prompt_ids):
    wanted = [sites.mlp_in(1), sites.mlp_out(1)]
    with torch.no_grad():
        result = tiny_adapter.run(prompt_ids, capture=wanted)
    recording = tiny_adapter.record(prompt_ids)
    assert sorted(result.cache) == sorted(wanted)
    assert result.frozen is None
    for name in wanted:
        torch.testing.assert_close(result.cache[name], recording.cache[name], atol=1e-5, rtol=0)


def test_resid_mid_is_the_residual_between_attention_and_the_mlp(tiny_adapter, prompt_ids):
    """resid_mid + mlp_out = resid_post, and the MLP's input is the norm of resid_mid."""
    recording = tiny_adapter.record(prompt_ids)
    cache = recording.cache
    for layer in range(tiny_adapter.n_layers):
        resid_mid = cache[sites.resid_mid(layer)]
        assert not torch.equal(resid_mid, cache[sites.resid_pre(layer)])  # attention wrote
        total = resid_mid + cache[sites.mlp_out(layer)]
        torch.testing.assert_close(total, cache[sites.resid_post(layer)], atol=1e-6, rtol=1e-6)
        norm = tiny_adapter.layers[layer].get_submodule(tiny_adapter.spec.mlp_norm)
        with torch.no_grad():
            torch.testing.assert_close(norm(resid_mid), cache[sites.mlp_in(layer)])
    frozen = tiny_adapter.run(prompt_ids, frozen=recording.frozen, record=True).cache
    for layer in range(tiny_adapter.n_layers):  # frozen mode records it the same way
        name = sites.resid_mid(layer)
        torch.testing.assert_close(frozen[name], cache[name], atol=1e-6, rtol=1e-6)


def test_replacements_receive_the_live_input_they_ask_for(tiny_adapter, prompt_ids):
    cache = tiny_adapter.record(prompt_ids).cache
    seen: dict[str, torch.Tensor] = {}
    for kind in sites.TRANSCODER_INPUTS:

        def own_output(x: torch.Tensor, kind: str = kind) -> torch.Tensor:
            seen[kind] = x.detach().clone()
            return cache[sites.mlp_out(1)]

        edits = {0: lambda x, out, kind=kind: seen.setdefault(f"edit-{kind}", x.clone()) * 0 + out}
        with torch.no_grad():
            tiny_adapter.run(prompt_ids, mlp_out={1: own_output}, mlp_edit=edits, live_input=kind)
        torch.testing.assert_close(seen[kind], cache[sites.transcoder_input(kind, 1)])
        torch.testing.assert_close(seen[f"edit-{kind}"], cache[sites.transcoder_input(kind, 0)])
    assert not torch.allclose(seen["mlp_in"], seen["resid_mid"])
