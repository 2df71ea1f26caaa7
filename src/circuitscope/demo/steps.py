"""The demo's steps, each skipped when its output already exists (a rerun continues).

Layout of the demo folder OUT:
    train/               the demo-preset training run (train/transcoder: the transcoder)
    screening.json       which cases the model gets right, and why others were dropped
    graphs/<slug>/       one trace folder per kept case, with validation/ and supernodes.json
    features/            feature cards for every feature of the pruned graphs
    compare/<pair>.json  each pair of kept cases compared
    report.md, report.html
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from circuitscope.demo.suite import CaseStudy, Screened, Suite, screen
from circuitscope.models.loading import LoadedModel
from circuitscope.transcoders.transcoder import Transcoder

MODEL = "smollm2-135m"
CHECKED_GROUPS = 20
"""The demo checks a graph's most influential groups on the model (`circuitscope
supernodes` checks them all)."""


@dataclass(frozen=True)
class DemoSettings:
    out: Path
    """The demo folder."""
    quick: bool = False
    """Tiny settings: a few minutes on a CPU (the test's)."""
    device: str = "cpu"
    feature_tokens: int = 32_768
    """Corpus tokens streamed for the feature cards."""
    top_n: int = 30
    """Nodes per graph tested on the model by the validation."""
    progress: bool = True

    def graph_folder(self, case: CaseStudy) -> Path:
        return self.out / "graphs" / case.slug

    @property
    def features_folder(self) -> Path:
        return self.out / "features"


class StepClock:
    """Prints each step of a list with the time so far and an estimate of what is left."""

    def __init__(self, name: str, total: int) -> None:
        self.name, self.total, self.done, self.start = name, total, 0, time.perf_counter()

    def begin(self, what: str) -> None:
        elapsed = time.perf_counter() - self.start
        eta = (
            ""
            if self.done == 0
            else f", about {elapsed / self.done * (self.total - self.done):.0f} s left"
        )
        print(
            f"[{self.name} {self.done + 1}/{self.total}] {what} ({elapsed:.0f} s so far{eta})",
            flush=True,
        )

    def end(self) -> None:
        self.done += 1


def screen_cases(loaded: LoadedModel, suite: Suite, cases: list[CaseStudy]) -> list[Screened]:
    """Each case kept or dropped by the model's own next-token distribution."""
    from circuitscope.attribution.prompts import prompt_ids

    screened = []
    for case in cases:
        ids, _ = prompt_ids(loaded.tokenizer, case.prompt)
        with torch.no_grad():
            logits = loaded.model(ids.to(loaded.adapter.device)).logits[0, -1].float()
        probabilities = logits.softmax(-1)
        top = int(probabilities.argmax())
        top_token = str(loaded.tokenizer.decode([top]))
        expected_p = _expected_probability(loaded, case, probabilities)
        screened.append(
            screen(case, top_token, float(probabilities[top]), expected_p, suite.max_confidence)
        )
    return screened


def _expected_probability(
    loaded: LoadedModel, case: CaseStudy, probabilities: torch.Tensor
) -> float | None:
    if case.expected is None:
        return None
    ids = loaded.tokenizer(case.expected, add_special_tokens=False).input_ids
    return float(probabilities[ids[0]]) if len(ids) == 1 else None


def trace_case(
    loaded: LoadedModel,
    transcoder: Transcoder,
    transcoder_path: str,
    case: CaseStudy,
    folder: Path,
    progress: bool,
) -> None:
    """Trace, prune and save the case's graph (skipped when the folder has one)."""
    from circuitscope.attribution.trace import save_trace, trace

    if (folder / "pruned.safetensors").is_file():
        return
    result = trace(
        loaded.adapter,
        loaded.tokenizer,
        transcoder,
        case.prompt,
        progress=progress,
        model_id=MODEL,
        transcoder_id=transcoder_path,
    )
    settings = {"model": MODEL, "transcoder": transcoder_path, "prompt": case.prompt}
    save_trace(result, folder, case.slug, settings)


def validate_case(
    loaded: LoadedModel, transcoder: Transcoder, case: CaseStudy, folder: Path, top_n: int
) -> None:
    """Test the graph's predictions on the original model (skipped when done)."""
    from circuitscope.interventions.validation import ValidationSettings, validate_graph
    from circuitscope.interventions.validation_files import write_report

    if (folder / "validation" / "validation.json").is_file():
        return
    context = _context(loaded, transcoder, folder)
    report = validate_graph(context, ValidationSettings(top_n=top_n))
    report.update(prompt=case.prompt, graph=str(folder))
    write_report(report, folder / "validation")


def _context(loaded: LoadedModel, transcoder: Transcoder, folder: Path) -> Any:  # noqa: ANN401
    from circuitscope.graph.trace_folder import TraceFolder
    from circuitscope.interventions.validation import ValidationContext, logit_directions

    trace = TraceFolder.open(folder)
    full, pruned = trace.graph(), trace.pruned()
    directions = logit_directions(loaded.adapter, loaded.tokenizer, full, trace.settings())
    return ValidationContext(loaded.adapter, transcoder, full, pruned, directions)


def build_cards(
    loaded: LoadedModel, transcoder: Transcoder, graphs: list[Path], settings: DemoSettings
) -> None:
    """Feature cards for the pruned graphs' features (cards already there are kept)."""
    from circuitscope.features.build import CorpusSpec, build_feature_cards
    from circuitscope.features.graph_features import graph_features
    from circuitscope.features.stats_settings import StatsSettings

    features = graph_features(graphs, "pruned")
    if not features:
        return
    corpus = CorpusSpec(sources=("default",), tokens=settings.feature_tokens)
    report = build_feature_cards(
        loaded,
        transcoder,
        settings.features_folder,
        corpus,
        StatsSettings(),
        features,
        transcoder_id="demo",
        progress=settings.progress,
    )
    print(f"feature cards: {report.new_cards} new, {report.kept_cards} kept")


def suggest_groups(
    loaded: LoadedModel, transcoder: Transcoder, folder: Path, features: Path
) -> None:
    """Supernode suggestions, labelled from the cards; the most influential checked on the
    model."""
    from circuitscope.commands.supernode_commands import label_from_cards
    from circuitscope.graph.supernodes import SupernodeSettings, suggest_supernodes
    from circuitscope.graph.supernodes_files import suggestions_document, write_suggestions
    from circuitscope.interventions.group_validation import (
        GroupCheckSettings,
        check_groups,
        full_graph_members,
    )

    if (folder / "supernodes.json").is_file():
        return
    context = _context(loaded, transcoder, folder)
    settings = SupernodeSettings()
    groups = suggest_supernodes(context.pruned, settings)
    if (features / "index.json.gz").is_file():
        label_from_cards(context.pruned, groups, features)
    document = suggestions_document(context.pruned, groups, settings)
    if groups:
        checked = groups[:CHECKED_GROUPS]
        members = [full_graph_members(context.full, context.pruned, g.members) for g in checked]
        report = check_groups(context, members, GroupCheckSettings())
        for row, result in zip(document["groups"], report["groups"], strict=False):
            row["check"] = result
        document["check"] = {"agreement": report["agreement"], "settings": report["settings"]}
    write_suggestions(document, folder)


def write_screening(screened: list[Screened], path: Path) -> None:
    rows = [
        {
            "slug": s.case.slug,
            "category": s.case.category,
            "prompt": s.case.prompt,
            "expected": s.case.expected,
            "top_token": s.top_token,
            "top_probability": s.top_probability,
            "expected_probability": s.expected_probability,
            "kept": s.kept,
            "reason": s.reason,
        }
        for s in screened
    ]
    path.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")


def compare_pairs(kept: list[CaseStudy], settings: DemoSettings) -> list[dict[str, Any]]:
    """Compare the graphs of each pair of kept cases (`CaseStudy.pair`); writes
    OUT/compare/<pair>.json and returns a summary row per pair."""
    from circuitscope.graph.compare import compare_graphs
    from circuitscope.graph.supernodes_files import read_suggestions
    from circuitscope.graph.trace_folder import SUPERNODES_FILE, TraceFolder
    from circuitscope.outputs import write_json

    rows = []
    for pair in sorted({case.pair for case in kept if case.pair}):
        members = [case for case in kept if case.pair == pair][:2]
        if len(members) < 2:
            continue
        folders = [TraceFolder.open(settings.graph_folder(case)) for case in members]
        documents = [
            read_suggestions(f.path) if f.file(SUPERNODES_FILE).is_file() else None for f in folders
        ]
        comparison = compare_graphs(
            folders[0].pruned(), folders[1].pruned(), documents[0], documents[1]
        )
        write_json(settings.out / "compare" / f"{pair}.json", comparison.to_dict())
        summary = comparison.summary
        matched = comparison.supernodes.matched if comparison.supernodes else ()
        rows.append(
            {
                "pair": pair,
                "a": members[0].slug,
                "b": members[1].slug,
                "shared": summary.n_shared,
                "only_a": summary.n_only_a,
                "only_b": summary.n_only_b,
                "jaccard": summary.jaccard,
                "shared_groups": len(matched),
            }
        )
    return rows
