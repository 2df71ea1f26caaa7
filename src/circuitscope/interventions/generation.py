"""Steering during generation: interventions applied to every new token too.

Each step runs the whole sequence again with iterative patching and free
attention (a generated token has no recorded attention to freeze to). An
intervention at a fixed position takes effect once the sequence reaches that
position; one at every position (`position=None`) applies to each new token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm import tqdm

from circuitscope.errors import CircuitscopeError
from circuitscope.interventions.patching import PatchSettings, intervene
from circuitscope.interventions.spec import Intervention, check_interventions
from circuitscope.models.adapter import ModelAdapter
from circuitscope.transcoders.transcoder import Transcoder

_FREE = PatchSettings(freeze_attention=False, constrained_layers=None, keep_activations=False)


@dataclass
class Generation:
    prompt_ids: Tensor
    """[prompt_len] the prompt as the model saw it."""
    token_ids: Tensor
    """[n_new] the generated tokens."""
    logits: Tensor
    """[n_new, vocab] the logits each generated token was chosen from."""

    @property
    def all_ids(self) -> Tensor:
        return torch.cat([self.prompt_ids, self.token_ids])


def generate(
    adapter: ModelAdapter,
    transcoder: Transcoder,
    input_ids: Tensor,
    interventions: Sequence[Intervention],
    n_tokens: int,
    *,
    temperature: float = 0.0,
    seed: int = 0,
    eos_token_id: int | None = None,
    progress: bool = False,
) -> Generation:
    """Generate `n_tokens` (greedy when temperature is 0) with `interventions` applied.

    input_ids: [1, seq]. Stops early at `eos_token_id` when given.
    """
    if n_tokens < 1:
        raise CircuitscopeError(f"--generate needs at least 1 token, got {n_tokens}")
    if temperature < 0:
        raise CircuitscopeError(f"temperature must be >= 0, got {temperature}")
    check_interventions(interventions, adapter.n_layers, transcoder.config.n_features, None)
    generator = torch.Generator().manual_seed(seed)
    ids = input_ids.to(adapter.device)
    chosen, step_logits = [], []
    for _ in tqdm(range(n_tokens), desc="generate", disable=not progress, leave=False):
        length = int(ids.shape[1])
        active = [i for i in interventions if i.position is None or i.position < length]
        logits = intervene(adapter, transcoder, ids, [active], _FREE).logits[0, -1]
        token = _choose(logits, temperature, generator)
        chosen.append(token)
        step_logits.append(logits.float().cpu())
        ids = torch.cat([ids, torch.tensor([[token]], device=ids.device)], dim=1)
        if eos_token_id is not None and token == eos_token_id:
            break
    return Generation(input_ids[0].cpu(), torch.tensor(chosen), torch.stack(step_logits))


def _choose(logits: Tensor, temperature: float, generator: torch.Generator) -> int:
    if temperature == 0:
        return int(logits.argmax())
    probs = torch.softmax(logits.float().cpu() / temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))
