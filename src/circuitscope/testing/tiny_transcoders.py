"""Random transcoders that fit the tiny test models (and any adapter)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from circuitscope.models.adapter import ModelAdapter
from circuitscope.transcoders.config import INPUT_KINDS, TranscoderConfig
from circuitscope.transcoders.initialize import random_transcoder
from circuitscope.transcoders.transcoder import Transcoder


def config_for(
    adapter: ModelAdapter,
    kind: Literal["clt", "plt"],
    n_features: int,
    dtype: str = "float32",
    skip_connection: bool = False,
    training: dict[str, Any] | None = None,
    input_site: str = "mlp_in",
) -> TranscoderConfig:
    """A JumpReLU transcoder config with the adapter's layers, width and architecture.
    input_site: "mlp_in" or "resid_mid"."""
    templates = {kind: template for template, kind in INPUT_KINDS.items()}
    return TranscoderConfig(
        kind=kind,
        n_layers=adapter.n_layers,
        d_model=adapter.d_model,
        n_features=[n_features] * adapter.n_layers,
        activation="jumprelu",
        activation_params={"bandwidth": 0.05},
        model_id=str(getattr(adapter.config, "_name_or_path", "")) or "tiny",
        architecture=adapter.spec.name,
        skip_connection=skip_connection,
        dtype=dtype,
        training=training or {},
        input_site=templates[input_site],
    )


def tiny_transcoder(
    adapter: ModelAdapter,
    kind: Literal["clt", "plt"] = "clt",
    n_features: int = 24,
    dtype: str = "float32",
    skip_connection: bool = False,
    seed: int = 0,
    threshold: float = 0.03,
    input_site: str = "mlp_in",
) -> Transcoder:
    """A seeded random CLT or PLT with the adapter's layers and width, reading `input_site`
    ("mlp_in" or "resid_mid")."""
    config = config_for(adapter, kind, n_features, dtype, skip_connection, input_site=input_site)
    return random_transcoder(config, seed=seed, threshold=threshold)


@dataclass(frozen=True)
class Variant:
    """A kind of transcoder the exactness tests run on."""

    kind: Literal["clt", "plt"]
    input_site: str = "mlp_in"
    skip: bool = False

    @property
    def name(self) -> str:
        parts = [self.kind] + ([self.input_site] if self.input_site != "mlp_in" else [])
        return "-".join(parts + (["skip"] if self.skip else []))


VARIANTS = (
    Variant("clt"),
    Variant("plt"),
    Variant("plt", skip=True),
    Variant("clt", "resid_mid"),
    Variant("plt", "resid_mid", skip=True),
)
"""mlp_in CLT and PLT (GemmaScope-like), a PLT with a skip connection, and the
published circuit-tracer kinds: a resid_mid CLT and a resid_mid PLT with W_skip."""


def tiny_exact_pair(arch: str, variant: Variant) -> tuple[ModelAdapter, Transcoder]:
    """A tiny float64 model of `arch` and a transcoder of `variant` for it (exact checks)."""
    import torch

    from circuitscope.testing.tiny_models import tiny_model

    adapter = ModelAdapter(tiny_model(arch, dtype=torch.float64))
    transcoder = tiny_transcoder(
        adapter,
        variant.kind,
        dtype="float64",
        skip_connection=variant.skip,
        input_site=variant.input_site,
    )
    return adapter, transcoder
