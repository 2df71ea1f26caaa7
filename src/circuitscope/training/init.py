"""The starting weights of a transcoder to train."""

from __future__ import annotations

import torch

from circuitscope.training.settings import TrainSettings
from circuitscope.transcoders.config import INPUT_KINDS, TranscoderConfig
from circuitscope.transcoders.transcoder import Transcoder


def training_config(
    settings: TrainSettings,
    n_layers: int,
    d_model: int,
    model_id: str,
    architecture: str,
    input_site: str = "mlp_in",
) -> TranscoderConfig:
    """The transcoder config a run with `settings` trains; input_site "mlp_in" or "resid_mid"."""
    templates = {kind: template for template, kind in INPUT_KINDS.items()}
    params: dict[str, object] = {}
    if settings.activation == "jumprelu":
        params = {"bandwidth": settings.bandwidth}
    elif settings.activation in ("topk", "batchtopk"):
        params = {"k": settings.k, "relu": True}
    return TranscoderConfig(
        kind=settings.kind,
        n_layers=n_layers,
        d_model=d_model,
        n_features=[settings.n_features] * n_layers,
        activation=settings.activation,
        activation_params=params,
        model_id=model_id,
        architecture=architecture,
        input_site=templates[input_site],
        skip_connection=settings.skip_connection,
    )


@torch.no_grad()
def init_transcoder(
    config: TranscoderConfig, settings: TrainSettings, output_means: torch.Tensor
) -> Transcoder:
    """Seeded weights for normalised activations (mean norm √d_model).

    W_enc ~ U(±1/√d), W_dec ~ U(±1/√(n_layers·d)), b_enc = 0, θ = threshold_init,
    b_dec[l] = the mean of layer l's normalised target (output_means: [n_layers, d]),
    W_skip = 0 (the run starts as the skip-free transcoder of the same seed).
    """
    generator = torch.Generator().manual_seed(settings.seed)
    transcoder = Transcoder(config)
    d, n_layers = config.d_model, config.n_layers
    for layer in range(n_layers):
        block = transcoder.layer(layer)
        enc_bound = 1 / d**0.5
        dec_bound = 1 / (n_layers * d) ** 0.5
        block.W_enc.copy_((torch.rand(block.W_enc.shape, generator=generator) * 2 - 1) * enc_bound)
        block.W_dec.copy_((torch.rand(block.W_dec.shape, generator=generator) * 2 - 1) * dec_bound)
        block.b_enc.zero_()
        if block.W_skip is not None:
            block.W_skip.zero_()
        block.b_dec.copy_(output_means[layer].to(block.b_dec.dtype))
        threshold = getattr(block.activation, "threshold", None)
        if threshold is not None:
            threshold.fill_(settings.threshold_init)
    return transcoder
