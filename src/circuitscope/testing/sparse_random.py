"""Random transcoders with realistic sparsity, for benchmarks and smoke tests.

Encoders and decoders are random; each layer's JumpReLU threshold is set from
real MLP inputs of the model on sample text, so that about `l0` features fire
per token per layer, as in a trained transcoder. (Its reconstructions are poor:
the error nodes carry the model's computation. For timing, not for insight.)
"""

from __future__ import annotations

from typing import Literal

import torch

from circuitscope.models import sites
from circuitscope.models.adapter import ModelAdapter
from circuitscope.models.tokenizer import Tokenizer
from circuitscope.testing.tiny_transcoders import config_for
from circuitscope.transcoders.initialize import random_transcoder
from circuitscope.transcoders.transcoder import Transcoder

SAMPLE_TEXT = (
    "The old lighthouse keeper climbed the stairs every evening at dusk, lit the lamp, "
    "and wrote in his logbook the names of the ships that passed. In the spring the "
    "fishing boats returned from the north, and the harbour filled with gulls and nets."
)


def sparse_random_transcoder(
    adapter: ModelAdapter,
    tokenizer: Tokenizer,
    kind: Literal["clt", "plt"] = "clt",
    n_features: int = 2048,
    l0: float = 30.0,
    seed: int = 0,
    sample_text: str = SAMPLE_TEXT,
    dtype: str = "float32",
    input_site: str = "mlp_in",
) -> Transcoder:
    """A seeded random CLT/PLT for `adapter`'s model with about `l0` active features,
    reading `input_site` ("mlp_in" or "resid_mid")."""
    note = {"note": f"random weights, thresholds calibrated to L0 ~ {l0}"}
    config = config_for(
        adapter, kind, n_features, dtype=dtype, training=note, input_site=input_site
    )
    transcoder = random_transcoder(config, seed=seed)  # seeded on the CPU, then moved
    transcoder.to_device(adapter.device)
    ids = torch.tensor([tokenizer(sample_text).input_ids], device=adapter.device)
    inputs = [sites.transcoder_input(input_site, i) for i in range(adapter.n_layers)]
    with torch.no_grad():
        cache = adapter.run(ids, capture=inputs).cache
        for layer in range(adapter.n_layers):
            block = transcoder.layer(layer)
            h = block.pre_activations(cache[inputs[layer]][0].to(block.W_enc.dtype))
            quantile = 1.0 - l0 / n_features
            threshold = torch.quantile(h.flatten(), quantile).clamp(min=1e-3)
            parameter = block.activation.threshold
            assert isinstance(parameter, torch.Tensor)
            parameter.data.fill_(float(threshold))
    return transcoder
