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
    config: TranscoderConfig,
    settings: TrainSettings,
    output_means: torch.Tensor,
    input_samples: torch.Tensor | None = None,
) -> Transcoder:
    """Seeded weights for normalised activations (mean norm √d_model).

    W_enc ~ U(±1/√d), W_dec ~ U(±1/√(n_layers·d)), b_enc = 0, θ = threshold_init,
    b_dec[l] = the mean of layer l's normalised target (output_means: [n_layers, d]),
    W_skip = 0 (the run starts as the skip-free transcoder of the same seed). With
    `settings.encoder_init` "data", the encoders come from `input_samples` instead
    (`data_encoders`).
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
    if settings.encoder_init == "data":
        if input_samples is None:
            raise ValueError("encoder_init 'data' needs input samples")
        for layer in range(n_layers):
            block = transcoder.layer(layer)
            weights, bias = data_encoders(input_samples[:, layer], block.W_enc.shape[1])
            block.W_enc.copy_(weights)
            block.b_enc.copy_(bias)
    return transcoder


def data_encoders(samples: torch.Tensor, n_features: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder weights [d, n] and bias [n] with feature i along samples[i] minus the mean
    of `samples`, with uniform init's expected column norm √(1/3), and the bias cancelling
    the mean: pre-activation i of x is (x − mean) · W_enc[:, i].

    samples: [m, d] normalised inputs, m ≥ n_features (the first n are used)."""
    if len(samples) < n_features:
        raise ValueError(f"{n_features} features need as many samples, got {len(samples)}")
    samples = samples.double()
    mean = samples.mean(0)
    centred = samples[:n_features] - mean
    weights = centred / centred.norm(dim=-1, keepdim=True).clamp_min(1e-12) / 3**0.5
    return weights.T.float(), -(mean @ weights.T).float()
