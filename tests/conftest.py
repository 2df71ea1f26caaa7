"""Shared fixtures: tiny random models of every supported architecture."""

from __future__ import annotations

import pytest
import torch

from circuitscope.models.adapter import ModelAdapter
from circuitscope.testing.tiny_models import ARCHITECTURES, tiny_model, tiny_tokenizer

PROMPT = "The capital of France is Paris, and two plus two is four."


@pytest.fixture(params=ARCHITECTURES)
def arch(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def tiny_adapter(arch: str) -> ModelAdapter:
    return ModelAdapter(tiny_model(arch))


@pytest.fixture
def prompt_ids() -> torch.Tensor:
    """[1, seq] token ids of `PROMPT` under the tiny tokenizer."""
    return torch.tensor([tiny_tokenizer()(PROMPT).input_ids])
