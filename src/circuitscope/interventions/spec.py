"""What an intervention is, and how one is written on the command line.

An intervention changes one node of the local replacement model on the original
model: a transcoder feature (layer, position, index) or an error node (layer,
position). `set` gives the node a value, `scale` multiplies its activation,
`add` adds to it. An error node's activation is 1 (the whole error vector), so
for it `set v` and `scale v` are the same thing and `add v` scales by 1 + v.

Command-line form, one string per intervention:

    L:P:F=VALUE            feature F of layer L at position P
    L:P:err=VALUE          the error node of layer L at position P
    L:*:F=VALUE            every position, generated tokens included
    L:P:F,L:P:F=VALUE      a group (a supernode): each member gets VALUE

`--zero L:P:F` takes no value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from circuitscope.attribution.sink import check_node_position
from circuitscope.errors import CircuitscopeError

Operation = Literal["set", "scale", "add"]
OPERATIONS: tuple[Operation, ...] = ("set", "scale", "add")


@dataclass(frozen=True)
class Intervention:
    layer: int
    """The layer the feature belongs to (a CLT feature writes to every layer it decodes to)."""
    position: int | None
    """The token position; None for every position, generated tokens included."""
    feature: int | None
    """The feature index within its layer; None for the error node at (layer, position)."""
    operation: Operation
    """set, scale or add."""
    value: float
    """The value set, the factor, or the amount added."""

    @property
    def is_error(self) -> bool:
        return self.feature is None

    def new_value(self, old: float) -> float:
        """The activation after this intervention, given the one before."""
        if self.operation == "set":
            return self.value
        if self.operation == "scale":
            return old * self.value
        return old + self.value

    def describe(self) -> str:
        where = f"L{self.layer}@{'*' if self.position is None else self.position}"
        node = "err" if self.feature is None else f"F{self.feature}"
        return f"{self.operation} {where}/{node} {self.value:g}"


def zero(layer: int, position: int | None, feature: int | None) -> Intervention:
    """Set a node to zero (ablate it)."""
    return Intervention(layer, position, feature, "set", 0.0)


@dataclass(frozen=True)
class Supernode:
    """A group of nodes a researcher treats as one; interventions apply to every member."""

    label: str
    members: tuple[tuple[int, int | None, int | None], ...]
    """(layer, position, feature) of each member; feature None for an error node."""

    def scaled(self, factor: float) -> list[Intervention]:
        return [Intervention(l_, p, f, "scale", factor) for l_, p, f in self.members]

    def set_to(self, value: float) -> list[Intervention]:
        return [Intervention(l_, p, f, "set", value) for l_, p, f in self.members]


_NODE = re.compile(r"^\s*(-?\d+)\s*:\s*(\*|-?\d+)\s*:\s*(err|-?\d+)\s*$")


def parse_intervention(text: str, operation: Operation) -> list[Intervention]:
    """`L:P:F[,L:P:F...]=VALUE` (see the module docstring) -> one intervention per node."""
    nodes, value = _split_value(text, operation)
    return [Intervention(*node, operation=operation, value=value) for node in nodes]


def parse_zero(text: str) -> list[Intervention]:
    """`L:P:F[,L:P:F...]` -> set each node to zero."""
    if "=" in text:
        raise CircuitscopeError(f"--zero takes nodes without a value (L:P:F), got {text!r}")
    return [zero(*node) for node in _parse_nodes(text, "--zero")]


def parse_all(
    set_: Iterable[str] = (),
    scale: Iterable[str] = (),
    add: Iterable[str] = (),
    zero_: Iterable[str] = (),
) -> list[Intervention]:
    """Every intervention of the command line, in the order set, scale, add, zero."""
    parsed: list[Intervention] = []
    for operation, texts in (("set", set_), ("scale", scale), ("add", add)):
        for text in texts:
            parsed += parse_intervention(text, operation)  # type: ignore[arg-type]
    for text in zero_:
        parsed += parse_zero(text)
    return parsed


def _split_value(text: str, operation: Operation) -> tuple[list[tuple], float]:
    if text.count("=") != 1:
        raise CircuitscopeError(f"--{operation} expects L:P:F=VALUE (e.g. 3:5:120=0), got {text!r}")
    nodes_text, value_text = text.split("=")
    try:
        value = float(value_text)
    except ValueError:
        raise CircuitscopeError(f"--{operation} {text!r}: {value_text!r} is not a number") from None
    if not math.isfinite(value):
        raise CircuitscopeError(f"--{operation} {text!r}: the value must be a finite number")
    return _parse_nodes(nodes_text, f"--{operation}"), value


def _parse_nodes(text: str, flag: str) -> list[tuple[int, int | None, int | None]]:
    nodes = []
    for part in text.split(","):
        match = _NODE.match(part)
        if match is None:
            raise CircuitscopeError(
                f"{flag}: {part.strip()!r} is not a node; write LAYER:POSITION:FEATURE "
                "(POSITION may be *, FEATURE may be err), e.g. 3:5:120"
            )
        layer, position, feature = match.groups()
        nodes.append(
            (
                int(layer),
                None if position == "*" else int(position),
                None if feature == "err" else int(feature),
            )
        )
    return nodes


def check_interventions(
    interventions: Sequence[Intervention],
    n_layers: int,
    n_features: Sequence[int],
    seq_len: int | None,
) -> None:
    """Raise a clear error for a layer, position or feature that does not exist.

    seq_len None accepts any position >= 1 (generation reaches positions beyond
    the prompt). Position 0 is the BOS attention sink: it has no nodes.
    """
    for item in interventions:
        where = item.describe()
        if not 0 <= item.layer < n_layers:
            raise CircuitscopeError(f"{where}: no layer {item.layer}; layers are 0..{n_layers - 1}")
        if item.feature is not None and not 0 <= item.feature < n_features[item.layer]:
            raise CircuitscopeError(
                f"{where}: no feature {item.feature} in layer {item.layer}; "
                f"it has {n_features[item.layer]} (0..{n_features[item.layer] - 1})"
            )
        if item.position is None:
            continue
        if item.position < 0 or (seq_len is not None and item.position >= seq_len):
            span = "0.." + (str(seq_len - 1) if seq_len is not None else "")
            raise CircuitscopeError(f"{where}: no position {item.position}; positions are {span}")
        check_node_position(item.position, where)
