"""Every transcoder file format: telling them apart, reading and writing them.

| format         | on disk                                                        |
| -------------- | -------------------------------------------------------------- |
| native         | config.json + layer_{l}.safetensors                            |
| circuit-tracer | config.yaml + layer_{i}.safetensors (set) or W_enc_/W_dec_ (CLT) |
| sparsify       | {hookpoint}/cfg.json + {hookpoint}/sae.safetensors             |
| gemmascope     | layer_{l}/.../params.npz                                       |
"""

from __future__ import annotations

from pathlib import Path

from circuitscope.errors import CircuitscopeError
from circuitscope.transcoders.source import LayerSource, LayerTensors

FORMATS = ("native", "circuit-tracer", "sparsify", "gemmascope")


def detect_format(path: Path) -> str:
    """Which of FORMATS the file or folder `path` is in."""
    from circuitscope.transcoders.native_io import is_native
    from circuitscope.transcoders.sparsify_io import is_sparsify

    if path.is_file():
        if path.suffix == ".npz":
            return "gemmascope"
        if path.name == "config.yaml":
            return "circuit-tracer"
        if path.name == "config.json" and is_native(path.parent):
            return "native"
        raise CircuitscopeError(f"{path}: give the transcoder's folder, not one of its files")
    if is_native(path):
        return "native"
    if (path / "config.yaml").is_file():
        return "circuit-tracer"
    if is_sparsify(path):
        return "sparsify"
    if next(path.rglob("*.npz"), None) is not None:
        return "gemmascope"
    if (path / "config.json").is_file():
        from circuitscope.transcoders.native_io import read_json

        read_json(path / "config.json")  # says so if it is not valid JSON
        raise CircuitscopeError(f"{path}/config.json is not a circuitscope transcoder config")
    raise CircuitscopeError(
        f"{path}: no transcoder found (looked for config.json, config.yaml, "
        "cfg.json + sae.safetensors, params.npz)"
    )


def open_source(reference: str, format: str = "auto") -> LayerSource:
    """The layers stored at `reference` (a path or hub repo id), checked cheaply."""
    from circuitscope.transcoders.hub import resolve_location

    path = resolve_location(reference)
    if format == "auto":
        format = detect_format(path)
    if path.is_file() and format != "gemmascope":
        path = path.parent
    source = _reader(format, path)
    source.check_files()
    return source


def _reader(format: str, path: Path) -> LayerSource:
    if format == "native":
        from circuitscope.transcoders.native_io import NativeSource

        return NativeSource(path)
    if format == "circuit-tracer":
        return _circuit_tracer_reader(path)
    if format == "sparsify":
        from circuitscope.transcoders.sparsify_io import SparsifySource

        return SparsifySource(path)
    if format == "gemmascope":
        from circuitscope.transcoders.gemmascope import GemmaScopeSource

        return GemmaScopeSource(path)
    raise CircuitscopeError(f"unknown format {format!r}; choose from {', '.join(FORMATS)}")


def _circuit_tracer_reader(folder: Path) -> LayerSource:
    from circuitscope.transcoders.circuit_tracer_clt import CircuitTracerCltSource
    from circuitscope.transcoders.circuit_tracer_common import read_yaml
    from circuitscope.transcoders.circuit_tracer_set import CircuitTracerSetSource

    data = read_yaml(folder)
    kind = data["model_kind"]
    if kind == "transcoder_set":
        return CircuitTracerSetSource(folder, data)
    if kind == "cross_layer_transcoder":
        return CircuitTracerCltSource(folder, data)
    raise CircuitscopeError(f"{folder}/config.yaml: unknown model_kind {kind!r}")


def write_format(transcoder: LayerTensors, folder: Path, format: str) -> Path:
    """Write `transcoder` to `folder` in `format` (one of FORMATS), layer by layer."""
    if format == "native":
        from circuitscope.transcoders.native_io import write_native

        return write_native(transcoder, folder)
    if format == "circuit-tracer":
        if transcoder.config.kind == "clt":
            from circuitscope.transcoders.circuit_tracer_clt import write_circuit_tracer_clt

            return write_circuit_tracer_clt(transcoder, folder)
        from circuitscope.transcoders.circuit_tracer_set import write_circuit_tracer_set

        return write_circuit_tracer_set(transcoder, folder)
    if format == "sparsify":
        from circuitscope.transcoders.sparsify_io import write_sparsify

        return write_sparsify(transcoder, folder)
    if format == "gemmascope":
        from circuitscope.transcoders.gemmascope import write_gemmascope

        return write_gemmascope(transcoder, folder)
    raise CircuitscopeError(f"unknown format {format!r}; choose from {', '.join(FORMATS)}")
