"""`TranscoderConfig`: everything about a transcoder except its weights.

Saved as `config.json` beside the per-layer safetensors files. Hook sites are
templates over the layer index written with the names of
`circuitscope.models.sites`, e.g. "layers.{layer}.mlp_in".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from circuitscope.errors import CircuitscopeError

ACTIVATIONS = ("jumprelu", "topk", "batchtopk", "relu")
FORMAT_NAME = "circuitscope-transcoder"
FORMAT_VERSION = 1
DTYPES = ("float32", "bfloat16", "float16", "float64")
MLP_IN_SITE = "layers.{layer}.mlp_in"
RESID_MID_SITE = "layers.{layer}.resid_mid"
MLP_OUT_SITE = "layers.{layer}.mlp_out"
INPUT_KINDS = {MLP_IN_SITE: "mlp_in", RESID_MID_SITE: "resid_mid"}
"""The input sites a transcoder can be used with, and their short names (`--input-site`)."""


@dataclass
class TranscoderConfig:
    """What a transcoder is: its shape, activation, sites and provenance."""

    kind: Literal["clt", "plt"]
    """clt: features of layer l decode to layers l..L-1; plt: to layer l only."""
    n_layers: int
    """How many layers have an encoder (always every layer of the model, from 0)."""
    d_model: int
    """Width of the model's residual stream: the input and output width."""
    n_features: list[int]
    """Number of features of each layer, [n_layers]."""
    activation: str = "jumprelu"
    """jumprelu, topk, batchtopk or relu."""
    activation_params: dict[str, Any] = field(default_factory=dict)
    """Parameters of the activation: bandwidth (jumprelu), k and relu (topk, batchtopk)."""
    model_id: str = ""
    """The model it was trained on (hub id or path); empty when unknown."""
    architecture: str = ""
    """The model's circuitscope architecture (llama, qwen2, gemma2, ...); empty if unknown."""
    input_site: str = MLP_IN_SITE
    """Template of the site each layer's encoder reads, over {layer}: the MLP's input
    (after its norm, `MLP_IN_SITE`) or the residual stream before that norm
    (`RESID_MID_SITE`, circuit-tracer's hook_resid_mid)."""
    output_site: str = MLP_OUT_SITE
    """Template of the site each layer's reconstruction replaces, over {layer}."""
    skip_connection: bool = False
    """Whether each layer adds a linear skip term mlp_in @ W_skip to its output."""
    dtype: str = "float32"
    """Precision of the stored weights."""
    normalization: Literal["none", "folded"] = "none"
    """folded: trained on scaled activations, scales folded into the saved weights,
    so the weights act on raw activations either way."""
    input_scales: list[float] | None = None
    """Per layer, the factor inputs were multiplied by in training (folded in)."""
    output_scales: list[float] | None = None
    """Per layer, the factor targets were multiplied by in training (folded in)."""
    training: dict[str, Any] = field(default_factory=dict)
    """Training provenance: corpus, steps, losses, seed, code version, ..."""
    source_format: str = "native"
    """The format the weights were first read from (native when trained here)."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise CircuitscopeError on values that cannot describe a transcoder."""
        if self.kind not in ("clt", "plt"):
            raise CircuitscopeError(f"kind must be 'clt' or 'plt', got {self.kind!r}")
        if self.n_layers < 1 or self.d_model < 1:
            raise CircuitscopeError(
                f"n_layers and d_model must be positive, got {self.n_layers}, {self.d_model}"
            )
        if len(self.n_features) != self.n_layers or min(self.n_features) < 1:
            raise CircuitscopeError(
                f"n_features needs one positive count per layer ({self.n_layers}), "
                f"got {self.n_features}"
            )
        if self.activation not in ACTIVATIONS:
            raise CircuitscopeError(
                f"unknown activation {self.activation!r}; choose from {', '.join(ACTIVATIONS)}"
            )
        if self.dtype not in DTYPES:
            raise CircuitscopeError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        for name in ("input_site", "output_site"):
            if "{layer}" not in getattr(self, name):
                raise CircuitscopeError(f"{name} must contain '{{layer}}': {getattr(self, name)!r}")

    def n_outputs(self, layer: int) -> int:
        """How many layers the features of `layer` decode to."""
        return self.n_layers - layer if self.kind == "clt" else 1

    def output_layers(self, layer: int) -> range:
        """The layers the features of `layer` decode to."""
        return range(layer, self.n_layers if self.kind == "clt" else layer + 1)

    @property
    def input_kind(self) -> str:
        """ "mlp_in" or "resid_mid": the live input a model run hands this transcoder
        (`ModelAdapter.run(live_input=...)`); CircuitscopeError for any other site."""
        kind = INPUT_KINDS.get(self.input_site)
        if kind is None:
            readable = ", ".join(INPUT_KINDS)
            raise CircuitscopeError(
                f"a transcoder reading {self.input_site!r} cannot be used with a model here; "
                f"input sites supported: {readable}"
            )
        return kind

    def output_slot(self, source: int, layer: int) -> int | None:
        """Where the decoders of `source`'s features for output layer `layer` sit (the
        slot of W_dec), or None when they do not write there."""
        outputs = self.output_layers(source)
        return layer - source if layer in outputs else None

    def site_in(self, layer: int) -> str:
        return self.input_site.format(layer=layer)

    def site_out(self, layer: int) -> str:
        return self.output_site.format(layer=layer)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form written to config.json."""
        return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> TranscoderConfig:
        """Read a config written by `to_dict`; `where` names the file in errors."""
        data = dict(data)
        if data.pop("format", FORMAT_NAME) != FORMAT_NAME:
            raise CircuitscopeError(f"{where}: not a circuitscope transcoder config")
        version = data.pop("format_version", FORMAT_VERSION)
        if version > FORMAT_VERSION:
            raise CircuitscopeError(f"{where}: format_version {version} is newer than this code")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise CircuitscopeError(f"{where}: unknown keys {', '.join(unknown)}")
        try:
            return cls(**data)
        except TypeError as error:
            raise CircuitscopeError(f"{where}: {error}") from None
        except CircuitscopeError as error:
            raise CircuitscopeError(f"{where}: {error}") from None

    def with_changes(self, **changes: Any) -> TranscoderConfig:
        """A copy with some fields replaced."""
        return dataclasses.replace(self, **changes)
