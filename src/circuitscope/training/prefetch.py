"""Overlap recording and training: a thread makes the next batches while a step runs.

`PrefetchSource` wraps any `BatchSource` whose `batch(step, rows)` is a pure function
of its arguments (both sources are), so the batches, and a resumed run, are exactly
those of the wrapped source; only the time they arrive changes. On a CPU the two
threads each run their torch operations on one core (`torch.set_num_threads(1)` in
both), so recording from the model (one core) and the training step (the other) run
at once instead of one after the other; torch releases the GIL inside its kernels.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from typing import Any

import torch
from torch import Tensor

from circuitscope.training.sources import BatchSource

_STOP = object()


class PrefetchSource:
    """Batches of `source`, `ahead` of them made in advance by a background thread."""

    def __init__(
        self,
        source: BatchSource,
        ahead: int = 2,
        producer_threads: int = 1,
    ) -> None:
        self.source = source
        self.stats = source.stats
        self.n_layers, self.d_model = source.n_layers, source.d_model
        self.model_id, self.architecture = source.model_id, source.architecture
        self.input_site = source.input_site
        self.ahead = ahead
        self.producer_threads = producer_threads
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=ahead)
        self._thread: threading.Thread | None = None
        self._halt = threading.Event()
        self._next: tuple[int, tuple[int, int] | None] | None = None
        """The (step, rows) the thread will deliver next."""

    def batch(self, step: int, rows: tuple[int, int] | None) -> tuple[Tensor, Tensor]:
        """(mlp_in, mlp_out) of step `step`: the wrapped source's, made ahead of time."""
        if self._next != (step, rows):
            self._restart(step, rows)
        item = self._queue.get()
        if isinstance(item, BaseException):
            self.close()
            raise item
        self._next = (step + 1, rows)
        return item

    def describe(self) -> dict[str, Any]:
        return self.source.describe()

    def close(self) -> None:
        """Stop the background thread (it finishes the batch it is making)."""
        if self._thread is None:
            return
        self._halt.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)
        self._thread.join()
        self._thread, self._next = None, None
        self._queue = queue.Queue(maxsize=self.ahead)

    def _restart(self, step: int, rows: tuple[int, int] | None) -> None:
        self.close()
        self._halt = threading.Event()
        self._thread = threading.Thread(
            target=self._produce, args=(step, rows, self._halt), daemon=True
        )
        self._next = (step, rows)
        self._thread.start()

    def _produce(self, step: int, rows: tuple[int, int] | None, halt: threading.Event) -> None:
        torch.set_num_threads(self.producer_threads)
        while not halt.is_set():
            try:
                item: Any = self.source.batch(step, rows)
            except BaseException as error:  # handed to the consumer, raised there
                item = error
            while not halt.is_set():
                try:
                    self._queue.put(item, timeout=0.05)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException):
                return
            step += 1


def split_threads(total: int) -> tuple[int, int]:
    """(trainer threads, recording threads) out of `total`: half each, the trainer
    taking the odd one; at least one each."""
    producer = max(1, total // 2)
    return max(1, total - producer), producer
