"""The options of `circuitscope intervene` and `validate` (light: the CLI reads them for --help)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from circuitscope.cli_args import positional


@dataclass(kw_only=True)
class InterveneConfig:
    model: str = positional()
    """A hub id, a model folder, a .gguf file, or smollm2-135m."""
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
    bos: Literal["auto", "always", "never"] = "auto"
    """Prepend the BOS token: auto (when the tokenizer adds none), always, never."""
    output: str = field(default="", metadata={"short": "-o"})
    """Also write the result as JSON to this file."""
    device: str = "cpu"
    """cpu, cuda, cuda:N, or auto."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Precision of the model's weights."""


@dataclass(kw_only=True)
class ValidateConfig:
    graph: str = positional()
    """A folder written by `circuitscope trace` (graph.*, pruned.*, config.json)."""
    model: str = ""
    """The model (default: the one the graph was traced with)."""
    transcoder: str = ""
    """The transcoder (default: the one the graph was traced with)."""
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
