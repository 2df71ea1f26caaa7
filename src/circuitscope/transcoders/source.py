"""Where a transcoder's layers come from: the interface every file format reads through.

A `LayerSource` yields one layer's tensors at a time, under the native names and
shapes of `circuitscope.transcoders.layer`, so a transcoder bigger than memory
can be used (and converted) layer by layer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Protocol

from torch import Tensor

from circuitscope.transcoders.config import TranscoderConfig


class LayerTensors(Protocol):
    """What a file writer needs of a transcoder: its config and each layer's tensors (a
    `Transcoder` is one). Writers take this, not `Transcoder`, so the format modules never
    import the module that opens them."""

    config: TranscoderConfig

    def read_layer_tensors(self, layer: int) -> dict[str, Tensor]: ...


class LayerSource(ABC):
    """Read access to the layers of a transcoder stored somewhere."""

    config: TranscoderConfig
    location: Path

    @abstractmethod
    def layer_files(self, layer: int) -> dict[str, Path]:
        """Native tensor name -> the file holding it, for layer `layer`."""

    @abstractmethod
    def read_layer(self, layer: int) -> dict[str, Tensor]:
        """Every tensor of layer `layer`, native names and shapes (not yet checked)."""

    def read_named(self, layer: int, names: list[str]) -> dict[str, Tensor]:
        """Just the tensors `names` of layer `layer` (those it has); formats that can read
        less than the whole layer override this."""
        tensors = self.read_layer(layer)
        return {name: tensors[name] for name in names if name in tensors}

    def read_rows(self, layer: int, name: str, rows: Tensor) -> Tensor:
        """Rows `rows` (sorted, unique) of tensor `name`; formats that can read less override."""
        return self.read_layer(layer)[name][rows]

    def check_files(self) -> None:
        """Cheap checks of every layer's files (presence, headers); raise CircuitscopeError.

        By default nothing is checked ahead: each layer is checked when it is read.
        """
        return None

    def describe(self) -> str:
        """The format's name, for messages."""
        return type(self).__name__
