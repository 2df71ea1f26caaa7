"""A tiny activation store recorded from the tiny llama model, for data and training tests."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from circuitscope.data.collect import collect_activations
from circuitscope.data.packing import batched, pack_contexts
from circuitscope.data.store_format import Manifest
from circuitscope.models.adapter import ModelAdapter
from circuitscope.testing.tiny_models import TRAINING_TEXT, tiny_model, tiny_tokenizer

CONTEXT = 32


def tiny_documents(n: int = 300, seed: int = 0) -> list[str]:
    """Documents of four shuffled lines of the tiny tokenizer's training text."""
    lines = TRAINING_TEXT.splitlines()
    return [" ".join(random.Random(seed * 100_000 + i).sample(lines, 4)) for i in range(n)]


def tiny_adapter(arch: str = "llama") -> ModelAdapter:
    return ModelAdapter(tiny_model(arch))


def make_store(
    folder: Path, n_tokens: int = 12_000, shard_tokens: int = 1024, dtype: str = "float16"
) -> Manifest:
    adapter = tiny_adapter()
    contexts = pack_contexts(tiny_documents(), tiny_tokenizer(), CONTEXT)
    manifest = Manifest(
        model="tiny-llama",
        architecture="llama",
        n_layers=adapter.n_layers,
        d_model=adapter.d_model,
        dtype=dtype,
        context_length=CONTEXT,
        seed=0,
    )
    return collect_activations(
        adapter, batched(contexts, 16), folder, manifest, n_tokens, shard_tokens, 2, False
    )


@pytest.fixture(scope="session", name="tiny_store")
def tiny_store_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12,000-token store of the tiny llama model, in 1,024-token shards."""
    folder = tmp_path_factory.mktemp("store")
    make_store(folder)
    return folder
