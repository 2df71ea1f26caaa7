"""The backward passes' work, counted rather than timed (`rows.BackwardWork`).

A pass runs through the layers below its highest target's only, so grouping each
pass's targets by layer (`visit._batch_order`) saves work; the graph stays the same
whichever order the rows are computed in.
"""

from collections.abc import Callable
from typing import Literal

import pytest
import torch
from torch import Tensor

from circuitscope.attribution import visit
from circuitscope.attribution.attribute import AttributionLimits, AttributionRun, attribute
from circuitscope.attribution.columns import ColumnLayout, all_columns
from circuitscope.attribution.replacement import LocalReplacement, build_replacement
from circuitscope.attribution.rows import RENT_SHARE, Injection, RowComputer
from circuitscope.attribution.targets import top_logit_targets
from circuitscope.graph.graph import Graph
from circuitscope.graph.prune import prune_graph
from circuitscope.models import sites
from circuitscope.testing.tiny_models import tiny_tokenizer
from circuitscope.testing.tiny_transcoders import VARIANTS, Variant, tiny_exact_pair

PROMPT = "The capital of France is Paris, and two plus two is"


def _replacement(arch: str, variant: Variant = VARIANTS[0]) -> LocalReplacement:
    adapter, transcoder = tiny_exact_pair(arch, variant)
    tokenizer = tiny_tokenizer()
    ids = torch.tensor([[tokenizer.bos_token_id, *tokenizer(PROMPT).input_ids]])
    return build_replacement(adapter, transcoder, ids)


def _computer(rep: LocalReplacement, batch_size: int) -> RowComputer:
    layout = all_columns(len(rep.features), rep.n_layers, rep.seq_len)
    return RowComputer(rep, layout, batch_size, writer_cache_bytes=2**30)


def _feature_injection(rep: LocalReplacement, column: int) -> Injection:
    layout = all_columns(len(rep.features), rep.n_layers, rep.seq_len)
    return visit._feature_injection(rep, layout, column)


def _pass_work(computer: RowComputer, injections: list[Injection]) -> tuple[int, int]:
    """(layer-rows, layer-row-positions) that one pass adds to the computer's work."""
    before = computer.work.layer_rows, computer.work.layer_row_positions
    computer.rows(injections)
    return computer.work.layer_rows - before[0], computer.work.layer_row_positions - before[1]


def _check_layers_reached(rep: LocalReplacement) -> None:
    batch, seq = 3, rep.seq_len
    computer = _computer(rep, batch)
    vector = torch.ones(rep.adapter.d_model, dtype=torch.float64)
    for layer in range(rep.n_layers):
        site = rep.input_site(layer)
        full = _pass_work(computer, [Injection(site, seq - 1, vector)])
        assert full == (batch * layer, batch * layer * seq)
        low, short = Injection(rep.input_site(0), 1, vector), Injection(site, 2, vector)
        mixed = _pass_work(computer, [low, short])
        assert mixed == (batch * layer, batch * layer * computer.prefix_length(2))
    logit = Injection(sites.FINAL_NORM, seq - 1, vector)
    assert _pass_work(computer, [logit]) == (batch * rep.n_layers, batch * rep.n_layers * seq)
    assert computer.work.passes == 2 * rep.n_layers + 1


def test_a_pass_runs_through_the_layers_below_its_highest_target(arch: str):
    """Layer l's MLP input depends on nothing above it: a pass whose targets are at layers
    <= l reads the MLP output taps of layers 0 .. l-1 only."""
    _check_layers_reached(_replacement(arch))


@pytest.mark.parametrize("variant", VARIANTS[1:], ids=lambda v: v.name)
def test_every_transcoder_variant_stops_below_its_targets(variant: Variant):
    _check_layers_reached(_replacement("llama", variant))


def _columns_at(rep: LocalReplacement, layer: int, n: int) -> list[int]:
    """n active features of `layer` (their columns when every feature has one)."""
    columns = torch.nonzero(rep.features.layer == layer).flatten()[:n].tolist()
    assert len(columns) == n, f"the tiny model has too few active features at layer {layer}"
    return columns


def test_grouping_by_layer_saves_the_work_counted_by_hand():
    """Three layers, two targets per pass, two targets at each layer, interleaved:
    in the given order the passes are (2, 0), (1, 2), (0, 1), reaching 2 + 2 + 1 layers
    with 2 rows each = 10 layer-rows; grouped they are (2, 2), (1, 1), (0, 0): 2 + 1 + 0
    layers = 6 layer-rows. The rows themselves do not change."""
    rep = _replacement("llama")
    assert rep.n_layers == 3
    top, middle, bottom = (_columns_at(rep, layer, 2) for layer in (2, 1, 0))
    pending = [top[0], bottom[0], middle[0], top[1], bottom[1], middle[1]]
    layout = all_columns(len(rep.features), rep.n_layers, rep.seq_len)
    grouped = visit._batch_order(rep, layout, torch.tensor(pending)).tolist()
    assert [int(rep.features.layer[c]) for c in grouped] == [2, 2, 1, 1, 0, 0]

    rows = {}
    for name, order, expected in (("given", pending, 10), ("grouped", grouped, 6)):
        computer = _computer(rep, batch_size=2)
        values = [
            computer.rows([_feature_injection(rep, c) for c in order[i : i + 2]]).values
            for i in range(0, len(order), 2)
        ]
        assert computer.work.passes == 3
        assert computer.work.layer_rows == expected
        by_column = dict(zip(order, torch.cat(values), strict=True))
        rows[name] = torch.stack([by_column[c] for c in pending])
    largest = float(rows["given"].abs().max())
    assert largest > 0
    torch.testing.assert_close(rows["grouped"], rows["given"], rtol=0, atol=1e-6 * largest)


def _run(rep: LocalReplacement, limits: AttributionLimits) -> AttributionRun:
    tokenizer = tiny_tokenizer()
    targets = top_logit_targets(rep.adapter, tokenizer, rep.recording.logits[0, -1], 3)
    return attribute(rep, targets, limits, progress=False)


def _keys(graph: Graph) -> list[tuple[int, int, int, int]]:
    return [graph.node_key(i) for i in range(graph.n_nodes)]


def _assert_same_edges(graph: Tensor, reference: Tensor) -> None:
    largest = float(reference.abs().max())
    assert largest > 0
    torch.testing.assert_close(graph, reference, rtol=0, atol=1e-6 * largest)


def _recording_order(
    order: Callable[[LocalReplacement, ColumnLayout, Tensor], Tensor], passes: list[list[int]]
) -> Callable[[LocalReplacement, ColumnLayout, Tensor], Tensor]:
    """`order`, appending each update's targets (their columns, in pass order) to passes."""

    def recorded(rep: LocalReplacement, layout: ColumnLayout, pending: Tensor) -> Tensor:
        ordered = order(rep, layout, pending)
        passes.append(ordered.tolist())
        return ordered

    return recorded


def _expected_layer_rows(
    rep: LocalReplacement, updates: list[list[int]], n_logits: int, batch: int
) -> int:
    """Logit passes reach every layer; a feature pass the layers below its highest target."""
    work = -(-n_logits // batch) * batch * rep.n_layers
    for columns in updates:  # every feature has a column: column = feature
        layers = rep.features.layer[columns].tolist()
        work += sum(batch * max(layers[i : i + batch]) for i in range(0, len(layers), batch))
    return work


@pytest.mark.parametrize("kind", ["clt", "plt"])
def test_the_grouped_order_gives_the_ungrouped_graph_with_less_work(
    arch: str, kind: Literal["clt", "plt"], monkeypatch: pytest.MonkeyPatch
):
    """Features chosen by influence (a budget, several updates), rows computed in passes
    grouped by layer, against the same run with the passes in the order of influence:
    the same features in the same updates, the same edges and pruned graph; the work
    counted is what the passes' highest layers give, and no more than ungrouped."""
    rep = _replacement(arch, Variant(kind))
    limits = AttributionLimits(max_feature_nodes=24, batch_size=4, update_interval=2)
    updates: dict[str, list[list[int]]] = {"grouped": [], "given": []}
    grouped_order = _recording_order(visit._batch_order, updates["grouped"])
    monkeypatch.setattr(visit, "_batch_order", grouped_order)
    grouped = _run(rep, limits)
    given_order = _recording_order(lambda rep, layout, pending: pending, updates["given"])
    monkeypatch.setattr(visit, "_batch_order", given_order)
    reference = _run(rep, limits)

    assert [sorted(u) for u in updates["grouped"]] == [sorted(u) for u in updates["given"]]
    assert grouped.rows_computed == reference.rows_computed
    assert _keys(grouped.graph) == _keys(reference.graph)
    _assert_same_edges(grouped.graph.edges, reference.graph.edges)
    pruned, pruned_reference = prune_graph(grouped.graph), prune_graph(reference.graph)
    assert _keys(pruned) == _keys(pruned_reference)
    _assert_same_edges(pruned.edges, pruned_reference.edges)
    assert pruned.node_influence is not None and pruned_reference.node_influence is not None
    torch.testing.assert_close(pruned.node_influence, pruned_reference.node_influence)

    n_logits = len(grouped.graph.logit_labels)
    for run, name in ((grouped, "grouped"), (reference, "given")):
        expected = _expected_layer_rows(rep, updates[name], n_logits, limits.batch_size)
        assert run.work.layer_rows == expected
    assert grouped.work.passes == reference.work.passes
    assert grouped.work.layer_rows <= reference.work.layer_rows


def test_a_short_prefix_runs_on_the_longer_graph_until_its_waste_pays_for_its_own():
    """Ski rental: passes that need all positions but the last two run on the full graph
    (built by the first pass) while the positions they waste (2 each, times the one
    layer they reach) stay below a share of what their own graph costs (its positions x
    n_layers);
    the pass that reaches that builds it. The rows are the same as those of passes each
    on its own prefix."""
    rep = _replacement("llama")
    seq, n_layers = rep.seq_len, rep.n_layers
    vector = torch.ones(rep.adapter.d_model, dtype=torch.float64)
    computer = _computer(rep, batch_size=2)
    layout = all_columns(len(rep.features), n_layers, seq)
    exact = RowComputer(rep, layout, 2, 2**30, reuse_longer_graphs=False)
    short = [Injection(rep.input_site(1), seq - 3, vector)]  # layer 1: one layer below
    needed = computer.prefix_length(seq - 3)
    assert needed == seq - 2
    cost = needed * n_layers  # the graph's forward: its positions through every layer
    rented = -(-cost // (2 * RENT_SHARE)) - 1  # passes before the waste reaches its share
    assert rented >= 2
    computer.rows([Injection(sites.FINAL_NORM, seq - 1, vector)])
    lengths = []
    for _ in range(rented + 2):
        before = computer.work.layer_row_positions
        values = computer.rows(short).values
        lengths.append((computer.work.layer_row_positions - before) // 2)  # batch 2, 1 layer
        _assert_same_edges(values, exact.rows(short).values)
    assert lengths == [seq] * rented + [needed] * 2


def test_a_target_at_an_unknown_site_is_refused():
    rep = _replacement("llama")
    computer = _computer(rep, batch_size=2)
    vector = torch.ones(rep.adapter.d_model, dtype=torch.float64)
    with pytest.raises(ValueError, match="no target site"):
        computer.rows([Injection("layers.0.nowhere", 1, vector)])
