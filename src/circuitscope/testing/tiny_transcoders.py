"""Random transcoders that fit the tiny test models (and any adapter)."""

from __future__ import annotations

from typing import Any, Literal

from circuitscope.models.adapter import ModelAdapter
from circuitscope.transcoders.config import TranscoderConfig
from circuitscope.transcoders.initialize import random_transcoder
from circuitscope.transcoders.transcoder import Transcoder


def config_for(
    adapter: ModelAdapter,
    kind: Literal["clt", "plt"],
    n_features: int,
    dtype: str = "float32",
    skip_connection: bool = False,
    training: dict[str, Any] | None = None,
) -> TranscoderConfig:
    """A JumpReLU transcoder config with the adapter's layers, width and architecture."""
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
    )


def tiny_transcoder(
    adapter: ModelAdapter,
    kind: Literal["clt", "plt"] = "clt",
    n_features: int = 24,
    dtype: str = "float32",
    skip_connection: bool = False,
    seed: int = 0,
    threshold: float = 0.03,
) -> Transcoder:
    """A seeded random CLT or PLT with the adapter's layers and width."""
    config = config_for(adapter, kind, n_features, dtype, skip_connection)
    return random_transcoder(config, seed=seed, threshold=threshold)
