"""The C kernel of the feature pass against its torch reference: the same totals and
histograms bit for bit, and of the candidates, each slot's best (the rest cannot enter)."""

from __future__ import annotations

import shutil
from importlib import resources

import pytest
import torch

from circuitscope.features import firings_kernel
from circuitscope.features.firings import (
    Candidates,
    KernelFirings,
    Thresholds,
    TorchFirings,
    firings_of,
)
from circuitscope.features.tables import EMPTY_KEY

N_BINS, INTERVALS, LENGTH, TOP_K, PER_INTERVAL = 16, 4, 7, 3, 2


def _kernel():
    library = firings_kernel.library()
    if library is None:
        pytest.skip("no C compiler: the torch reference runs")
    return library


def _acts(seed: int, n_rows: int = 5 * LENGTH, n_features: int = 11) -> torch.Tensor:
    """Sparse activations with exact ties, negatives, zeros, tiny and large values."""
    generator = torch.Generator().manual_seed(seed)
    acts = torch.randn(n_rows, n_features, generator=generator).exp()
    acts[torch.rand(n_rows, n_features, generator=generator) < 0.6] = 0.0
    acts[torch.rand(n_rows, n_features, generator=generator) < 0.1] *= -1
    acts[3, :] = 0.5  # ties within a row
    acts[:, 2] = acts[:, 2].round()  # ties within a feature
    acts[4, 5], acts[6, 6] = 1e-30, 3e4
    return acts


def _thresholds(seed: int, n_features: int, exponent: torch.Tensor) -> Thresholds:
    generator = torch.Generator().manual_seed(seed + 1)
    top = torch.randint(0, 1 << 31, (n_features,), generator=generator)
    top[::3] = EMPTY_KEY  # tables with room
    samples = torch.randint(0, 1 << 32, (n_features * INTERVALS,), generator=generator)
    samples[::5] = EMPTY_KEY
    return Thresholds(
        exponent=exponent,
        histogram=torch.randint(0, 9, (n_features, N_BINS), generator=generator),
        top=top,
        samples=samples,
        feature_ids=7 * (1 << 24) + torch.arange(n_features) * 3,
        intervals=INTERVALS,
        top_k=TOP_K,
        per_interval=PER_INTERVAL,
    )


def _best_per_slot(candidates: Candidates, capacity: int) -> dict[int, list[tuple]]:
    """slot -> its `capacity` smallest (key, row, value), in that order."""
    by_slot: dict[int, list[tuple]] = {}
    columns = [getattr(candidates, n).tolist() for n in ("slot", "key", "row", "value")]
    rows = zip(*columns, strict=True)
    for slot, key, row, value in rows:
        by_slot.setdefault(slot, []).append((key, row, value))
    return {slot: sorted(entries)[:capacity] for slot, entries in by_slot.items()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kernel_firings_equal_the_torch_reference(seed: int) -> None:
    library = _kernel()
    acts = _acts(seed)
    reference, kernel = TorchFirings(acts, LENGTH), KernelFirings(acts, LENGTH, library)
    (count, batch_max), (k_count, k_max) = reference.totals(), kernel.totals()
    assert torch.equal(count, k_count) and torch.equal(batch_max, k_max)
    assert int(count.sum()) > 40  # the test has firings to compare
    assert int(count.sum()) == int((acts.view(-1, LENGTH, 11)[:, 1:] > 0).sum())
    exponent = torch.frexp(batch_max).exponent.long().clamp(min=-30) + seed  # ranges may be wider
    given = _thresholds(seed, acts.shape[1], exponent)
    k_given = Thresholds(**{**given.__dict__, "histogram": given.histogram.clone()})
    top, samples = reference.select(1000 * seed + 3, given)
    k_top, k_samples = kernel.select(1000 * seed + 3, k_given)
    assert torch.equal(given.histogram, k_given.histogram)
    for ours, theirs, capacity in ((top, k_top, TOP_K), (samples, k_samples, PER_INTERVAL)):
        expected = _best_per_slot(ours, capacity)
        assert _best_per_slot(theirs, capacity + 1) == expected
        assert len(theirs.row) == sum(len(entries) for entries in expected.values())
        assert len(theirs.row) < len(ours.row)  # the kernel offers fewer
    assert 0 < len(top.row) < int(count.sum()) and 0 < len(samples.row) < int(count.sum())


def test_the_kernel_is_built_where_a_compiler_is() -> None:
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler here")
    assert firings_kernel.library() is not None
    assert isinstance(firings_of(torch.zeros(4, 3), 2), KernelFirings)


def test_switched_off_the_torch_reference_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(firings_kernel.SWITCH, "0")
    firings_kernel.library.cache_clear()
    try:
        assert firings_kernel.library() is None
        assert isinstance(firings_of(torch.zeros(4, 3), 2), TorchFirings)
    finally:
        monkeypatch.delenv(firings_kernel.SWITCH)
        firings_kernel.library.cache_clear()


def test_a_compiler_that_fails_falls_back_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.setenv("CIRCUITSCOPE_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "false")  # exits 1 without building anything
    firings_kernel.library.cache_clear()
    try:
        with pytest.warns(UserWarning, match="could not build"):
            assert firings_kernel.library() is None
    finally:
        firings_kernel.library.cache_clear()


def test_a_corrupt_cached_library_falls_back_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.setenv("CIRCUITSCOPE_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "cc")
    source = resources.files("circuitscope.features").joinpath("firings.c").read_bytes()
    cached = firings_kernel.cached_path(source, "cc")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not a shared library")  # as if left by something else
    firings_kernel.library.cache_clear()
    try:
        with pytest.warns(UserWarning, match="could not build or load"):
            assert firings_kernel.library() is None
    finally:
        firings_kernel.library.cache_clear()


def _filled(table) -> list[tuple]:  # noqa: ANN001
    kept = table.position >= 0
    return [
        table.key[kept].tolist(),
        table.position[kept].tolist(),
        table.value[kept].tolist(),
        table.acts[kept].tolist(),
        table.tokens[kept].tolist(),
    ]


@pytest.mark.parametrize("kind", ["clt", "plt"])
def test_a_pass_by_the_kernel_keeps_what_the_torch_pass_keeps(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stats_fixtures import tiny_setup

    from circuitscope.features.stats_settings import StatsSettings
    from circuitscope.features.stream import collect_stats

    _kernel()
    tiny = tiny_setup(kind, n_contexts=20, length=24)
    settings = StatsSettings(top_k=3, intervals=4, per_interval=2, histogram_bins=16, before=4)
    features = {layer: torch.arange(24) for layer in range(tiny.adapter.n_layers)}
    passes = []
    for backend in ("kernel", "torch"):
        if backend == "torch":
            monkeypatch.setattr(firings_kernel, "library", lambda: None)
        batches = tiny.batches(3)
        passes.append(
            collect_stats(
                tiny.adapter, tiny.transcoder, batches, 20, features, settings, progress=False
            )
        )
    kernel, reference = passes
    entries = 0
    for layer, ours in kernel.layers.items():
        theirs = reference.layers[layer]
        assert torch.equal(ours.count, theirs.count)
        assert torch.equal(ours.histogram, theirs.histogram)
        assert torch.equal(ours.exponent, theirs.exponent)
        for a, b in ((ours.top, theirs.top), (ours.samples, theirs.samples)):
            assert _filled(a) == _filled(b)
            entries += len(_filled(a)[0])
    assert entries > 500
