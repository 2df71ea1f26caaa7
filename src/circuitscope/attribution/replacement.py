"""The local replacement model of one prompt.

One recorded run of the original model gives every MLP's input and output.
The transcoder encodes its inputs (the MLP inputs, or for a `resid_mid`
transcoder the residual stream before each MLP's norm) into features (none at position 0, the BOS
attention sink) and decodes them into reconstructions ŷ; each MLP output is
then ŷ plus a constant error node e = m_out − ŷ. With attention and norm scales
frozen, this model reproduces the original logits exactly, and the map from
feature outputs, errors and token embeddings to every target is linear.

Position 0 (BOS) is the same for every prompt (attention is causal), so its MLP
outputs are constants of the model: no features there, and no error nodes
either (as in circuit-tracer). Removing the error nodes keeps them whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from circuitscope.attribution.sink import SINK, clear_sink
from circuitscope.errors import CircuitscopeError
from circuitscope.models import sites
from circuitscope.models.adapter import MlpOutput, ModelAdapter, Recording
from circuitscope.transcoders.checks import check_against_model
from circuitscope.transcoders.transcoder import Transcoder


@dataclass
class ActiveFeatures:
    """Every active feature of the prompt, sorted by (layer, position, index)."""

    layer: Tensor
    """[N] long."""
    position: Tensor
    """[N] long."""
    index: Tensor
    """[N] long: the feature's index within its layer."""
    activation: Tensor
    """[N] its activation."""

    def __len__(self) -> int:
        return len(self.layer)


@dataclass
class LocalReplacement:
    adapter: ModelAdapter
    transcoder: Transcoder
    recording: Recording
    features: ActiveFeatures
    reconstruction: Tensor
    """[n_layers, seq, d_model] ŷ: decoded features + b_dec + skip term, fp32 or fp64."""
    errors: Tensor
    """[n_layers, seq, d_model] e = m_out − ŷ."""

    @property
    def input_ids(self) -> Tensor:
        return self.recording.input_ids

    @property
    def n_layers(self) -> int:
        return self.adapter.n_layers

    @property
    def seq_len(self) -> int:
        return int(self.recording.input_ids.shape[1])

    @property
    def dtype(self) -> torch.dtype:
        return self.errors.dtype

    def mlp_outputs(self, with_errors: bool = True) -> dict[int, MlpOutput]:
        """Per layer, the replacement model's MLP output for `adapter.run(mlp_out=...)`."""
        constants = self.constant_outputs(with_errors)
        return {layer: self.with_skip(layer, c) for layer, c in constants.items()}

    def constant_outputs(self, with_errors: bool = True) -> dict[int, Tensor]:
        """Per layer, the part of the MLP output that does not depend on m_in: [1, seq, d].

        Decoded features + b_dec (+ the error node); the skip term, if any, is the rest.
        """
        outputs = {}
        for layer in range(self.n_layers):
            constant = self.reconstruction[layer] - self._recorded_skip(layer)
            if with_errors:
                constant = constant + self.errors[layer]
            else:  # the sink has no error node: its MLP output stays whole
                constant = constant.clone()
                constant[SINK] = constant[SINK] + self.errors[layer, SINK]
            outputs[layer] = constant.unsqueeze(0)
        return outputs

    @property
    def live_input(self) -> str:
        """The live input (`ModelAdapter.run(live_input=...)`) the transcoder reads."""
        return self.transcoder.config.input_kind

    def input_site(self, layer: int) -> str:
        """The site whose value a feature of `layer` encodes (its target's input)."""
        return sites.transcoder_input(self.live_input, layer)

    def with_skip(self, layer: int, constant: Tensor) -> MlpOutput:
        """The MLP output: `constant`, plus W_skip · x (linear, live) with a skip term;
        x is the live input site (run with `live_input=self.live_input`)."""
        if not self.transcoder.config.skip_connection:
            return constant
        return lambda x: constant.to(x.dtype) + self.transcoder.skip(layer, x)

    def _recorded_skip(self, layer: int) -> Tensor:
        if not self.transcoder.config.skip_connection:
            return torch.zeros_like(self.errors[layer])
        x = self.recording.cache[self.input_site(layer)][0].to(self.dtype)
        return self.transcoder.skip(layer, x)


@dataclass
class EncodedPrompt:
    """A prompt recorded once, and its features at every layer."""

    recording: Recording
    inputs: dict[int, Tensor]
    """Per layer, the transcoder's input (its input site): [seq, d_model]."""
    activations: dict[int, Tensor]
    """Per layer, the feature activations [seq, n_features] (accumulation dtype), none at
    the sink."""


def encode_prompt(
    adapter: ModelAdapter, transcoder: Transcoder, input_ids: Tensor
) -> EncodedPrompt:
    """Record the prompt and encode every layer's features. input_ids: [1, seq].

    Raises CircuitscopeError when the transcoder does not fit the model."""
    check_against_model(transcoder, adapter)
    if input_ids.ndim != 2 or input_ids.shape[0] != 1:
        raise CircuitscopeError(f"expected one prompt [1, seq], got {tuple(input_ids.shape)}")
    kind = transcoder.config.input_kind
    recording = adapter.record(input_ids)
    dtype = adapter.accumulation_dtype
    inputs, activations = {}, {}
    with torch.no_grad():
        for layer in range(adapter.n_layers):
            inputs[layer] = recording.cache[sites.transcoder_input(kind, layer)][0]
            activations[layer] = clear_sink(transcoder.encode(layer, inputs[layer]).to(dtype))
    return EncodedPrompt(recording, inputs, activations)


def build_replacement(
    adapter: ModelAdapter, transcoder: Transcoder, input_ids: Tensor
) -> LocalReplacement:
    """Record the prompt and build its local replacement model. input_ids: [1, seq]."""
    encoded = encode_prompt(adapter, transcoder, input_ids)
    recording, acts = encoded.recording, encoded.activations
    dtype = adapter.accumulation_dtype
    with torch.no_grad():
        decoded = transcoder.decode_sparse(acts, encoded.inputs)
    reconstruction = torch.stack([decoded[layer].to(dtype) for layer in range(adapter.n_layers)])
    m_out = torch.stack(
        [recording.cache[sites.mlp_out(layer)][0].to(dtype) for layer in range(adapter.n_layers)]
    )
    return LocalReplacement(
        adapter=adapter,
        transcoder=transcoder,
        recording=recording,
        features=_active_features(acts),
        reconstruction=reconstruction,
        errors=m_out - reconstruction,
    )


def _active_features(acts: dict[int, Tensor]) -> ActiveFeatures:
    layers, positions, indices, values = [], [], [], []
    for layer in sorted(acts):
        position, index = torch.nonzero(acts[layer], as_tuple=True)
        layers.append(torch.full_like(position, layer))
        positions.append(position)
        indices.append(index)
        values.append(acts[layer][position, index])
    return ActiveFeatures(  # small tables: kept on the CPU whatever the model's device
        torch.cat(layers).cpu(),
        torch.cat(positions).cpu(),
        torch.cat(indices).cpu(),
        torch.cat(values).cpu(),
    )
