"""`Transcoder`: one module for cross-layer (CLT) and per-layer (PLT) transcoders.

    a[l] = σ(x[l] @ W_enc[l] + b_enc[l])
    ŷ[l] = Σ_{l' ≤ l} a[l'] @ W_dec[l' → l] + b_dec[l]  (+ x[l] @ W_skip[l])

x[l] is the input site (`config.input_site`: the MLP's input, or the residual stream
before the MLP's norm); ŷ[l] replaces the MLP output. What active features write
(`feature_writes`) and the rest of ŷ (`fixed_output`: b_dec and the skip term) are
computed here and nowhere else. A PLT is the case where W_dec[l' → l] exists only
for l' = l. Layers live in `blocks` once used; a transcoder opened from files reads
a layer the first time it is needed (`lazy`), and `release` drops layers again, so a
CLT bigger than memory can be used layer by layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from circuitscope.errors import CircuitscopeError
from circuitscope.transcoders.activations import JumpReLU, ReLU
from circuitscope.transcoders.checks import check_layer_tensors
from circuitscope.transcoders.config import TranscoderConfig
from circuitscope.transcoders.encoder import EncoderLayer
from circuitscope.transcoders.layer import B_DEC, ENCODER_NAMES, W_DEC, TranscoderLayer
from circuitscope.transcoders.source import LayerSource

Activations = Mapping[int, Tensor] | Sequence[Tensor]


class Transcoder(nn.Module):
    """Per-layer encoders and (cross-layer) decoders; see the module docstring."""

    def __init__(self, config: TranscoderConfig, source: LayerSource | None = None) -> None:
        super().__init__()
        self.config = config
        self.source = source
        self.blocks = nn.ModuleDict()
        self.encoders = nn.ModuleDict()
        """Encoders read alone (lazy transcoders), dropped when their whole layer loads."""
        self.home = torch.device("cpu")
        if source is None:
            for layer in range(config.n_layers):
                self.blocks[str(layer)] = TranscoderLayer(config, layer)

    # --- building, loading, saving ---------------------------------------------------
    @classmethod
    def from_layers(
        cls, config: TranscoderConfig, layers: Sequence[Mapping[str, Tensor]]
    ) -> Transcoder:
        """A transcoder holding these tensors, one mapping per layer (native names)."""
        transcoder = cls(config, source=None)
        for layer, tensors in enumerate(layers):
            check_layer_tensors(config, layer, tensors, {})
            transcoder.blocks[str(layer)] = TranscoderLayer.from_tensors(config, layer, tensors)
        return transcoder

    @classmethod
    def load(
        cls, path: str | Path, *, lazy: bool = True, device: str = "cpu", format: str = "auto"
    ) -> Transcoder:
        """Open a transcoder in any supported format: a folder, a file, or a hub repo id.

        lazy: read each layer on first use (else read every layer now).
        """
        from circuitscope.transcoders.formats import open_source

        source = open_source(str(path), format)
        transcoder = cls(source.config, source)
        transcoder.home = torch.device(device)
        if not lazy:
            for layer in range(source.config.n_layers):
                transcoder.layer(layer)
        return transcoder

    def save(self, path: str | Path) -> Path:
        """Write the native format: config.json and layer_{l}.safetensors per layer."""
        from circuitscope.transcoders.native_io import write_native

        return write_native(self, Path(path))

    def to_device(self, device: str | torch.device) -> Transcoder:
        """Keep layers on `device` from now on (loaded ones move there); returns self."""
        self.home = torch.device(device)
        self.to(self.home)
        return self

    def layer(self, layer: int) -> TranscoderLayer:
        """The module of `layer`, read from the source the first time."""
        key = str(self._checked_layer(layer))
        if key not in self.blocks:
            tensors = self.read_layer_tensors(layer)
            block = TranscoderLayer.from_tensors(self.config, layer, tensors)
            self.blocks[key] = block.to(self.home)
            if key in self.encoders:
                del self.encoders[key]
        block = self.blocks[key]
        assert isinstance(block, TranscoderLayer)
        return block

    def read_layer_tensors(self, layer: int) -> dict[str, Tensor]:
        """Layer `layer`'s tensors, checked, without keeping them (loaded ones are reused)."""
        if str(layer) in self.blocks:
            return self.layer(layer).tensors()
        if self.source is None:
            raise ValueError(f"layer {layer} is neither loaded nor backed by files")
        tensors = self.source.read_layer(layer)
        check_layer_tensors(self.config, layer, tensors, self.source.layer_files(layer))
        return tensors

    def release(self, layers: Sequence[int] | None = None) -> None:
        """Forget loaded layers (all by default) so they are read again when needed."""
        if self.source is None:
            raise ValueError("this transcoder has no files to read released layers back from")
        for layer in self.loaded_layers() if layers is None else layers:
            if str(layer) in self.blocks:
                del self.blocks[str(layer)]
        for key in list(self.encoders) if layers is None else [str(x) for x in layers]:
            if key in self.encoders:
                del self.encoders[key]

    def loaded_layers(self) -> list[int]:
        return sorted(int(key) for key in self.blocks)

    def _checked_layer(self, layer: int) -> int:
        if not 0 <= layer < self.config.n_layers:
            raise IndexError(f"layer {layer} out of range 0..{self.config.n_layers - 1}")
        return layer

    # --- encoding ----------------------------------------------------------------------
    def encoder(self, layer: int) -> TranscoderLayer | EncoderLayer:
        """What encodes layer `layer`: the loaded layer, or (lazily) its encoder alone,
        read without the decoders."""
        key = str(self._checked_layer(layer))
        if key in self.blocks or self.source is None:
            return self.layer(layer)
        if key not in self.encoders:
            tensors = self.source.read_named(layer, list(ENCODER_NAMES))
            files = self.source.layer_files(layer)
            check_layer_tensors(self.config, layer, tensors, files, only=ENCODER_NAMES)
            self.encoders[key] = EncoderLayer(self.config, layer, tensors).to(self.home)
        encoder = self.encoders[key]
        assert isinstance(encoder, EncoderLayer)
        return encoder

    def pre_activations(self, layer: int, mlp_in: Tensor) -> Tensor:
        """mlp_in @ W_enc + b_enc. mlp_in: [..., d_model] -> [..., n_features[layer]]."""
        return self.encoder(layer).pre_activations(mlp_in)

    def encode(self, layer: int, mlp_in: Tensor) -> Tensor:
        """Feature activations. mlp_in: [..., d_model] -> [..., n_features[layer]]."""
        return self.encoder(layer).encode(mlp_in)

    def encode_columns(self, layer: int, mlp_in: Tensor, features: Tensor) -> Tensor:
        """The activations of `features` ([k] indices) only: [..., d_model] -> [..., k].

        JumpReLU and ReLU act feature by feature, so only those encoder columns are
        computed (the values `encode` gives, up to the rounding of a narrower matmul);
        TopK and BatchTopK rank every feature, so all are encoded and the columns taken.
        """
        encoder = self.encoder(layer)
        activation = encoder.activation
        if not isinstance(activation, JumpReLU | ReLU):
            return encoder.encode(mlp_in)[..., features]
        columns = features.to(encoder.W_enc.device)
        pre = mlp_in.to(encoder.W_enc.dtype) @ encoder.W_enc[:, columns] + encoder.b_enc[columns]
        if isinstance(activation, ReLU):
            return torch.relu(pre)
        return pre * (pre > activation.threshold[columns])

    # --- decoding ----------------------------------------------------------------------
    def decode_from(self, layer: int, activations: Tensor) -> Tensor:
        """What layer `layer`'s features write to each of their output layers (no bias).

        activations: [..., n_features[layer]] -> [n_out, ..., d_model], slot j being
        output layer `layer + j` (see `config.output_layers`).
        """
        return self.layer(layer).contributions(activations)

    def decode(
        self, activations: Activations, inputs: Activations | None = None
    ) -> dict[int, Tensor]:
        """Reconstructions ŷ[l] for every layer l given. activations[l]: [..., n_features[l]].

        Returns {l: [..., d_model]}. For a CLT, ŷ[l] needs the activations of every
        layer up to l. inputs[l] ([..., d_model], at the input site) is needed with a
        skip connection.
        """
        acts = as_layer_dict(activations)
        self.check_sources(acts)
        totals: dict[int, Tensor] = {}
        for source in sorted(acts):
            contributions = self.decode_from(source, acts[source])
            for slot, out in enumerate(self.config.output_layers(source)):
                if out in acts:
                    previous = totals.get(out)
                    part = contributions[slot]
                    totals[out] = part if previous is None else previous + part
        return self.add_fixed_outputs(totals, inputs)

    def check_sources(self, acts: Mapping[int, Tensor]) -> None:
        """Raise ValueError unless a CLT has the activations of every layer up to each output."""
        if self.config.kind != "clt":
            return
        for out in acts:
            missing = [layer for layer in range(out) if layer not in acts]
            if missing:
                raise ValueError(
                    f"a CLT's output at layer {out} needs the activations of layers {missing}"
                )

    # --- what features write, and the rest of ŷ ------------------------------------------
    def feature_writes(
        self, layer: int, features: Tensor, values: Tensor, into: Sequence[int] | None = None
    ) -> dict[int, Tensor]:
        """What some active features of `layer` write into the MLP outputs they decode to.

        features [k] feature indices (any order, repeats allowed), values [k] their
        activations -> {output layer: [k, d_model]}, row i = values[i] · W_dec[layer → out]
        [features[i]]. into: only these output layers (default: every one). No bias, no
        skip term (see `fixed_output`). Reads only these decoder rows (lazy transcoders).
        """
        outputs = self.config.output_layers(layer) if into is None else into
        if len(features) == 0:
            empty = values.new_zeros(0, self.config.d_model)
            return {out: empty for out in outputs if out in self.config.output_layers(layer)}
        unique, inverse = torch.unique(features, sorted=True, return_inverse=True)
        decoders = self.active_decoders(layer, unique).to(values.device, values.dtype)
        writes = {}
        for out in outputs:
            slot = self.config.output_slot(layer, out)
            if slot is not None:
                writes[out] = decoders[inverse, slot] * values[:, None]
        return writes

    def skip(self, layer: int, inputs: Tensor) -> Tensor:
        """The skip term W_skip · x (zeros without a skip connection). inputs: [..., d_model]
        at the transcoder's input site -> [..., d_model], in the inputs' dtype."""
        if not self.config.skip_connection:
            return torch.zeros_like(inputs)
        block = self.layer(layer)
        return block.skip(inputs.to(block.b_dec.dtype)).to(inputs.dtype)

    def fixed_output(self, layer: int, inputs: Tensor | None) -> Tensor:
        """The part of ŷ[layer] that no feature writes: b_dec + W_skip · x.

        inputs: [..., d_model] at the input site (None: no skip connection; then [d_model]).
        """
        bias = self.decoder_bias(layer)
        if not self.config.skip_connection:
            return bias if inputs is None else bias.to(inputs.dtype).expand_as(inputs)
        if inputs is None:
            raise ValueError(f"layer {layer} has a skip connection: pass its input")
        return bias.to(inputs.dtype) + self.skip(layer, inputs)

    def add_fixed_outputs(
        self, totals: Mapping[int, Tensor], inputs: Activations | None
    ) -> dict[int, Tensor]:
        """{l: totals[l] + b_dec + W_skip · inputs[l]}: features' writes made reconstructions."""
        given = as_layer_dict(inputs) if inputs is not None else {}
        out: dict[int, Tensor] = {}
        for layer, total in sorted(totals.items()):
            if self.config.skip_connection and layer not in given:
                raise ValueError(f"layer {layer} has a skip connection: pass inputs[{layer}]")
            fixed = self.fixed_output(layer, given.get(layer))
            out[layer] = total + fixed.to(total.dtype)
        return out

    def forward(self, inputs: Activations) -> tuple[dict[int, Tensor], dict[int, Tensor]]:
        """Encode every layer given (inputs at the input site) and decode.
        Returns (activations, reconstructions)."""
        inputs = as_layer_dict(inputs)
        acts = {layer: self.encode(layer, x) for layer, x in sorted(inputs.items())}
        return acts, self.decode(acts, inputs)

    def decode_sparse(
        self, activations: Activations, inputs: Activations | None = None
    ) -> dict[int, Tensor]:
        """Same as `decode`, touching only the decoder rows of active features."""
        from circuitscope.transcoders.sparse import decode_sparse

        return decode_sparse(self, as_layer_dict(activations), inputs)

    # --- decoder geometry ----------------------------------------------------------------
    def active_decoders(self, layer: int, features: Tensor) -> Tensor:
        """Decoder vectors of some features. features: [u] sorted unique -> [u, n_out, d_model].

        Reads only those rows from the files when the layer is not loaded.
        """
        if str(layer) in self.blocks or self.source is None:
            return self.layer(layer).decoders()[features.to(self.home)]
        rows = self.source.read_rows(layer, W_DEC, features.cpu())
        shape = (len(features), self.config.n_outputs(layer), self.config.d_model)
        if len(features) == 0:  # a layer where nothing fires
            return rows.new_zeros(shape).to(self.home)
        if not bool(torch.isfinite(rows).all()):
            where = self.source.layer_files(layer).get(W_DEC, self.source.location)
            raise CircuitscopeError(
                f"{where}: W_dec of layer {layer} contains NaN or infinite values"
            )
        return rows.reshape(shape).to(self.home)

    def decoder_bias(self, layer: int) -> Tensor:
        """b_dec of `layer`: [d_model]."""
        if str(layer) in self.blocks or self.source is None:
            return self.layer(layer).b_dec
        return self.source.read_rows(layer, B_DEC, torch.arange(self.config.d_model)).to(self.home)

    def decoder_vectors(self, layer: int, feature: int) -> Tensor:
        """Feature `feature` of `layer`'s decoder vector for each output layer: [n_out, d_model]."""
        index = torch.tensor([feature])
        return self.active_decoders(self._checked_layer(layer), index)[0]

    def decoder_norms(self, layer: int) -> Tensor:
        """Norm of each feature's decoder vectors over all output layers concatenated: [n_f]."""
        decoders = self.layer(layer).decoders()
        return decoders.reshape(decoders.shape[0], -1).norm(dim=1)

    # --- sizes -------------------------------------------------------------------------
    def n_parameters(self, layer: int | None = None) -> int:
        """Parameters of `layer` (of every layer when None), from the config alone."""
        from circuitscope.transcoders.layer import expected_shapes

        layers = range(self.config.n_layers) if layer is None else [layer]
        shapes = [s for l_ in layers for s in expected_shapes(self.config, l_).values()]
        return sum(int(torch.Size(shape).numel()) for shape in shapes)


def as_layer_dict(values: Activations) -> dict[int, Tensor]:
    if isinstance(values, Mapping):
        return {int(layer): value for layer, value in values.items()}
    return dict(enumerate(values))
