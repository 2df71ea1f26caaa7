"""Model access: loading, one address table per architecture, and the adapter.

Imports are lazy so that `circuitscope --help` does not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from circuitscope.lazy import lazy_getattr

if TYPE_CHECKING:
    from circuitscope.models.adapter import ForwardResult, ModelAdapter, Recording
    from circuitscope.models.architectures import SUPPORTED, ArchitectureSpec, spec_for_config
    from circuitscope.models.frozen import FrozenState
    from circuitscope.models.loading import LoadedModel, load_model

_EXPORTS = {
    "ArchitectureSpec": "circuitscope.models.architectures",
    "SUPPORTED": "circuitscope.models.architectures",
    "spec_for_config": "circuitscope.models.architectures",
    "ForwardResult": "circuitscope.models.adapter",
    "ModelAdapter": "circuitscope.models.adapter",
    "Recording": "circuitscope.models.adapter",
    "FrozenState": "circuitscope.models.frozen",
    "LoadedModel": "circuitscope.models.loading",
    "load_model": "circuitscope.models.loading",
}

__all__ = [
    "SUPPORTED",
    "ArchitectureSpec",
    "ForwardResult",
    "FrozenState",
    "LoadedModel",
    "ModelAdapter",
    "Recording",
    "load_model",
    "spec_for_config",
]


__getattr__ = lazy_getattr(__name__, _EXPORTS)
