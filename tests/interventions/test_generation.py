"""Steering during generation: interventions reach generated tokens, and only them."""

import pytest
import torch

from circuitscope.errors import CircuitscopeError
from circuitscope.interventions.generation import generate
from circuitscope.interventions.patching import PatchSettings, intervene
from circuitscope.interventions.spec import Intervention
from circuitscope.models.adapter import ModelAdapter
from circuitscope.testing.tiny_models import tiny_model, tiny_tokenizer
from circuitscope.testing.tiny_transcoders import tiny_transcoder

FREE = PatchSettings(freeze_attention=False, keep_activations=False)


def _setup(arch: str = "llama"):
    adapter = ModelAdapter(tiny_model(arch, dtype=torch.float64))
    transcoder = tiny_transcoder(adapter, "clt", dtype="float64")
    ids = torch.tensor([tiny_tokenizer()("The capital of France is").input_ids])
    return adapter, transcoder, ids


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_an_intervention_beyond_the_prompt_applies_to_a_generated_token(arch: str):
    adapter, transcoder, ids = _setup(arch)
    n = int(ids.shape[1])
    steer = [Intervention(1, n + 1, 5, "set", 40.0)]  # the second generated token's position
    baseline = generate(adapter, transcoder, ids, [], 4)
    steered = generate(adapter, transcoder, ids, steer, 4)
    # Tokens n and n+1 are predicted before position n+1's residual exists: unchanged.
    assert torch.equal(steered.token_ids[:2], baseline.token_ids[:2])
    torch.testing.assert_close(steered.logits[:2], baseline.logits[:2], atol=0, rtol=0)
    assert (steered.logits[2] - baseline.logits[2]).abs().max() > 1e-2
    # Step 2's logits are those of one intervened run over the sequence so far.
    prefix = steered.all_ids[: n + 2].unsqueeze(0)
    direct = intervene(adapter, transcoder, prefix, [steer], FREE).logits[0, -1]
    torch.testing.assert_close(steered.logits[2], direct.float(), atol=1e-5, rtol=0)


def test_an_every_position_intervention_steers_every_new_token():
    adapter, transcoder, ids = _setup()
    steer = [Intervention(0, None, 3, "scale", 0.0), Intervention(2, None, 7, "add", 8.0)]
    steered = generate(adapter, transcoder, ids, steer, 3)
    for step in range(3):
        prefix = steered.all_ids[: ids.shape[1] + step].unsqueeze(0)
        direct = intervene(adapter, transcoder, prefix, [steer], FREE).logits[0, -1]
        torch.testing.assert_close(steered.logits[step], direct.float(), atol=1e-5, rtol=0)
    baseline = generate(adapter, transcoder, ids, [], 3)
    assert (steered.logits[0] - baseline.logits[0]).abs().max() > 1e-2


def test_sampling_is_seeded_and_bad_settings_are_refused():
    adapter, transcoder, ids = _setup()
    first = generate(adapter, transcoder, ids, [], 5, temperature=1.0, seed=3)
    again = generate(adapter, transcoder, ids, [], 5, temperature=1.0, seed=3)
    assert torch.equal(first.token_ids, again.token_ids)
    with pytest.raises(CircuitscopeError, match="at least 1 token"):
        generate(adapter, transcoder, ids, [], 0)
    with pytest.raises(CircuitscopeError, match="no feature 999"):
        generate(adapter, transcoder, ids, [Intervention(0, 3, 999, "set", 1.0)], 2)
