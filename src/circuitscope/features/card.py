"""A feature card as a Python object, and its text form for the terminal."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from circuitscope.features.files import read_feature, read_labels


@dataclass(frozen=True)
class Example:
    tokens: list[str]
    activations: list[float]
    peak: int
    """Index of the token the example is centred on (its activation is `activations[peak]`)."""
    repeated: bool = False

    @property
    def value(self) -> float:
        return self.activations[self.peak]


@dataclass(frozen=True)
class FeatureCard:
    layer: int
    index: int
    label: str
    density: float
    """Fraction of tokens where the feature fires."""
    act_max: float
    top_examples: list[Example]
    interval_examples: list[tuple[str, list[Example]]]
    top_logits: list[tuple[str, float | None]]
    bottom_logits: list[tuple[str, float | None]]
    top_input_tokens: list[tuple[str, float | None]]
    """The token embeddings that raise the pre-activation most along the direct path, with
    their scores (`features.input_tokens`); empty when the cards were made without them."""
    histogram: list[float]
    quantile_values: list[float]
    record: dict[str, Any]
    """The card as stored (circuit-tracer's feature JSON)."""

    @classmethod
    def from_record(
        cls, record: dict[str, Any], layer: int, label: str | None = None
    ) -> FeatureCard:
        groups = [
            (g["quantile_name"], [_example(e) for e in g["examples"]])
            for g in record["examples_quantiles"]
        ]
        top = groups[0][1] if groups and groups[0][0] == "Top activations" else []
        rest = groups[1:] if top else groups
        return cls(
            layer=layer,
            index=int(record["index"]),
            label=label if label is not None else str(record.get("label", "")),
            density=float(record["activation_frequency"]),
            act_max=float(record["act_max"]),
            top_examples=top,
            interval_examples=rest,
            top_logits=_logits(record["top_logits"], record.get("top_logit_values")),
            bottom_logits=_logits(record["bottom_logits"], record.get("bottom_logit_values")),
            top_input_tokens=_logits(
                record.get("top_input_tokens", []), record.get("top_input_token_values")
            ),
            histogram=list(record["histogram"]),
            quantile_values=list(record["quantile_values"]),
            record=record,
        )


def _example(e: dict[str, Any]) -> Example:
    return Example(
        list(e["tokens"]),
        [float(a) for a in e["tokens_acts_list"]],
        int(e["train_token_ind"]),
        bool(e.get("is_repeated_datapoint", False)),
    )


def _logits(strings: list[str], values: list[float] | None) -> list[tuple[str, float | None]]:
    if values is None or len(values) != len(strings):
        return [(s, None) for s in strings]
    return [(s, float(v)) for s, v in zip(strings, values, strict=True)]


def load_card(features_dir: Path, layer: int, index: int) -> FeatureCard:
    """The card of feature `index` of `layer`, with the user's label when there is one."""
    record = read_feature(Path(features_dir), layer, index)
    label = read_labels(Path(features_dir)).get((layer, index))
    return FeatureCard.from_record(record, layer, label)


def format_example(example: Example, color: bool) -> str:
    """One line: the text with the peak token marked (reverse video, or «brackets»)."""
    parts = []
    for i, token in enumerate(example.tokens):
        text = token.replace("\n", "⏎")
        if i == example.peak:
            text = f"\x1b[7m{text}\x1b[0m" if color else f"«{text}»"
        parts.append(text)
    return f"{example.value:8.3f}  {''.join(parts)}"


def format_card(card: FeatureCard, color: bool = False, n_examples: int = 10) -> str:
    lines = [
        f"L{card.layer}/F{card.index}  {card.label}",
        f"density {card.density:.3%} of tokens   max activation {card.act_max:.3f}",
        "top logits     " + _logit_text(card.top_logits),
        "bottom logits  " + _logit_text(card.bottom_logits),
    ]
    if card.top_input_tokens:
        lines.append("input tokens   " + _logit_text(card.top_input_tokens))
    lines.append("top activations:")
    lines += ["  " + format_example(e, color) for e in card.top_examples[:n_examples]]
    for name, examples in card.interval_examples:
        lines.append(f"{name}:")
        lines += ["  " + format_example(e, color) for e in examples[:3]]
    return "\n".join(lines)


def _logit_text(logits: list[tuple[str, float | None]]) -> str:
    return "  ".join(repr(s) + (f" {v:+.2f}" if v is not None else "") for s, v in logits[:8])
