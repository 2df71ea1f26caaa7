"""`convert` and `inspect`: transcoder files in any supported format."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from circuitscope.cli_args import positional
from circuitscope.commands import Command

if TYPE_CHECKING:
    from circuitscope.transcoders.transcoder import Transcoder

Format = Literal["native", "circuit-tracer", "sparsify", "gemmascope"]


@dataclass(kw_only=True)
class ConvertConfig:
    src: str = positional()
    """The transcoder to read: a folder, a params.npz file, or a hub repo id."""
    dst: str = positional()
    """The folder to write."""
    to: Format = "native"
    """The format to write (circuit-tracer picks the set or CLT layout by kind)."""
    source_format: Literal["auto", "native", "circuit-tracer", "sparsify", "gemmascope"] = "auto"
    """The format of SRC (auto: detect it)."""
    force: bool = False
    """Write into DST even if it exists and is not empty."""


def convert_command(config: ConvertConfig) -> int:
    """Convert a transcoder between formats, one layer at a time."""
    from circuitscope.outputs import new_output_folder
    from circuitscope.transcoders.formats import write_format
    from circuitscope.transcoders.transcoder import Transcoder

    dst = new_output_folder(config.dst, config.force)
    transcoder = Transcoder.load(config.src, lazy=True, format=config.source_format)
    write_format(transcoder, dst, config.to)
    cfg = transcoder.config
    print(
        f"wrote {cfg.kind.upper()} ({cfg.n_layers} layers, {sum(cfg.n_features)} features) "
        f"from {config.src} to {dst} as {config.to}"
    )
    return 0


@dataclass(kw_only=True)
class InspectConfig:
    transcoder: str = positional()
    """A transcoder folder (any supported format), a params.npz file, or a hub repo id."""
    source_format: Literal["auto", "native", "circuit-tracer", "sparsify", "gemmascope"] = "auto"
    """The format of TRANSCODER (auto: detect it)."""


def inspect_command(config: InspectConfig) -> int:
    """Print a transcoder's config, sizes and memory (reads headers, not weights)."""
    from circuitscope.transcoders.transcoder import Transcoder

    transcoder = Transcoder.load(config.transcoder, lazy=True, format=config.source_format)
    source = transcoder.source
    cfg = transcoder.config
    print(f"{config.transcoder}  ({source.describe() if source else 'in memory'})")
    for key, value in cfg.to_dict().items():
        if key not in ("format", "format_version", "training") and value not in (None, "", {}):
            print(f"  {key:<18} {value}")
    if cfg.training:
        print(f"  {'training':<18} {cfg.training}")
    _print_sizes(transcoder)
    return 0


def _print_sizes(transcoder: Transcoder) -> None:
    import torch

    from circuitscope.transcoders.layer import torch_dtype

    cfg = transcoder.config
    n_params = transcoder.n_parameters()
    bytes_per = torch.empty(0, dtype=torch_dtype(cfg.dtype)).element_size()
    largest = max(transcoder.n_parameters(layer) for layer in range(cfg.n_layers))
    print(f"  {'features':<18} {sum(cfg.n_features):,} in all")
    print(f"  {'parameters':<18} {n_params:,}")
    print(f"  {'memory (all)':<18} {_size(n_params * bytes_per)} as {cfg.dtype}")
    print(f"  {'memory (1 layer)':<18} up to {_size(largest * bytes_per)} (lazy loading)")
    if transcoder.source is not None:
        print(f"  {'on disk':<18} {_size(_disk_bytes(transcoder.source.location))}")


def _disk_bytes(location: Path) -> int:
    if location.is_file():
        return location.stat().st_size
    return sum(p.stat().st_size for p in location.rglob("*") if p.is_file())


def _size(n_bytes: float) -> str:
    """1536 -> '1.5 KiB'."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    power = 0
    while n_bytes >= 1024 and power < len(units) - 1:
        n_bytes /= 1024
        power += 1
    return f"{int(n_bytes)} B" if power == 0 else f"{n_bytes:.1f} {units[power]}"


COMMANDS = [
    Command("convert", ConvertConfig, convert_command),
    Command("inspect", InspectConfig, inspect_command),
]
