"""Fixtures of the transcoder tests."""

from __future__ import annotations

import pytest
from transcoder_fixtures import ReadRecorder

from circuitscope.transcoders import safetensors_files


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> ReadRecorder:
    """Records every safetensors file opened, and the bytes of tensors read."""
    recorder = ReadRecorder(safetensors_files.safe_open)
    monkeypatch.setattr(safetensors_files, "safe_open", recorder)
    return recorder
