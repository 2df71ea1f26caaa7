"""What the batched backward passes keep in memory."""

import gc
import sys
import weakref

import pytest
import torch

from circuitscope.attribution.attribute import _no_parameter_grads
from circuitscope.attribution.columns import all_columns
from circuitscope.attribution.rows import Injection, RowComputer
from circuitscope.models import sites
from circuitscope.testing.tiny_graphs import traced_tiny


@pytest.mark.parametrize("arch", ["llama", "gemma2"])
def test_a_prefix_graph_keeps_no_activations(arch):
    """Frozen norms, attention, taps and inlets save only weights and recorded tensors:
    nothing of shape [batch, seq, ...] stays alive once the graph is built."""
    rep = traced_tiny(arch, "plt").replacement
    batch = 8
    saved: list[weakref.ref] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        saved.append(weakref.ref(tensor))
        return tensor

    layout = all_columns(len(rep.features), rep.n_layers, rep.seq_len)
    with _no_parameter_grads(rep.adapter.model, rep.transcoder):
        computer = RowComputer(rep, layout, batch, writer_cache_bytes=2**29)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            graph = computer._graph(rep.seq_len)
        gc.collect()
        alive = [t for t in (ref() for ref in saved) if t is not None]
        assert alive  # not vacuous: the graph saved something (weights, probabilities)
        batched = [t for t in alive if t.ndim >= 2 and t.shape[0] == batch]
        assert batched == []
        assert set(graph.inlets) == {sites.mlp_in(i) for i in range(rep.n_layers)} | {
            sites.FINAL_NORM
        }
        assert all(handle.ndim == 0 for handle, _ in graph.inlets.values())


def test_every_tap_reads_its_gradient_before_its_layer_runs_backward():
    """Taps are made while their layer runs, so each fires as soon as its gradient
    arrives, before the backward goes through that layer's attention (made before the
    forward, autograd ran them all last and held every layer's gradient meanwhile)."""
    traced = traced_tiny("llama", "plt")
    rep = traced.replacement
    layout = all_columns(len(rep.features), rep.n_layers, rep.seq_len)
    events: list[tuple[str, int]] = []

    def entering(layer: int):
        def hook(_module, args, kwargs):
            hidden = kwargs.get("hidden_states", args[0] if args else None)
            if hidden is not None and hidden.requires_grad:
                hidden.register_hook(lambda grad: events.append(("layer input", layer)))

        return hook

    handles = [
        module.register_forward_pre_hook(entering(i), with_kwargs=True)
        for i, module in enumerate(rep.adapter.layers)
    ]
    with _no_parameter_grads(rep.adapter.model, rep.transcoder):
        computer = RowComputer(rep, layout, batch_size=2, writer_cache_bytes=2**29)
        read = computer._mlp_edges

        def tap(layer: int, grad: torch.Tensor) -> None:
            events.append(("tap", layer))
            read(layer, grad)

        computer._mlp_edges = tap  # type: ignore[method-assign]
        try:
            target = traced.targets[0].vector
            computer.rows([Injection(sites.FINAL_NORM, rep.seq_len - 1, target)])
        finally:
            for handle in handles:
                handle.remove()
    taps = [layer for kind, layer in events if kind == "tap"]
    assert taps == list(range(rep.n_layers - 1, -1, -1))
    for layer in range(1, rep.n_layers):  # layer 0's input is swapped in after this hook
        assert events.index(("tap", layer)) < events.index(("layer input", layer))


def test_a_pass_allocates_one_gradient_buffer_per_target_site(monkeypatch):
    """Four targets at one site share one [batch, length, d] gradient buffer (the old
    code made, and zeroed, one per target: 32 x 38 MB per pass at 512 tokens)."""
    import circuitscope.attribution.rows as rows_module

    traced = traced_tiny("llama", "plt")
    rep = traced.replacement
    layout = all_columns(len(rep.features), rep.n_layers, rep.seq_len)
    d_model = rep.adapter.d_model
    buffers: list[tuple[int, ...]] = []
    real_zeros = torch.zeros

    def counting_zeros(*args, **kwargs):
        out = real_zeros(*args, **kwargs)
        if out.ndim == 3 and out.shape[-1] == d_model:
            buffers.append(tuple(out.shape))
        return out

    target = traced.targets[0].vector
    injections = [Injection(sites.FINAL_NORM, p, target) for p in range(1, 5)]
    with _no_parameter_grads(rep.adapter.model, rep.transcoder):
        computer = RowComputer(rep, layout, batch_size=4, writer_cache_bytes=2**29)
        length = computer.prefix_length(4)
        computer._graph(length)  # built before counting: its own tensors are not buffers
        monkeypatch.setattr(rows_module.torch, "zeros", counting_zeros)
        batch = computer.rows(injections)
    assert buffers == [(4, length, d_model)]
    assert batch.values.shape[0] == 4 and bool(batch.values.abs().sum() > 0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
@pytest.mark.parametrize("kind", ["clt", "plt"])
def test_rows_of_passes_on_the_heap_equal_the_others(kind):
    """Under the long-prompt policy each pass runs on the heap (`heap_during_pass`) and
    refills its writer tables: the rows are those of the default run, to the bit."""
    from circuitscope.allocator import return_freed_memory, set_policy_for_passes

    rep = traced_tiny("llama", kind).replacement
    layout = all_columns(len(rep.features), rep.n_layers, rep.seq_len)
    generator = torch.Generator().manual_seed(0)
    vectors = torch.randn(4, rep.adapter.d_model, generator=generator)
    targets = [
        Injection(sites.FINAL_NORM, rep.seq_len - 1 - i % 2, v) for i, v in enumerate(vectors)
    ]
    with _no_parameter_grads(rep.adapter.model, rep.transcoder):
        expected = RowComputer(rep, layout, 4, writer_cache_bytes=2**29).rows(targets)
        try:
            assert set_policy_for_passes(64 << 20) == "heap passes"
            computer = RowComputer(rep, layout, 4, writer_cache_bytes=0)  # refilled tables
            first, second = computer.rows(targets), computer.rows(targets)
        finally:
            set_policy_for_passes(1 << 20)
            assert return_freed_memory() is True
    assert expected.values.abs().max() > 0
    assert torch.equal(first.values, expected.values)
    assert torch.equal(second.values, expected.values)
