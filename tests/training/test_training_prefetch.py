"""`PrefetchSource`: the same batches as the source it wraps, made ahead in a thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from training_fixtures import tiny_documents

from circuitscope.data.packing import pack_contexts
from circuitscope.models.adapter import ModelAdapter
from circuitscope.testing.tiny_models import tiny_model, tiny_tokenizer
from circuitscope.training.checkpoint import latest_checkpoint
from circuitscope.training.prefetch import PrefetchSource, split_threads
from circuitscope.training.settings import TrainSettings
from circuitscope.training.sources import ModelSource
from circuitscope.training.trainer import train
from circuitscope.transcoders.transcoder import Transcoder


def _model_source(batch_size: int = 64) -> ModelSource:
    adapter = ModelAdapter(tiny_model("llama"))
    tokenizer, documents = tiny_tokenizer(), tiny_documents()

    def contexts():
        return pack_contexts(documents, tokenizer, 32)

    return ModelSource(adapter, contexts, batch_size, 3, "tiny-llama", "llama")


def test_prefetched_batches_equal_the_sources_in_any_order():
    plain, ahead = _model_source(), PrefetchSource(_model_source(), ahead=2)
    try:
        # in order, then a jump back (a resume), then forward again with other rows
        for step, rows in [(0, None), (1, None), (2, None), (1, None), (2, None), (5, (8, 40))]:
            x, y = ahead.batch(step, rows)
            x0, y0 = plain.batch(step, rows)
            assert torch.equal(x, x0) and torch.equal(y, y0)
    finally:
        ahead.close()
    assert ahead._thread is None


class _Failing:
    """A source whose batch 2 raises."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.stats, self.n_layers, self.d_model = inner.stats, inner.n_layers, inner.d_model
        self.model_id, self.architecture = inner.model_id, inner.architecture
        self.input_site = inner.input_site

    def batch(self, step: int, rows: tuple[int, int] | None):
        if step == 2:
            raise RuntimeError("disk gone")
        return self.inner.batch(step, rows)

    def describe(self) -> dict[str, Any]:
        return {}


def test_an_error_in_the_thread_is_raised_in_the_caller():
    source = PrefetchSource(_Failing(_model_source()))  # type: ignore[arg-type]
    source.batch(0, None)
    source.batch(1, None)
    with pytest.raises(RuntimeError, match="disk gone"):
        source.batch(2, None)
    assert source._thread is None


def test_training_with_prefetch_equals_training_without(tmp_path: Path):
    settings = TrainSettings(
        kind="plt",
        activation="topk",
        k=4,
        n_features=32,
        steps=12,
        batch_size=64,
        autocast="off",
        log_every=4,
        checkpoint_every=6,
    )
    train(_model_source(), settings, tmp_path / "plain", progress=False)
    ahead = PrefetchSource(_model_source())
    try:
        train(ahead, settings, tmp_path / "ahead", progress=False)
    finally:
        ahead.close()
    a = Transcoder.load(tmp_path / "plain" / "transcoder", lazy=False).state_dict()
    b = Transcoder.load(tmp_path / "ahead" / "transcoder", lazy=False).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)
    assert latest_checkpoint(tmp_path / "ahead") is not None


@pytest.mark.parametrize(
    ("total", "expected"), [(1, (1, 1)), (2, (1, 1)), (3, (2, 1)), (16, (8, 8))]
)
def test_threads_are_split_between_training_and_recording(total: int, expected: tuple):
    assert split_threads(total) == expected
