"""Checks on load: a layer's tensors against the config, a transcoder against a model."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from circuitscope.errors import CircuitscopeError
from circuitscope.models import sites
from circuitscope.transcoders.config import INPUT_KINDS, TranscoderConfig
from circuitscope.transcoders.layer import expected_shapes
from circuitscope.transcoders.source import LayerTensors

if TYPE_CHECKING:
    pass


def check_layer_header(
    config: TranscoderConfig,
    layer: int,
    found: Mapping[str, tuple[tuple[int, ...], str]],
    files: Mapping[str, Path],
    only: Collection[str] | None = None,
) -> None:
    """Names, shapes and dtypes of layer `layer` (from file headers) against `config`.

    found: name -> (shape, dtype name); files: name -> the file it came from;
    only: check just these names (e.g. the encoder's, read without the decoder).
    """
    expected = expected_shapes(config, layer)
    if only is not None:
        expected = {name: shape for name, shape in expected.items() if name in only}
    where = _where(files, next(iter(expected)))
    missing = [name for name in expected if name not in found]
    if missing:
        raise CircuitscopeError(f"{where}: layer {layer} lacks tensor(s) {', '.join(missing)}")
    for name, shape in expected.items():
        got_shape, got_dtype = found[name]
        if tuple(got_shape) != shape:
            raise CircuitscopeError(
                f"{_where(files, name)}: {name} has shape {tuple(got_shape)}, "
                f"expected {shape} for layer {layer}"
            )
        if got_dtype != config.dtype:
            raise CircuitscopeError(
                f"{_where(files, name)}: {name} is {got_dtype}, but the config says {config.dtype}"
            )


def check_layer_tensors(
    config: TranscoderConfig,
    layer: int,
    tensors: Mapping[str, Tensor],
    files: Mapping[str, Path],
    only: Collection[str] | None = None,
) -> None:
    """Shapes, dtypes and finiteness of a layer's tensors (of just `only`, when given)."""
    found = {
        name: (tuple(t.shape), str(t.dtype).removeprefix("torch.")) for name, t in tensors.items()
    }
    check_layer_header(config, layer, found, files, only)
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = "NaN" if bool(torch.isnan(tensor).any()) else "infinite values"
            raise CircuitscopeError(
                f"{_where(files, name)}: {name} of layer {layer} contains {bad}"
            )


def _where(files: Mapping[str, Path], name: str) -> Path | str:
    if name in files:
        return files[name]
    return next(iter(files.values()), "transcoder")


def _model_shape(model: Any) -> tuple[int, int, str]:
    """(layers, d_model, architecture) of a `ModelAdapter` or of a transformers config (so
    a transcoder can be checked before the model's weights load)."""
    from circuitscope.models.architectures import spec_for_config

    if hasattr(model, "spec"):
        return model.n_layers, model.d_model, model.spec.name
    return int(model.num_hidden_layers), int(model.hidden_size), spec_for_config(model).name


def model_mismatches(config: TranscoderConfig, model: Any) -> list[str]:
    """One sentence per way the transcoder does not fit the model (empty when it fits).
    model: a `ModelAdapter`, or the model's transformers config."""
    problems: list[str] = []
    n_layers, d_model, architecture = _model_shape(model)
    if config.n_layers != n_layers:
        problems.append(f"transcoder has {config.n_layers} layers, the model has {n_layers}")
    if config.d_model != d_model:
        problems.append(f"transcoder d_model is {config.d_model}, the model's is {d_model}")
    if config.architecture and config.architecture != architecture:
        problems.append(
            f"transcoder was made for a {config.architecture} model, this is {architecture}"
        )
    if config.input_site not in INPUT_KINDS:
        readable = " or ".join(repr(site) for site in INPUT_KINDS)
        problems.append(f"input site {config.input_site!r} is not a transcoder input ({readable})")
    if config.site_out(0) != sites.mlp_out(0):
        problems.append(f"output site {config.output_site!r} is not the MLP output")
    return problems


def check_against_model(transcoder: LayerTensors | TranscoderConfig, model: Any) -> None:
    """Raise CircuitscopeError listing every mismatch between a transcoder and a model
    (a `ModelAdapter`, or its transformers config: `load_model(..., check=...)`)."""
    config = transcoder if isinstance(transcoder, TranscoderConfig) else transcoder.config
    problems = model_mismatches(config, model)
    if problems:
        hf_config = getattr(model, "config", model)
        name = getattr(hf_config, "_name_or_path", "") or _model_shape(model)[2]
        raise CircuitscopeError(f"transcoder does not fit model {name}: " + "; ".join(problems))
