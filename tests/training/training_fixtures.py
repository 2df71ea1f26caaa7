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


TOPK_PLT_RUN = dict(
    kind="plt", activation="topk", k=4, n_features=64, batch_size=256, autocast="off"
)
"""`TrainSettings` of a short TopK PLT run on the tiny store (fp32, so runs compare exactly)."""


@pytest.fixture(scope="session", name="tiny_store")
def tiny_store_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12,000-token store of the tiny llama model, in 1,024-token shards."""
    folder = tmp_path_factory.mktemp("store")
    make_store(folder)
    return folder


def model_and_corpus_folders(root: Path, n_documents: int, seed: int) -> tuple[Path, Path]:
    """A saved tiny llama (with its tokenizer) and a folder of text documents, under root."""
    from circuitscope.testing.tiny_models import tiny_model, tiny_tokenizer

    model = root / "tiny-llama"
    tiny_model("llama").save_pretrained(model)
    tiny_tokenizer().save_pretrained(model)
    corpus = root / "corpus"
    corpus.mkdir()
    for i, doc in enumerate(tiny_documents(n_documents, seed=seed)):
        (corpus / f"doc{i:03d}.txt").write_text(doc)
    return model, corpus


def transcoder_weights(folder: Path) -> dict:
    """Every tensor of a native transcoder folder, keyed by file and name."""
    from safetensors.torch import load_file

    out: dict = {}
    for file in sorted(folder.glob("layer_*.safetensors")):
        out.update({f"{file.name}/{k}": v for k, v in load_file(file).items()})
    return out


def rewind_to_checkpoint(run: Path, step: int, last_step: int) -> None:
    """Undo the end of a finished run: drop its transcoder and its last checkpoint
    (`last_step`) and name the one at `step` latest, as if it had stopped there."""
    import shutil

    shutil.rmtree(run / "transcoder")
    shutil.rmtree(run / "checkpoints" / f"step-{last_step:08d}")
    (run / "checkpoints" / "latest").write_text(f"step-{step:08d}\n")
