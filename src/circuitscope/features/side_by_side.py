"""Run several layers' table updates at once, one torch thread each.

A layer's update (`LayerStats.update`) is many small operations that use one core
each (nonzero, gathers, sorts, bincounts), so on n cores n layers updated side by
side finish about n times sooner than one after another with n threads. Each
layer's stats are touched by one job only, and every batch's jobs end before the
next batch starts, so the result is the same as serial updates, exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType

import torch


class SideBySide:
    """A pool of `width` workers; `run(jobs)` runs them and returns when all are done."""

    def __init__(self, width: int) -> None:
        self.width = max(1, width)
        self._pool = ThreadPoolExecutor(self.width) if self.width > 1 else None

    def run(self, jobs: list[Callable[[], None]]) -> None:
        if self._pool is None or len(jobs) == 1:
            for job in jobs:
                job()
            return
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for future in [self._pool.submit(job) for job in jobs]:
                future.result()
        finally:
            torch.set_num_threads(threads)

    def __enter__(self) -> SideBySide:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._pool is not None:
            self._pool.shutdown()
