"""Helpers for the transcoder tests: small random transcoders, inputs, a read recorder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from circuitscope.transcoders.config import TranscoderConfig
from circuitscope.transcoders.initialize import random_transcoder
from circuitscope.transcoders.transcoder import Transcoder

D_MODEL = 8
N_LAYERS = 3


def make_config(kind: str = "clt", **changes: Any) -> TranscoderConfig:
    values: dict[str, Any] = dict(
        kind=kind,
        n_layers=N_LAYERS,
        d_model=D_MODEL,
        n_features=[16] * N_LAYERS,
        activation="jumprelu",
        activation_params={"bandwidth": 0.05},
        model_id="tiny/llama",
        architecture="llama",
        training={"steps": 10, "corpus": "unit test"},
    )
    values.update(changes)
    return TranscoderConfig(**values)


def make_transcoder(kind: str = "clt", seed: int = 0, **changes: Any) -> Transcoder:
    return random_transcoder(make_config(kind, **changes), seed=seed)


def random_inputs(n_layers: int = N_LAYERS, rows: int = 6, seed: int = 1) -> dict[int, Tensor]:
    """mlp_in per layer, [2, rows, d_model]."""
    generator = torch.Generator().manual_seed(seed)
    return {layer: torch.randn(2, rows, D_MODEL, generator=generator) for layer in range(n_layers)}


def assert_same_outputs(a: Transcoder, b: Transcoder, inputs: dict[int, Tensor]) -> None:
    """Identical activations and reconstructions, bit for bit."""
    acts_a, rec_a = a(inputs)
    acts_b, rec_b = b(inputs)
    assert sorted(rec_a) == sorted(rec_b) == sorted(inputs)
    for layer in inputs:
        assert torch.equal(acts_a[layer], acts_b[layer]), f"activations differ at layer {layer}"
        assert torch.equal(rec_a[layer], rec_b[layer]), f"reconstructions differ at layer {layer}"
    assert any(bool((acts_a[layer] != 0).any()) for layer in inputs), "no feature ever fired"


def assert_same_weights(a: Transcoder, b: Transcoder) -> None:
    assert a.config.n_layers == b.config.n_layers
    for layer in range(a.config.n_layers):
        ta, tb = a.read_layer_tensors(layer), b.read_layer_tensors(layer)
        assert sorted(ta) == sorted(tb)
        for name in ta:
            assert ta[name].dtype == tb[name].dtype
            assert torch.equal(ta[name], tb[name]), f"{name} of layer {layer} differs"


class ReadRecorder:
    """Stands in for safetensors.safe_open: records each file opened and the bytes read."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.opened: list[str] = []
        self.bytes_read = 0

    def reset(self) -> None:
        self.opened.clear()
        self.bytes_read = 0

    def __call__(self, path: str, framework: str, device: str = "cpu") -> Any:
        self.opened.append(Path(path).name)
        return _Handle(self.real(path, framework=framework, device=device), self)

    def count(self, tensor: Tensor) -> Tensor:
        self.bytes_read += tensor.numel() * tensor.element_size()
        return tensor


class _Handle:
    def __init__(self, handle: Any, recorder: ReadRecorder) -> None:
        self.handle, self.recorder = handle, recorder

    def __enter__(self) -> _Handle:
        self.handle.__enter__()
        return self

    def __exit__(self, *args: Any) -> None:
        self.handle.__exit__(*args)

    def keys(self) -> list[str]:
        return list(self.handle.keys())

    def get_tensor(self, name: str) -> Tensor:
        return self.recorder.count(self.handle.get_tensor(name))

    def get_slice(self, name: str) -> _Slice:
        return _Slice(self.handle.get_slice(name), self.recorder)


class _Slice:
    def __init__(self, view: Any, recorder: ReadRecorder) -> None:
        self.view, self.recorder = view, recorder

    def get_shape(self) -> list[int]:
        return self.view.get_shape()

    def get_dtype(self) -> str:
        return self.view.get_dtype()

    def __getitem__(self, index: Any) -> Tensor:
        return self.recorder.count(self.view[index])
