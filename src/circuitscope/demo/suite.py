"""The case-study suite: its prompts, and which of them the model actually gets right.

A case with an expected token is kept when the model's top next token is exactly it; a
case with no expected token (an unfamiliar name) is kept when the model is unsure: no
next token above the suite's `max_confidence`. Dropped cases keep the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from circuitscope.errors import CircuitscopeError

SUITE_FILE = "case_studies.json"


@dataclass(frozen=True)
class CaseStudy:
    slug: str
    """Folder name of the case's graph."""
    category: str
    """What it shows: one-hop fact, two-step fact, antonym, addition, (un)familiar name..."""
    prompt: str
    expected: str | None
    """The token the model should predict next; None: it should be unsure (no answer)."""
    look_for: str
    """What a reader should look for in the graph."""
    pair: str = ""
    """Cases with the same pair name are compared with each other."""
    quick: bool = False
    """Traced by `demo --quick`."""


@dataclass(frozen=True)
class Suite:
    cases: tuple[CaseStudy, ...]
    max_confidence: float
    """An unfamiliar-name case is kept when no next token gets more probability."""


@dataclass(frozen=True)
class Screened:
    case: CaseStudy
    top_token: str
    top_probability: float
    expected_probability: float | None
    """The expected token's probability (None when the case expects none, or when the
    expected text is not one token)."""
    kept: bool
    reason: str
    """Why it was kept or dropped, in words."""


def load_suite(path: str | Path | None = None) -> Suite:
    """The bundled suite, or a JSON file in its format."""
    if path is None:
        text = resources.files("circuitscope.demo").joinpath(SUITE_FILE).read_text()
        where = SUITE_FILE
    else:
        try:
            text = Path(path).read_text()
        except OSError as error:
            raise CircuitscopeError(f"cannot read the case suite {path}: {error}") from None
        where = str(path)
    try:
        data = json.loads(text)
        cases = tuple(_case(item) for item in data["cases"])
        suite = Suite(cases, float(data.get("max_confidence", 0.2)))
    except (ValueError, KeyError, TypeError) as error:
        raise CircuitscopeError(f"{where} is not a case suite: {error}") from None
    slugs = [case.slug for case in cases]
    if len(set(slugs)) != len(slugs):
        raise CircuitscopeError(f"{where}: two cases share a slug")
    return suite


def _case(item: dict[str, Any]) -> CaseStudy:
    expected = item["expected"]
    return CaseStudy(
        slug=str(item["slug"]),
        category=str(item["category"]),
        prompt=str(item["prompt"]),
        expected=None if expected is None else str(expected),
        look_for=str(item.get("look_for", "")),
        pair=str(item.get("pair", "")),
        quick=bool(item.get("quick", False)),
    )


def screen(
    case: CaseStudy,
    top_token: str,
    top_probability: float,
    expected_probability: float | None,
    max_confidence: float,
) -> Screened:
    """Keep or drop `case` given the model's top next token (decoded) and its probability,
    and the expected token's probability (None when it is not one token)."""
    top_p = float(top_probability)
    if case.expected is None:
        kept = top_p <= max_confidence
        verdict = "unsure, as expected" if kept else "confident, though the name is unfamiliar"
        reason = f"{verdict}: top token {top_token!r} at {top_p:.2f} (limit {max_confidence})"
        return Screened(case, top_token, top_p, None, kept, reason)
    kept = top_token == case.expected
    if kept:
        reason = f"top token {top_token!r} at {top_p:.2f}"
    else:
        share = "not one token" if expected_probability is None else f"{expected_probability:.2f}"
        reason = f"the model says {top_token!r} ({top_p:.2f}); {case.expected!r} gets {share}"
    return Screened(case, top_token, top_p, expected_probability, kept, reason)
