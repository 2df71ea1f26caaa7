"""Fixtures of the training tests, built on tests/data/data_fixtures.py.

(No conftest.py here: a second module named `conftest` on sys.path would shadow
tests/conftest.py, which other tests import from.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "data"))

from data_fixtures import make_store  # noqa: E402  # pyright: ignore[reportMissingImports]
from data_fixtures import tiny_documents as _tiny_documents  # noqa: E402  # pyright: ignore[reportMissingImports]


def tiny_documents(n: int = 300, seed: int = 0) -> list[str]:
    """Documents of four shuffled lines of the tiny tokenizer's training text."""
    return _tiny_documents(n, seed)


@pytest.fixture(scope="session", name="tiny_store")
def tiny_store_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12,000-token store of the tiny llama model, in 1,024-token shards."""
    folder = tmp_path_factory.mktemp("store")
    make_store(folder)
    return folder
