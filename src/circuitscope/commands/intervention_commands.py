"""`intervene` and `validate`: test features and graphs on the original model."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuitscope.cli_args import positional
from circuitscope.commands import Command
from circuitscope.commands.options import BosOption, ModelOptions
from circuitscope.data.bos import BosPolicy
from circuitscope.errors import CircuitscopeError

if TYPE_CHECKING:
    from circuitscope.interventions.patching import InterventionResult


@dataclass(kw_only=True)
class InterveneConfig(BosOption, ModelOptions):
    transcoder: str = positional()
    """The transcoder whose features are intervened on."""
    prompt: str = positional()
    """The text to run (positions count from 0 at the prepended BOS, as in graphs)."""
    set: list[str] = field(default_factory=list)
    """Set nodes to a value: L:P:F=VALUE (P may be *, F may be err; L:P:F,L:P:F=V for a group)."""
    scale: list[str] = field(default_factory=list)
    """Multiply nodes' activations: L:P:F=FACTOR (a group scales a supernode)."""
    add: list[str] = field(default_factory=list)
    """Add to nodes' activations: L:P:F=AMOUNT."""
    zero: list[str] = field(default_factory=list)
    """Ablate nodes: L:P:F (no value)."""
    freeze_attention: bool = False
    """Replay the clean run's attention probabilities instead of letting them respond."""
    freeze_norms: bool = False
    """Also replay its norm scales (with --constrain over every layer: the graph's direct
    effects exactly)."""
    constrain: str = ""
    """Hold MLP outputs clean (apart from the interventions' own writes) in layers FIRST-LAST."""
    generate: int = 0
    """Generate this many tokens with the interventions applied to every step (0: none)."""
    temperature: float = 0.0
    """Sampling temperature for --generate (0: greedy)."""
    seed: int = 0
    """Random seed for sampling."""
    top_k: int = 10
    """Show this many most likely next tokens."""
    top_features: int = 15
    """Show this many features whose activation changed the most."""
    output: str = field(default="", metadata={"short": "-o"})
    """Also write the result as JSON to this file."""


@dataclass(kw_only=True)
class ValidateConfig:
    graph: str = positional()
    """A folder written by `circuitscope trace` (graph.*, pruned.*, config.json)."""
    model: str = ""
    """The model (default: the one the graph was traced with)."""
    transcoder: str = ""
    """The transcoder (default: the one the graph was traced with)."""
    bos: BosPolicy | None = None
    """The BOS policy (see run --bos; default: the one the graph was traced with). The graph's
    tokens are replayed as traced, so another policy is refused."""
    top_n: int = 30
    """Test the pruned graph's this many most influential feature and error nodes."""
    freeze_attention: bool = True
    """Measure with attention frozen, as the graph assumes (norms always run live)."""
    check_edges: bool = True
    """Also compare each pruned edge from the tested features with constrained patching."""
    batch_size: int = 16
    """Interventions per forward pass."""
    output: str = field(default="", metadata={"short": "-o"})
    """Folder for validation.json and validation.png (default: GRAPH/validation)."""
    device: str = "cpu"
    """cpu, cuda, cuda:N, or auto."""
    progress: bool = True
    """Show a progress bar."""


def intervene_command(config: InterveneConfig) -> int:
    """Set, scale, add or zero features on the model; show the new prediction (and text)."""
    from circuitscope.attribution.prompts import check_prompt, prompt_ids, token_texts
    from circuitscope.interventions.generation import generate
    from circuitscope.interventions.patching import PatchSettings, intervene
    from circuitscope.interventions.spec import parse_all
    from circuitscope.models.loading import load_model
    from circuitscope.outputs import check_output_file, write_atomically
    from circuitscope.transcoders.checks import check_against_model
    from circuitscope.transcoders.transcoder import Transcoder

    output = check_output_file(config.output) if config.output else None
    items = parse_all(config.set, config.scale, config.add, config.zero)
    if not items:
        raise CircuitscopeError("no interventions: give --set, --scale, --add or --zero")
    constrained = parse_layer_range(config.constrain)
    frozen = config.freeze_attention or config.freeze_norms
    if config.generate and (constrained is not None or frozen):
        raise CircuitscopeError(
            "--generate runs free: it cannot freeze attention or norms or constrain layers "
            "(generated tokens have no clean run to hold to)"
        )
    check_prompt(config.prompt)
    transcoder = Transcoder.load(config.transcoder)  # a bad path fails before the model loads
    fits = partial(check_against_model, transcoder)  # checked before the weights load
    loaded = load_model(config.model, device=config.device, dtype=config.dtype, check=fits)
    transcoder.to_device(loaded.adapter.device)
    ids, _ = prompt_ids(loaded.tokenizer, config.prompt, config.bos)
    tokens = token_texts(loaded.tokenizer, ids[0])
    print("tokens  " + "  ".join(f"{i}:{t!r}" for i, t in enumerate(tokens)))
    print("interventions  " + "; ".join(item.describe() for item in items))
    generation = config.generate > 0
    prompt_items = [i for i in items if i.position is None or i.position < len(tokens)]
    if len(prompt_items) < len(items) and not generation:
        late = next(i for i in items if i not in prompt_items)
        raise CircuitscopeError(
            f"{late.describe()}: no position {late.position}; positions are "
            f"0..{len(tokens) - 1} (positions beyond the prompt need --generate)"
        )
    settings = PatchSettings(
        freeze_attention=config.freeze_attention or config.freeze_norms,
        freeze_norms=config.freeze_norms,
        constrained_layers=constrained,
        keep_activations=True,
    )
    result = intervene(loaded.adapter, transcoder, ids, [[], prompt_items], settings)
    summary = _next_token_summary(result, loaded.tokenizer, config.top_k)
    summary["changed_features"] = [
        asdict(change) for change in result.changed_features(1, config.top_features)
    ]
    _print_next_token(summary)
    if generation:
        eos = getattr(loaded.tokenizer, "eos_token_id", None)
        runs = {}
        for name, steer in (("clean", []), ("steered", items)):
            gen = generate(
                loaded.adapter,
                transcoder,
                ids,
                steer,
                config.generate,
                temperature=config.temperature,
                seed=config.seed,
                eos_token_id=eos,
            )
            runs[name] = loaded.tokenizer.decode(gen.token_ids.tolist())
            print(f"\n{name:<8} {config.prompt}⟨{runs[name]}⟩")
        summary["generation"] = runs
    if output is not None:
        write_atomically(output, json.dumps(summary, indent=1))
        print(f"\nwritten to {output}")
    return 0


def parse_layer_range(text: str) -> range | None:
    """'A-B' (inclusive) -> range(A, B + 1); '' -> None."""
    if not text:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", text)
    if match is None:
        raise CircuitscopeError(f"--constrain expects FIRST-LAST layers, e.g. 0-11; got {text!r}")
    first, last = int(match.group(1)), int(match.group(2))
    if last < first:
        raise CircuitscopeError(f"--constrain {text!r}: the last layer comes before the first")
    return range(first, last + 1)


def _next_token_summary(result: InterventionResult, tokenizer: Any, top_k: int) -> dict[str, Any]:
    """Top tokens of the clean run (batch element 0) and the intervened one (1)."""
    import torch

    rows = {
        name: [
            {"token": tokenizer.decode([i]), "id": i, "probability": p}
            for i, p in result.top_tokens(b, top_k)
        ]
        for b, name in enumerate(("clean", "intervened"))
    }
    logits = result.logits[:, -1].float()
    clean_top = rows["clean"][0]["id"]
    log_probs = torch.log_softmax(logits, dim=-1)
    return {
        "top_tokens": rows,
        "clean_top_token_logit_change": float(logits[1, clean_top] - logits[0, clean_top]),
        "clean_top_token_log_prob_change": float(log_probs[1, clean_top] - log_probs[0, clean_top]),
    }


def _print_next_token(summary: dict[str, Any]) -> None:
    rows = summary["top_tokens"]
    print(f"\n{'clean':<28} intervened")
    for clean, new in zip(rows["clean"], rows["intervened"], strict=True):
        left = f"{clean['token']!r} {clean['probability']:.3f}"
        print(f"{left:<28} {new['token']!r} {new['probability']:.3f}")
    print(
        f"clean top token: logit {summary['clean_top_token_logit_change']:+.3f}, "
        f"log-probability {summary['clean_top_token_log_prob_change']:+.3f}"
    )
    if summary["changed_features"]:
        print("features that changed most (layer, position, feature: before -> after):")
        for row in summary["changed_features"]:
            where = f"L{row['layer']}@{row['position']}/F{row['feature']}"
            print(f"  {where:<18} {row['before']:8.3f} -> {row['after']:8.3f}")


def validate_command(config: ValidateConfig) -> int:
    """Test a traced graph's predictions by ablating and doubling its top nodes."""
    from circuitscope.interventions.validation import ValidationSettings, validate_graph
    from circuitscope.interventions.validation_files import (
        PLOT_FILE,
        REPORT_FILE,
        open_context,
        write_report,
    )
    from circuitscope.outputs import check_output_folder

    output = config.output or Path(config.graph) / "validation"
    check_output_folder(output, (REPORT_FILE, PLOT_FILE))
    bos = _traced_bos(config.graph, config.bos)  # before the model loads
    context = open_context(config.graph, config.model, config.transcoder, config.device)
    settings = ValidationSettings(
        config.top_n, config.freeze_attention, config.batch_size, config.check_edges
    )
    report = validate_graph(context, settings, progress=config.progress)
    report["prompt"] = context.full.prompt
    report["graph"] = str(config.graph)
    folder = write_report(report, output)
    print(f"tokens as traced (--bos {bos})")
    print_validation(report)
    print(f"\nwritten to {folder}/ (validation.json, validation.png)")
    return 0


def _traced_bos(graph: str, given: BosPolicy | None) -> str:
    """The BOS policy the graph was traced with (folders from before it was recorded: auto,
    then the only policy); a different `given` one is refused."""
    from circuitscope.graph.trace_folder import TraceFolder

    recorded = str(TraceFolder.open(graph).settings().get("bos", "auto"))
    if given is not None and given != recorded:
        raise CircuitscopeError(
            f"{graph} was traced with --bos {recorded}, not --bos {given}: validate replays "
            "the graph's tokens (trace again to change the BOS)"
        )
    return recorded


def print_validation(report: dict[str, Any]) -> None:
    for name, summary in report["experiments"].items():
        print(
            f"{name:<20} n={summary['n']:<4} Spearman {summary['spearman']:6.3f}   "
            f"sign agreement {summary['sign_agreement']:.2f}"
        )
        if name.endswith("_replacement"):
            continue
        for part in ("features_only", "errors_only"):
            sub, kind = summary[part], part.replace("_only", "")
            print(
                f"  {kind:<7} n={sub['n']:<4} Spearman {sub['spearman']:6.3f}   "
                f"sign agreement {sub['sign_agreement']:.2f}"
            )
        for row in summary["worst"][:3]:
            print(
                f"    worst: {row['label']:<22} predicted {row['predicted']:+9.4f}  "
                f"measured {row['measured']:+9.4f}"
            )
    edges = report.get("edges")
    if edges and edges.get("n"):
        print(
            f"{'edges':<20} n={edges['n']:<4} Spearman {edges['spearman']:6.3f}   "
            f"max |error| {edges['max_abs_error']:.2e} "
            f"({edges['relative_error']:.1e} of the largest)"
        )


COMMANDS = [
    Command("intervene", InterveneConfig, intervene_command),
    Command("validate", ValidateConfig, validate_command),
]
