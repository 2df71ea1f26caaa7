"""`circuitscope demo` from start to end: transcoder, screening, graphs, validation, cards,
supernodes, comparisons, report. Each step reuses what an earlier run wrote."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

from circuitscope.demo.facts import case_facts
from circuitscope.demo.report import write_report
from circuitscope.demo.steps import (
    MODEL,
    DemoSettings,
    StepClock,
    build_cards,
    compare_pairs,
    screen_cases,
    suggest_groups,
    trace_case,
    validate_case,
    write_screening,
)
from circuitscope.demo.suite import Screened, Suite
from circuitscope.demo.training_step import demo_transcoder, evaluate_once


def run_demo(settings: DemoSettings, suite: Suite, transcoder: str = "") -> list[Path]:
    """Run every step into `settings.out`; returns the kept cases' trace folders.
    transcoder: use this one instead of training the demo preset."""
    from circuitscope.models.loading import load_model
    from circuitscope.transcoders.transcoder import Transcoder

    start = time.perf_counter()
    reused = settings.out.is_dir() and any(settings.out.iterdir())
    settings.out.mkdir(parents=True, exist_ok=True)
    path = transcoder
    if not path:
        trained = demo_transcoder(
            settings.out / "train", MODEL, settings.quick, settings.device, settings.progress
        )
        evaluate_once(trained, MODEL, 256 if settings.quick else 4096, settings.device)
        path = str(trained)
    loaded = load_model(MODEL, device=settings.device)
    opened = Transcoder.load(path, device=str(loaded.adapter.device))
    cases = [c for c in suite.cases if c.quick or not settings.quick]
    screened = screen_cases(loaded, suite, cases)
    write_screening(screened, settings.out / "screening.json")
    kept = [s.case for s in screened if s.kept]
    print(f"screening: {len(kept)} of {len(cases)} cases kept (see screening.json)")
    graphs = [settings.graph_folder(c) for c in kept]
    clock = StepClock("graph", len(kept))
    for case, folder in zip(kept, graphs, strict=True):
        clock.begin(f"tracing and validating {case.slug!r}")
        trace_case(loaded, opened, str(Path(path).resolve()), case, folder, settings.progress)
        validate_case(loaded, opened, case, folder, settings.top_n)
        clock.end()
    build_cards(loaded, opened, graphs, settings)
    clock = StepClock("supernodes", len(kept))
    for case, folder in zip(kept, graphs, strict=True):
        clock.begin(f"suggesting and checking groups for {case.slug!r}")
        suggest_groups(loaded, opened, folder, settings.features_folder)
        clock.end()
    comparisons = compare_pairs(kept, settings)
    summary = _summary(settings, path, screened, time.perf_counter() - start)
    summary.update(comparisons=comparisons, reused=reused)
    write_demo_report(settings, summary, screened)
    return graphs


def _summary(
    settings: DemoSettings, transcoder: str, screened: list[Screened], seconds: float
) -> dict[str, Any]:
    threads = torch.get_num_threads()
    return {
        "model": MODEL,
        "transcoder": transcoder,
        "transcoder_description": _describe(Path(transcoder)),
        "eval": _eval_figures(Path(transcoder)),
        "screened": len(screened),
        "kept": sum(s.kept for s in screened),
        "seconds": seconds,
        "machine": f"{platform.machine()}, {threads} torch threads, {settings.device}",
        "quick": settings.quick,
    }


def _describe(folder: Path) -> str:
    config = folder / "train_config.json"
    if not config.is_file():
        return "not trained here"
    values = json.loads(config.read_text())
    return (
        f"{values.get('kind', '?').upper()}, {values.get('n_features')} {values.get('activation')} "
        f"features per layer, {values.get('steps')} steps of {values.get('batch_size')} tokens"
    )


def _eval_figures(folder: Path) -> dict[str, Any] | None:
    report = folder / "eval.json"
    if not report.is_file():
        return None
    data = json.loads(report.read_text())
    return {
        "nmse": data.get("nmse"),
        "l0": data.get("l0"),
        "top1_agreement": data["replacement"]["top1_agreement"],
    }


def write_demo_report(
    settings: DemoSettings, summary: dict[str, Any], screened: list[Screened]
) -> None:
    from circuitscope.features.files import read_labels

    folder = settings.features_folder
    labels = read_labels(folder) if (folder / "index.json.gz").is_file() else {}
    cases = [case_facts(s, settings.graph_folder(s.case), labels) for s in screened]
    paths = write_report(settings.out, summary, cases)
    print("report: " + ", ".join(str(p) for p in paths))
