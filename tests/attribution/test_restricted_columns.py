"""Rows restricted to the most influential columns (long prompts) against full rows."""

from typing import Literal

import pytest
import torch

from circuitscope.attribution.attribute import AttributionLimits, attribute
from circuitscope.attribution.influence_estimate import influence_scores
from circuitscope.attribution.replacement import build_replacement
from circuitscope.attribution.row_buffer import RowBuffer
from circuitscope.attribution.rows import RowBatch
from circuitscope.attribution.targets import top_logit_targets
from circuitscope.attribution.visit import BLOCK_BATCHES, MB, _most_blocks, plan_rows
from circuitscope.errors import CircuitscopeError
from circuitscope.models.adapter import ModelAdapter
from circuitscope.testing.tiny_models import tiny_model, tiny_tokenizer
from circuitscope.testing.tiny_transcoders import tiny_transcoder

PROMPT = "two plus two is four, and the river ran past the mill"


def _replacement_and_targets(kind: Literal["clt", "plt"] = "clt"):
    adapter = ModelAdapter(tiny_model("llama", dtype=torch.float64))
    tokenizer = tiny_tokenizer()
    ids = torch.tensor([[tokenizer.bos_token_id, *tokenizer(PROMPT).input_ids]])
    rep = build_replacement(adapter, tiny_transcoder(adapter, kind, dtype="float64"), ids)
    targets = top_logit_targets(adapter, tokenizer, rep.recording.logits[0, -1], 3)
    return rep, targets


def _row_mb(rep, n_logits: int, budget: int) -> float:
    """The memory full rows for `budget` features would take."""
    n_columns = len(rep.features) + (rep.n_layers + 1) * rep.seq_len + n_logits
    return (n_logits + budget) * n_columns * 8 / MB


@pytest.mark.parametrize("kind", ["clt", "plt"])
def test_restricted_rows_visit_the_same_features_with_the_same_edges(kind):
    rep, targets = _replacement_and_targets(kind)
    budget = 48
    common = dict(max_feature_nodes=budget, batch_size=8, update_interval=1)
    full = attribute(rep, targets, AttributionLimits(**common), progress=False)
    mb = 0.95 * _row_mb(rep, len(targets), budget)
    run = attribute(rep, targets, AttributionLimits(**common, row_buffer_mb=mb), progress=False)
    selection = run.selection
    assert full.selection["kept_columns"] is None
    assert budget < selection["kept_columns"] < len(rep.features)
    assert selection["exploration_rows"] == 8
    assert selection["exact"] and 0 <= selection["worst_bound_ratio"] < 1
    assert run.rows_computed == full.rows_computed == budget + len(targets)
    graph, reference = run.graph, full.graph
    assert [graph.node_key(i) for i in range(graph.n_nodes)] == [
        reference.node_key(i) for i in range(reference.n_nodes)
    ]
    torch.testing.assert_close(graph.adjacency, reference.adjacency, rtol=1e-12, atol=1e-12)


def _room_for(rep, targets, budget: int, extra: int) -> float:
    """A row buffer whose restricted rows hold `budget` + `extra` feature columns."""
    n_other = (rep.n_layers + 1) * rep.seq_len + len(targets)
    blocks = _most_blocks(budget, BLOCK_BATCHES * 8, 8) * len(rep.features) * 8
    rows = (len(targets) + budget) * (budget + extra + n_other) * 8
    return (rows + blocks) / MB / 0.75


def _assert_same_graph_where_it_has_nodes(run, full) -> None:
    index = full.node_index()
    graph = run.graph
    mapping = torch.tensor([index[graph.node_key(i)] for i in range(graph.n_nodes)])
    torch.testing.assert_close(graph.adjacency, full.adjacency[mapping][:, mapping])


def test_too_few_columns_for_a_certificate_still_gives_exact_edges():
    rep, targets = _replacement_and_targets()
    budget = 48
    common = dict(max_feature_nodes=budget, batch_size=8, update_interval=1)
    tight = _room_for(rep, targets, budget, extra=4)
    run = attribute(rep, targets, AttributionLimits(**common, row_buffer_mb=tight), progress=False)
    assert run.selection["kept_columns"] == budget  # the 4 others: room for promotion
    assert run.selection["promoted_columns"] == 4
    assert not run.selection["exact"] and run.selection["worst_bound_ratio"] > 1
    full = attribute(rep, targets, AttributionLimits(batch_size=8), progress=False).graph
    _assert_same_graph_where_it_has_nodes(run, full)


@pytest.mark.parametrize("kind", ["clt", "plt"])
def test_columns_given_by_forward_passes_make_the_selection_certain(kind, monkeypatch):
    from circuitscope.attribution import visit

    rep, targets = _replacement_and_targets(kind)
    budget = 48
    common = dict(max_feature_nodes=budget, batch_size=8, update_interval=1)
    full = attribute(rep, targets, AttributionLimits(**common), progress=False).graph
    no_room = AttributionLimits(**common, row_buffer_mb=_room_for(rep, targets, budget, 0))
    alone = attribute(rep, targets, no_room, progress=False).selection
    assert alone["kept_columns"] == budget and alone["promoted_columns"] == 0
    assert not alone["exact"]
    monkeypatch.setattr(visit, "SPARE_SHARE", 1)  # every column past the budget is spare
    room = AttributionLimits(**common, row_buffer_mb=_room_for(rep, targets, budget, 256))
    run = attribute(rep, targets, room, progress=False)
    selection = run.selection
    assert selection["kept_columns"] == budget and 100 < selection["promoted_columns"] < 256
    assert selection["exact"] and selection["worst_bound_ratio"] < 1
    graph = run.graph
    assert [graph.node_key(i) for i in range(graph.n_nodes)] == [
        full.node_key(i) for i in range(full.n_nodes)
    ]
    largest = float(full.adjacency.abs().max())
    torch.testing.assert_close(graph.adjacency, full.adjacency, rtol=0, atol=1e-12 * largest)


def test_a_budget_that_cannot_fit_is_refused_with_the_memory_needed():
    limits = AttributionLimits(max_feature_nodes=4096, row_buffer_mb=64)
    with pytest.raises(CircuitscopeError, match="raise it to at least"):
        plan_rows(900_000, 31_744, 10, limits, 4)


def test_all_features_beyond_the_available_memory_is_refused(monkeypatch):
    from circuitscope.attribution import visit

    monkeypatch.setattr(visit, "_available_memory", lambda: 8 * 2**30)
    with pytest.raises(CircuitscopeError, match="set max_feature_nodes"):
        plan_rows(50_000, 1_000, 10, AttributionLimits(), 4)  # 10 GB of rows
    plan = plan_rows(50_000, 1_000, 10, AttributionLimits(max_feature_nodes=512), 4)
    assert plan.kept_columns is None and plan.budget == 512


def test_restricting_a_buffer_keeps_totals_and_moves_dropped_columns_into_the_maxima():
    # 3 feature columns, 1 error column, 1 logit column; rows: logit, feature 0.
    buffer = RowBuffer.empty(3, n_columns=4, n_logits=1, dtype=torch.float64)
    buffer.add(
        RowBatch(torch.tensor([[1.0, -5.0, 2.0, 0.5]]), torch.tensor([0.25]), torch.tensor([3.0])),
        torch.tensor([4]),
    )
    buffer.add(
        RowBatch(torch.tensor([[0.0, 7.0, -1.0, 2.0]]), torch.tensor([1.0]), torch.tensor([0.5])),
        torch.tensor([0]),
    )
    kept = buffer.restricted(torch.tensor([0, 2]), n_features=3, n_logits=1, capacity=4)
    assert kept.n == 2 and kept.capacity == 4 and kept.n_columns == 3
    torch.testing.assert_close(
        kept.values[:2, :3],
        torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 2.0]], dtype=torch.float64),
    )
    torch.testing.assert_close(kept.outside_max[:2], torch.tensor([5.0, 7.0], dtype=torch.float64))
    assert kept.nodes[:2].tolist() == [3, 0]  # the logit node follows the new columns
    torch.testing.assert_close(kept.totals[:2], buffer.totals[:2], rtol=0, atol=0)
    torch.testing.assert_close(kept.totals[:2], torch.tensor([8.75, 11.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="own node"):
        buffer.restricted(torch.tensor([1, 2]), n_features=3, n_logits=1, capacity=4)


def test_scores_of_kept_columns_do_not_change_and_the_bound_holds():
    generator = torch.Generator().manual_seed(0)
    n_features, n_other = 40, 6
    n_nodes = n_features + n_other + 1  # one logit
    values = torch.randn(9, n_nodes, generator=generator, dtype=torch.float64)
    values[:, -1] = 0.0
    nodes = torch.tensor([n_nodes - 1, *range(8)])  # the logit row, then features 0..7
    values[torch.arange(1, 9), torch.arange(8)] = 0.0  # no self-edges
    values[1:, :8] = torch.triu(values[1:, :8], diagonal=1)  # a DAG among rows
    weights = torch.zeros(n_nodes, dtype=torch.float64)
    weights[-1] = 1.0
    full = influence_scores(values, nodes, weights).scores
    kept = torch.arange(20)
    dropped = values[:, 20:n_features].abs()
    columns = torch.cat([kept, torch.arange(n_features, n_nodes)])
    restricted = influence_scores(
        values[:, columns],
        torch.tensor([len(columns) - 1, *range(8)]),
        weights[columns],
        values[:, columns].abs().sum(dim=1) + dropped.sum(dim=1),
        dropped.amax(dim=1),
    )
    torch.testing.assert_close(restricted.scores[:20], full[:20], rtol=1e-12, atol=1e-15)
    assert float(full[20:n_features].max()) <= restricted.outside_bound
    assert restricted.outside_bound < 2 * float(full[20:n_features].max()) * (n_features - 20)


def _dense_influence(adjacency: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """w · ((I − Ā)⁻¹ − I) with Ā = |A| rows scaled to sum 1: the reference."""
    magnitude = adjacency.abs()
    sums = magnitude.sum(dim=1, keepdim=True)
    normalized = torch.where(sums > 0, magnitude / sums.clamp(min=1e-300), 0.0)
    eye = torch.eye(len(adjacency), dtype=adjacency.dtype)
    return weights @ (torch.linalg.inv(eye - normalized) - eye)


def _random_dag(n_features: int, n_sources: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A square adjacency (features, other sources, 2 logits) and logit weights."""
    generator = torch.Generator().manual_seed(seed)
    n = n_features + n_sources + 2
    adjacency = torch.zeros(n, n, dtype=torch.float64)
    sources = n_features + n_sources
    block = torch.randn(n_features, sources, generator=generator, dtype=torch.float64)
    block[:, :n_features] = torch.tril(block[:, :n_features], diagonal=-1)
    adjacency[:n_features, :sources] = block
    adjacency[sources:, :sources] = torch.randn(2, sources, generator=generator).double()
    weights = torch.zeros(n, dtype=torch.float64)
    weights[sources:] = torch.tensor([0.7, 0.3], dtype=torch.float64)
    return adjacency, weights


def test_scores_with_every_row_are_the_influence():
    adjacency, weights = _random_dag(12, 5, seed=1)
    rows = torch.nonzero(adjacency.abs().sum(dim=1) > 0).flatten()
    scores = influence_scores(adjacency[rows], rows, weights).scores
    torch.testing.assert_close(scores, _dense_influence(adjacency, weights), rtol=1e-12, atol=1e-14)


def test_scores_from_logit_rows_alone_are_the_direct_shares():
    adjacency, weights = _random_dag(12, 5, seed=2)
    logits = torch.tensor([17, 18])
    scores = influence_scores(adjacency[logits], logits, weights).scores
    shares = adjacency[logits].abs() / adjacency[logits].abs().sum(dim=1, keepdim=True)
    torch.testing.assert_close(scores, weights[logits] @ shares, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", ["clt", "plt"])
def test_refilled_writer_tables_give_the_same_rows_as_kept_ones(kind):
    rep, targets = _replacement_and_targets(kind)
    common = dict(max_feature_nodes=40, batch_size=8, update_interval=1)
    kept = attribute(rep, targets, AttributionLimits(**common), progress=False).graph
    refilled = AttributionLimits(**common, writer_cache_mb=0.0)
    graph = attribute(rep, targets, refilled, progress=False).graph
    assert graph.n_nodes == kept.n_nodes and kept.n_edges > 1000
    torch.testing.assert_close(graph.edges, kept.edges, rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["clt", "plt"])
def test_outside_totals_are_those_of_the_whole_rows(kind):
    """A CLT feature writes into several layers: its |edge| is that of the sum."""
    from circuitscope.attribution.attribute import _no_parameter_grads
    from circuitscope.attribution.columns import ColumnLayout, all_columns
    from circuitscope.attribution.rows import Injection, RowComputer
    from circuitscope.models import sites

    rep, targets = _replacement_and_targets(kind)
    n_active = len(rep.features)
    every = all_columns(n_active, rep.n_layers, rep.seq_len)
    injections = [Injection(sites.FINAL_NORM, rep.seq_len - 1, t.vector) for t in targets]
    kept = torch.arange(0, n_active, 3)
    dropped = torch.tensor([c for c in range(n_active) if c % 3])
    with _no_parameter_grads(rep.adapter.model, rep.transcoder):
        computer = RowComputer(rep, every, batch_size=4, writer_cache_bytes=2**29)
        whole = computer.rows(injections).values
        computer.set_layout(ColumnLayout(kept, rep.n_layers, rep.seq_len))
        part = computer.rows(injections)
    other = torch.arange(n_active, every.n_columns)
    torch.testing.assert_close(part.values, whole[:, torch.cat([kept, other])], rtol=0, atol=0)
    magnitudes = whole[:, dropped].abs()
    torch.testing.assert_close(part.outside_sum, magnitudes.sum(dim=1), rtol=1e-12, atol=0)
    torch.testing.assert_close(part.outside_max, magnitudes.amax(dim=1), rtol=0, atol=0)
    assert part.outside_column_max is not None
    torch.testing.assert_close(part.outside_column_max, magnitudes.amax(dim=0), rtol=0, atol=0)
    assert float(part.outside_max.min()) > 0


def test_bad_limits_are_refused_when_made():
    with pytest.raises(CircuitscopeError, match="row_buffer_mb"):
        AttributionLimits(row_buffer_mb=0)
    with pytest.raises(CircuitscopeError, match="writer_cache_mb"):
        AttributionLimits(writer_cache_mb=-1)
    with pytest.raises(CircuitscopeError, match="finite"):
        AttributionLimits(row_buffer_mb=float("inf"))
    with pytest.raises(CircuitscopeError, match="batch_size"):
        AttributionLimits(batch_size=0)
    with pytest.raises(CircuitscopeError, match="max_feature_nodes"):
        AttributionLimits(max_feature_nodes=-1)
    AttributionLimits(writer_cache_mb=0)  # 0: refill every table


def test_exploring_that_ends_within_a_pick_keeps_the_unrestricted_schedule(monkeypatch):
    from circuitscope.attribution import visit

    picks: list[tuple[int, int]] = []
    next_features = visit._next_features

    def recorded(buffer, weights, visited, *args):  # noqa: ANN001, ANN002, ANN202
        pending = next_features(buffer, weights, visited, *args)
        picks.append((int(visited.sum()), len(pending.features)))
        return pending

    monkeypatch.setattr(visit, "_next_features", recorded)
    rep, targets = _replacement_and_targets("plt")
    budget = 48
    common = dict(max_feature_nodes=budget, batch_size=8, update_interval=4)
    full = attribute(rep, targets, AttributionLimits(**common), progress=False).graph
    unrestricted, picks[:] = list(picks), []
    room = AttributionLimits(**common, row_buffer_mb=_room_for(rep, targets, budget, 400))
    run = attribute(rep, targets, room, progress=False)
    assert run.selection["exploration_rows"] == 8  # less than a pick of 4 passes of 8
    assert run.selection["exact"] and run.selection["kept_columns"] is not None
    assert unrestricted == [(0, 32), (32, 16)] and picks == unrestricted
    graph = run.graph
    assert [graph.node_key(i) for i in range(graph.n_nodes)] == [
        full.node_key(i) for i in range(full.n_nodes)
    ]


def test_the_trace_summary_says_how_many_columns_their_bound_added(monkeypatch, capsys):
    from circuitscope.attribution import visit
    from circuitscope.attribution.target_choice import TargetChoice
    from circuitscope.attribution.trace import trace
    from circuitscope.commands.attribution_commands import print_summary

    rep, targets = _replacement_and_targets("clt")
    budget = 48
    monkeypatch.setattr(visit, "SPARE_SHARE", 1)  # every column past the budget is spare
    limits = AttributionLimits(
        max_feature_nodes=budget,
        batch_size=8,
        update_interval=1,
        row_buffer_mb=_room_for(rep, targets, budget, 256),
    )
    result = trace(
        rep.adapter,
        tiny_tokenizer(),
        rep.transcoder,
        PROMPT,
        targets=TargetChoice(max_n_logits=3),
        limits=limits,
    )
    selection = result.info.selection
    assert selection["kept_columns"] == budget and 100 < selection["promoted_columns"] < 256
    print_summary(result)
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("columns"))
    assert line.split(None, 1)[1] == (
        f"restricted to {budget} features after {selection['exploration_rows']} rows "
        "(--row-buffer-mb), "
        f"{selection['promoted_columns']} added later by their bound; "
        "selection provably as without it"
    )
