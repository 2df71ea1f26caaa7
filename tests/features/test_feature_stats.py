"""The streaming pass keeps exactly what a brute-force pass over every token finds."""

from __future__ import annotations

import pytest
import torch
from stats_fixtures import (
    all_acts,
    brute_entries,
    brute_histogram,
    brute_samples,
    brute_top,
    tiny_setup,
)

from circuitscope.features import firings_kernel
from circuitscope.features.stats_settings import StatsSettings
from circuitscope.features.stream import collect_stats

SETTINGS = StatsSettings(top_k=5, intervals=4, per_interval=3, histogram_bins=16, before=3, after=2)


def _collect(tiny, batch_size: int, n_contexts: int | None = None):
    n = n_contexts or len(tiny.ids)
    features = {layer: torch.arange(24) for layer in range(tiny.adapter.n_layers)}
    return collect_stats(
        tiny.adapter,
        tiny.transcoder,
        tiny.batches(batch_size),
        n,
        features,
        SETTINGS,
        progress=False,
    )


@pytest.mark.parametrize("backend", ["kernel", "torch"])
@pytest.mark.parametrize("kind", ["clt", "plt"])
def test_stream_equals_brute_force(
    kind: str, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend == "torch":
        monkeypatch.setattr(firings_kernel, "library", lambda: None)
    elif firings_kernel.library() is None:
        pytest.skip("no C compiler: the kernel is not built")
    tiny = tiny_setup(kind)
    stats = _collect(tiny, batch_size=5)
    assert stats.tokens == 12 * 15 and stats.contexts == 12
    checked_top = checked_samples = 0
    for layer, layer_stats in stats.layers.items():
        acts = all_acts(tiny, layer)
        for feature in range(24):
            values, positions = brute_entries(acts, feature)
            assert int(layer_stats.count[feature]) == len(values)
            exponent, histogram = brute_histogram(values, SETTINGS.histogram_bins)
            if len(values):
                assert int(layer_stats.exponent[feature]) == exponent
                assert torch.equal(layer_stats.histogram[feature], histogram)
            top = brute_top(values, positions, SETTINGS.top_k)
            kept = layer_stats.top.position[feature]
            assert kept[: len(top)].tolist() == [p for _, p in top]
            assert layer_stats.top.value[feature, : len(top)].tolist() == [v for v, _ in top]
            assert (kept[len(top) :] == -1).all()
            checked_top += len(top)
            global_id = layer * (1 << 24) + feature
            expected = brute_samples(values, positions, global_id, exponent, 4, 3)
            for interval in range(4):
                got = layer_stats.samples.position[feature * 4 + interval]
                got = [int(p) for p in got if p >= 0]
                assert sorted(got) == sorted(expected.get(interval, []))
                checked_samples += len(got)
    assert checked_top > 50 and checked_samples > 50


def test_windows_hold_the_activations_and_tokens_around_the_peak() -> None:
    tiny = tiny_setup("clt")
    stats = _collect(tiny, batch_size=4)
    layer_stats = stats.layers[1]
    acts = all_acts(tiny, 1)
    length = tiny.ids.shape[1]
    checked = 0
    for feature in range(24):
        for place in range(SETTINGS.top_k):
            position = int(layer_stats.top.position[feature, place])
            if position < 0:
                continue
            context, t = divmod(position, length)
            for j, offset in enumerate(range(-3, 3)):
                where = t + offset
                token = int(layer_stats.top.tokens[feature, place, j])
                act = float(layer_stats.top.acts[feature, place, j])
                if 1 <= where < length:
                    assert token == int(tiny.ids[context, where])
                    assert act == float(acts[context, where, feature])
                else:
                    assert token == -1 and act == 0.0
            checked += 1
    assert checked > 20


def test_batch_size_does_not_change_the_result() -> None:
    tiny = tiny_setup("clt")
    one, other = _collect(tiny, batch_size=1), _collect(tiny, batch_size=7)
    for layer in one.layers:
        a, b = one.layers[layer], other.layers[layer]
        assert torch.equal(a.histogram, b.histogram)
        assert torch.equal(a.top.position, b.top.position)
        assert torch.equal(a.samples.position, b.samples.position)
        filled = a.samples.position >= 0
        assert torch.equal(a.samples.acts[filled], b.samples.acts[filled])
        assert torch.equal(a.top.tokens[a.top.position >= 0], b.top.tokens[b.top.position >= 0])
