"""Model access: loading, one address table per architecture, and the adapter.

Imports are lazy so that `circuitscope --help` does not load torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

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

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'circuitscope.models' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
