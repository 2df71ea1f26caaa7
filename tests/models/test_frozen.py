"""Frozen mode: attention probabilities and norm scales replayed from a recorded run.

With MLP outputs held at constants as well, every logit is a linear function of
the residual stream entering layer 0; these tests measure that directly.
"""

import pytest
import torch

from circuitscope.errors import CircuitscopeError
from circuitscope.models import sites
from circuitscope.models.adapter import ModelAdapter, Recording
from circuitscope.testing.tiny_models import tiny_model

TARGET_TOKEN = 7


def _adapter64(arch: str) -> ModelAdapter:
    return ModelAdapter(tiny_model(arch, dtype=torch.float64))


def _logit_and_grad(
    adapter: ModelAdapter, recording: Recording, embed: torch.Tensor, frozen: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """One pre-soft-cap logit at the last position, and its gradient w.r.t. `embed`."""
    embed = embed.detach().clone().requires_grad_(True)
    result = adapter.run(
        recording.input_ids,
        record=True,
        keep_graph=True,
        frozen=recording.frozen if frozen else None,
        mlp_out=recording.mlp_outputs(),
        embed=embed,
    )
    logit = adapter.logits_from_normed(result.cache[sites.FINAL_NORM][0, -1])[TARGET_TOKEN]
    (grad,) = torch.autograd.grad(logit, embed)
    return logit.detach(), grad


def test_frozen_logits_equal_the_recorded_run(tiny_adapter: ModelAdapter, prompt_ids):
    recording = tiny_adapter.record(prompt_ids)
    with torch.no_grad():
        frozen = tiny_adapter.run(prompt_ids, frozen=recording.frozen).logits
    assert (frozen - recording.logits).abs().max().item() < 1e-5


def test_frozen_map_from_embedding_to_logit_is_linear(arch, prompt_ids):
    adapter = _adapter64(arch)
    recording = adapter.record(prompt_ids)
    r0 = recording.cache[sites.EMBED]
    delta = torch.randn(r0.shape, generator=torch.Generator().manual_seed(1), dtype=r0.dtype)
    logit0, grad0 = _logit_and_grad(adapter, recording, r0, frozen=True)
    logit1, grad1 = _logit_and_grad(adapter, recording, r0 + delta, frozen=True)
    torch.testing.assert_close(grad1, grad0, atol=1e-10, rtol=1e-9)
    predicted = logit0 + (grad0 * delta).sum()
    torch.testing.assert_close(logit1, predicted, atol=1e-9, rtol=1e-9)
    # Not vacuous: the same perturbation without freezing moves the gradient, and at
    # the recorded point the live gradient has extra terms (through softmax and scales).
    _, live0 = _logit_and_grad(adapter, recording, r0, frozen=False)
    _, live1 = _logit_and_grad(adapter, recording, r0 + delta, frozen=False)
    assert (live1 - live0).abs().max().item() > 1e-3
    assert (live0 - grad0).abs().max().item() > 1e-3


def _query_key_gradients(adapter: ModelAdapter) -> list[torch.Tensor]:
    grads = []
    for name, param in adapter.model.named_parameters():
        grad = param.grad if param.grad is not None else torch.zeros_like(param)
        if any(part in name for part in ("q_proj", "k_proj", "q_norm", "k_norm")):
            grads.append(grad)
        elif name.endswith("attn.c_attn.weight"):  # GPT-2: [d_model, 3 d_model], q|k|v
            grads.append(grad[:, : 2 * adapter.d_model])
        elif name.endswith("attn.c_attn.bias"):
            grads.append(grad[: 2 * adapter.d_model])
    return grads


def _value_gradients(adapter: ModelAdapter) -> list[torch.Tensor]:
    grads = []
    for name, param in adapter.model.named_parameters():
        if param.grad is None:
            continue
        if "v_proj.weight" in name:
            grads.append(param.grad)
        elif name.endswith("attn.c_attn.weight"):
            grads.append(param.grad[:, 2 * adapter.d_model :])
    return grads


@pytest.mark.parametrize("frozen", [True, False])
def test_no_gradient_reaches_queries_and_keys_when_frozen(arch, prompt_ids, frozen):
    adapter = ModelAdapter(tiny_model(arch))
    recording = adapter.record(prompt_ids)
    adapter.model.zero_grad()
    logits = adapter.run(prompt_ids, frozen=recording.frozen if frozen else None).logits
    logits[0, -1, TARGET_TOKEN].backward()
    qk = torch.stack([g.abs().max() for g in _query_key_gradients(adapter)])
    values = torch.stack([g.abs().max() for g in _value_gradients(adapter)])
    assert len(qk) >= adapter.n_layers and len(values) == adapter.n_layers
    assert torch.all(values > 0)
    if frozen:
        assert torch.all(qk == 0)
    else:
        assert torch.all(qk > 0)


def test_frozen_run_broadcasts_over_a_batch(arch: str, prompt_ids):
    """fp64: with frozen norms the live MLPs of these random models amplify float noise,
    and the batched run sums in another order than the single one."""
    tiny_adapter = ModelAdapter(tiny_model(arch, dtype=torch.float64))
    recording = tiny_adapter.record(prompt_ids)
    r0 = recording.cache[sites.EMBED]
    embeds = torch.cat([r0, r0 * 1.5, r0 - 0.3])
    batch_ids = prompt_ids.expand(3, -1)
    with torch.no_grad():
        batched = tiny_adapter.run(batch_ids, frozen=recording.frozen, embed=embeds).logits
        for index in range(3):
            single = tiny_adapter.run(
                prompt_ids, frozen=recording.frozen, embed=embeds[index : index + 1]
            ).logits
            torch.testing.assert_close(batched[index : index + 1], single, atol=1e-9, rtol=1e-9)


def test_frozen_state_for_another_length_is_refused(tiny_adapter: ModelAdapter, prompt_ids):
    recording = tiny_adapter.record(prompt_ids)
    with pytest.raises(CircuitscopeError, match="recorded on"):
        tiny_adapter.run(prompt_ids[:, :-1], frozen=recording.frozen)


def test_replacement_of_the_wrong_shape_is_refused(tiny_adapter: ModelAdapter, prompt_ids):
    with pytest.raises(CircuitscopeError, match="mlp_out"):
        tiny_adapter.run(prompt_ids, mlp_out={0: torch.zeros(1, 2, tiny_adapter.d_model)})
    with pytest.raises(CircuitscopeError, match="no layer"):
        tiny_adapter.run(prompt_ids, mlp_out={99: torch.zeros(1, 2, tiny_adapter.d_model)})


def test_frozen_values_are_mixed_without_copying_probabilities_per_row():
    from circuitscope.models.attention import mix_values

    generator = torch.Generator().manual_seed(0)
    probs = torch.rand(1, 3, 5, 5, generator=generator, dtype=torch.float64)
    value = torch.randn(4, 3, 5, 2, generator=generator, dtype=torch.float64)
    expected = torch.matmul(probs.expand(4, -1, -1, -1), value)
    torch.testing.assert_close(mix_values(probs, value), expected, atol=1e-14, rtol=0)
    torch.testing.assert_close(mix_values(probs.expand(4, -1, -1, -1), value), expected)


@pytest.mark.parametrize("length", [5, 300])
def test_grouped_value_heads_are_mixed_without_repeating_them(length):
    """Grouped-query attention: query head i reads value head i // groups. Short
    prompts take the dense product, long ones the blockwise one; both equal the
    product with the value heads repeated, and so does the gradient."""
    from circuitscope.models.attention import mix_values

    generator = torch.Generator().manual_seed(1)
    scores = torch.randn(1, 6, length, length, generator=generator, dtype=torch.float64)
    above = torch.ones(length, length, dtype=torch.bool).triu(1)
    probs = scores.masked_fill(above, float("-inf")).softmax(-1)
    value = torch.randn(4, 2, length, 3, generator=generator, dtype=torch.float64)
    value.requires_grad_(True)
    repeated = value.repeat_interleave(3, dim=1)
    expected = torch.matmul(probs.expand(4, -1, -1, -1), repeated)
    mixed = mix_values(probs, value, groups=3)
    torch.testing.assert_close(mixed, expected, atol=1e-12, rtol=0)
    grad = torch.randn(4, 6, length, 3, generator=generator, dtype=torch.float64)
    (got,) = torch.autograd.grad(mixed, value, grad)
    (want,) = torch.autograd.grad(expected, value, grad)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
