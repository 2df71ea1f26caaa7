"""Names for suggested supernodes: from what the graph knows, or from the members' cards."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from torch import Tensor

from circuitscope.graph.graph import Graph
from circuitscope.graph.logit_clerps import label_text


def graph_label(graph: Graph, members: Sequence[int], logit_change: Tensor) -> str:
    """'"tok1"/"tok2" → +logit': the tokens the members sit on (up to three, in order) and
    the logit their ablation moves most, signed as the members push it. logit_change:
    [n_logits] the change of each logit when the group is ablated."""
    positions = sorted({int(graph.node_position[m]) for m in members})
    tokens = [_quoted(graph.input_tokens[p]) for p in positions]
    where = "/".join(tokens[:3]) + ("/…" if len(tokens) > 3 else "")
    if not len(logit_change) or not graph.logit_labels:
        return where
    rank = int(logit_change.abs().argmax())
    sign = "+" if float(logit_change[rank]) < 0 else "−"  # ablating lowers what they push
    return f"{where} → {sign}{_quoted(label_text(graph.logit_labels[rank]))}"


def _quoted(token: str) -> str:
    """A token as a label shows it: stripped of surrounding spaces (unless all spaces), quoted."""
    return repr(token.strip() or token)


def card_label(member_labels: Sequence[str], member_top_logits: Sequence[Sequence[str]]) -> str:
    """The label most members' cards share (ties: the first met), else '→ TOKEN' for the
    top logit most of their cards share; '' when the cards say nothing."""
    labels = Counter(label.strip() for label in member_labels if label.strip())
    if labels:
        return labels.most_common(1)[0][0]
    logits = Counter(logits[0].strip() for logits in member_top_logits if logits)
    return f"→ {logits.most_common(1)[0][0]}" if logits else ""
