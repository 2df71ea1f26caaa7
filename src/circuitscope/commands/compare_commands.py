"""`compare`: two traced graphs side by side (e.g. one prompt in English and in French)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from circuitscope.cli_args import positional
from circuitscope.commands import Command
from circuitscope.errors import CircuitscopeError

if TYPE_CHECKING:
    from circuitscope.graph.compare import FeatureRow, GraphComparison, Supernode
    from circuitscope.graph.graph import Graph


@dataclass(kw_only=True)
class CompareConfig:
    graph_a: str = positional()
    """A folder written by `circuitscope trace`: its pruned graph is compared, and its
    supernodes.json when it has one."""
    graph_b: str = positional()
    """Another trace folder of the same transcoder (e.g. the prompt in another language)."""
    top: int = 15
    """Rows printed per table (shared, only in A, only in B, supernodes); --json holds all."""
    json: str = ""
    """Also write the whole comparison to this JSON file."""
    match_threshold: float = 0.5
    """Supernodes of A and B are paired when the Jaccard index of their feature sets is at
    least this."""

    def __post_init__(self) -> None:
        if self.top < 0:
            raise CircuitscopeError(f"--top must be at least 0, got {self.top}")
        threshold = self.match_threshold
        if not (math.isfinite(threshold) and 0 < threshold <= 1):
            raise CircuitscopeError(f"--match-threshold must be in (0, 1], got {threshold!r}")


def compare_command(config: CompareConfig) -> int:
    """Compare two traced graphs: shared features, features only in one, supernode matches."""
    from circuitscope.graph.compare import check_same_transcoder, compare_graphs
    from circuitscope.graph.supernodes_files import read_suggestions
    from circuitscope.graph.trace_folder import SUPERNODES_FILE, TraceFolder
    from circuitscope.outputs import check_output_file, write_json

    output = check_output_file(config.json, "--json") if config.json else None
    folder_a, folder_b = TraceFolder.open(config.graph_a), TraceFolder.open(config.graph_b)
    a, b = folder_a.pruned(), folder_b.pruned()
    check_same_transcoder(folder_a, a, folder_b, b)
    documents = [
        read_suggestions(folder.path) if folder.file(SUPERNODES_FILE).is_file() else None
        for folder in (folder_a, folder_b)
    ]
    comparison = compare_graphs(a, b, *documents, match_threshold=config.match_threshold)
    print_comparison(comparison, a, b, (str(folder_a.path), str(folder_b.path)), config.top)
    if comparison.supernodes is None:
        missing = [name for name, doc in zip(("A", "B"), documents, strict=True) if doc is None]
        print(
            f"\nsupernodes: not compared ({' and '.join(missing)} without supernodes.json; "
            "make them with `circuitscope supernodes FOLDER`)"
        )
    if output is not None:
        write_json(output, comparison.to_dict())
        print(f"\nwritten to {output}")
    return 0


def print_comparison(
    comparison: GraphComparison, a: Graph, b: Graph, names: tuple[str, str], top: int = 15
) -> None:
    """The summary, then the shared / only-A / only-B features and the supernode matches,
    `top` rows each."""
    summary = comparison.summary
    counts = (summary.n_shared + summary.n_only_a, summary.n_shared + summary.n_only_b)
    for side, graph, name, count in zip("AB", (a, b), names, counts, strict=True):
        nodes = f"{graph.n_features} feature nodes, {count} features"
        print(f"{side}: {name}  {graph.prompt!r}  ({nodes})")
    print(
        f"features: {summary.n_shared} shared, {summary.n_only_a} only in A, "
        f"{summary.n_only_b} only in B; Jaccard {summary.jaccard:.3f}"
    )
    print(
        f"influence on shared features: {summary.shared_share_a:.1%} of A's, "
        f"{summary.shared_share_b:.1%} of B's (node influence {summary.influence_source})"
    )
    _print_shared(comparison.shared, a, b, top)
    _print_only("only in A", comparison.only_a, a, "a", top)
    _print_only("only in B", comparison.only_b, b, "b", top)
    groups = comparison.supernodes
    if groups is None:
        return
    print(
        f"\nsupernodes (Jaccard ≥ {groups.threshold:g}): {len(groups.matched)} matched, "
        f"{len(groups.only_a)} only in A, {len(groups.only_b)} only in B"
    )
    if groups.matched:
        print(f"  {'Jaccard':>7} {'shared':>6}  {'A':<36} {'B':<36}")
    for match in groups.matched[:top]:
        print(
            f"  {match.jaccard:>7.3f} {match.shared:>6}  "
            f"{match.a.label[:36]:<36} {match.b.label[:36]:<36}"
        )
    _print_more(len(groups.matched), top)
    for side, left in (("A", groups.only_a), ("B", groups.only_b)):
        if left:
            print(f"  only in {side}:")
        for group in left[:top]:
            print(f"    {_group_line(group)}")
        _print_more(len(left), top, indent=4)


def _print_shared(rows: tuple[FeatureRow, ...], a: Graph, b: Graph, top: int) -> None:
    print(f"\nshared features ({len(rows)})")
    if not rows:
        return
    header = f"{'influence A':>12} {'influence B':>12} {'nodes A':>7} {'nodes B':>7}"
    print(f"  {'feature':<12} {header}  tokens A | tokens B")
    for row in rows[:top]:
        print(
            f"  {row.label:<12} {row.influence_a:>12.4f} {row.influence_b:>12.4f} "
            f"{row.nodes_a:>7} {row.nodes_b:>7}  "
            f"{_tokens(a, row.positions_a)} | {_tokens(b, row.positions_b)}"
        )
    _print_more(len(rows), top)


def _print_only(
    title: str, rows: tuple[FeatureRow, ...], graph: Graph, side: str, top: int
) -> None:
    print(f"\n{title} ({len(rows)})")
    if not rows:
        return
    print(f"  {'feature':<12} {'influence':>12} {'nodes':>7}  tokens")
    for row in rows[:top]:
        value, nodes = (
            (row.influence_a, row.nodes_a) if side == "a" else (row.influence_b, row.nodes_b)
        )
        positions = row.positions_a if side == "a" else row.positions_b
        print(f"  {row.label:<12} {value:>12.4f} {nodes:>7}  {_tokens(graph, positions)}")
    _print_more(len(rows), top)


def _group_line(group: Supernode) -> str:
    return (
        f"{group.nodes:>3} nodes {len(group.features):>3} features  influence "
        f"{group.influence:.4f}  {group.label[:48]}"
    )


def _tokens(graph: Graph, positions: tuple[int, ...], width: int = 28) -> str:
    """The tokens at `positions`, e.g. 'France'@5 ' is'@6, cut to `width` characters."""
    text = " ".join(f"{graph.input_tokens[p]!r}@{p}" for p in positions)
    return text if len(text) <= width else text[: width - 1] + "…"


def _print_more(count: int, top: int, indent: int = 2) -> None:
    if count > top:
        print(" " * indent + f"… {count - top} more (all of them in --json)")


COMMANDS = [Command("compare", CompareConfig, compare_command)]
