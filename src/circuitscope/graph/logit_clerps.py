"""The clerp (display label) of a logit node in the attribution-graph JSON.

circuit-tracer writes `Output "{token}" (p={p:.3f})`, the token as decoded, between
plain double quotes with no escaping. Its page (and Neuronpedia's) reads the token
back as the text between the first two `"` of the clerp (`clerp.split('"')[1]`) and
the probability as the number after the first `(p=`. So newlines, tabs, backslashes
and any unicode come back unchanged, but a `"` inside the token would cut it short:
we write each `"` of a token as `＂` (U+FF02, FULLWIDTH QUOTATION MARK), which reads
the same. The exact label travels beside the clerp (the node's `logit_label`).
"""

from __future__ import annotations

import ast
import re

QUOTE_STAND_IN = "\uff02"
"""What a `"` inside a token is written as, so that the page's parse keeps the token."""

_TOKEN_LABEL = re.compile(r"""^('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*") \(p=[0-9.eE+-]+\)$""", re.S)
_CIRCUIT_TRACER_CLERP = re.compile(r'^Output "(.*)" \(p=([^)]*)\)$', re.S)


def label_text(label: str) -> str:
    """The text a logit label names: the token of `' Au' (p=0.346)` (a token target's
    label, the token's repr), else the label itself (e.g. a contrast `' A' − ' B'`)."""
    match = _TOKEN_LABEL.match(label)
    if match is None:
        return label
    return ast.literal_eval(match.group(1))


def logit_clerp(label: str, probability: float) -> str:
    """`Output "{token}" (p=…)` as circuit-tracer writes it, `"` in the token as `＂`."""
    text = label_text(label).replace('"', QUOTE_STAND_IN)
    return f'Output "{text}" (p={probability:.3f})'


def label_from_clerp(clerp: str, old_circuitscope: bool = False) -> str:
    """The logit label of a clerp written without `logit_label`.

    circuit-tracer's `Output " Au" (p=0.346)` gives `' Au' (p=0.346)`, the label
    circuitscope gives that token. circuitscope's files before `logit_label`
    (`old_circuitscope`, their `info.generator` is a string) wrote `Output {label}`.
    """
    match = _CIRCUIT_TRACER_CLERP.match(clerp)
    if old_circuitscope or match is None:
        return clerp.removeprefix("Output ")
    return f"{match.group(1)!r} (p={match.group(2)})"
