"""Cross-layer and per-layer transcoders: modules, activations, files, other formats.

Imports are lazy so that importing the package (e.g. for the CLI) does not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from circuitscope.lazy import lazy_getattr

if TYPE_CHECKING:
    from circuitscope.transcoders.activations import (
        BatchTopK,
        JumpReLU,
        ReLU,
        TopK,
        make_activation,
    )
    from circuitscope.transcoders.checks import check_against_model, model_mismatches
    from circuitscope.transcoders.config import TranscoderConfig
    from circuitscope.transcoders.formats import FORMATS, detect_format, write_format
    from circuitscope.transcoders.initialize import random_transcoder
    from circuitscope.transcoders.layer import TranscoderLayer
    from circuitscope.transcoders.normalization import fold_scales
    from circuitscope.transcoders.transcoder import Transcoder

_EXPORTS = {
    "TranscoderConfig": "circuitscope.transcoders.config",
    "Transcoder": "circuitscope.transcoders.transcoder",
    "TranscoderLayer": "circuitscope.transcoders.layer",
    "JumpReLU": "circuitscope.transcoders.activations",
    "TopK": "circuitscope.transcoders.activations",
    "BatchTopK": "circuitscope.transcoders.activations",
    "ReLU": "circuitscope.transcoders.activations",
    "make_activation": "circuitscope.transcoders.activations",
    "FORMATS": "circuitscope.transcoders.formats",
    "detect_format": "circuitscope.transcoders.formats",
    "write_format": "circuitscope.transcoders.formats",
    "check_against_model": "circuitscope.transcoders.checks",
    "model_mismatches": "circuitscope.transcoders.checks",
    "fold_scales": "circuitscope.transcoders.normalization",
    "random_transcoder": "circuitscope.transcoders.initialize",
}

__all__ = [
    "BatchTopK",
    "FORMATS",
    "JumpReLU",
    "ReLU",
    "TopK",
    "Transcoder",
    "TranscoderConfig",
    "TranscoderLayer",
    "check_against_model",
    "detect_format",
    "fold_scales",
    "make_activation",
    "model_mismatches",
    "random_transcoder",
    "write_format",
]


__getattr__ = lazy_getattr(__name__, _EXPORTS)
