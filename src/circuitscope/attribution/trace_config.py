"""The options of `circuitscope trace` (no heavy imports: the CLI reads it for --help)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from circuitscope.cli_args import positional


@dataclass(kw_only=True)
class TraceConfig:
    model: str = positional()
    """A hub id, a model folder, a .gguf file, or smollm2-135m."""
    transcoder: str = positional()
    """The transcoder: a circuitscope folder, another supported format, or a hub id."""
    prompt: str = positional()
    """The text whose next token the graph explains."""
    output: str = field(default="graph", metadata={"short": "-o"})
    """Folder for the graph files."""
    max_n_logits: int = 10
    """At most this many logit targets (the most likely tokens)."""
    desired_logit_prob: float = 0.95
    """Take the fewest top tokens whose probabilities add up to this."""
    target: list[str] = field(default_factory=list)
    """Explain these tokens instead of the top ones (each exactly one token, e.g. ' Paris')."""
    contrast: list[str] = field(default_factory=list)
    """Explain logit(A) − logit(B): two tokens A B (e.g. ' Austin' ' Dallas')."""
    max_feature_nodes: int | None = None
    """Compute rows for at most this many features, the most influential first."""
    batch_size: int = 32
    """Targets per backward pass."""
    update_interval: int = 4
    """Batches between re-estimates of which features matter most."""
    row_buffer_mb: float = 2048.0
    """Memory for the rows. When rows over every active feature would not fit (long
    prompts), only the features ranked most influential keep a column; the graph's
    metadata says whether the choice provably equals the unrestricted one."""
    writer_cache_mb: float = 512.0
    """Memory for feature output vectors kept between backward passes (others are rebuilt)."""
    node_threshold: float = 0.8
    """Pruning: keep the nodes holding this share of influence on the logits."""
    edge_threshold: float = 0.98
    """Pruning: keep the edges holding this share of edge influence."""
    bos: Literal["auto", "always", "never"] = "auto"
    """Prepend the BOS token: auto (when the tokenizer adds none), always, never."""
    slug: str = ""
    """Name of the graph in the Neuronpedia JSON (default: from the prompt)."""
    device: str = "cpu"
    """cpu, cuda, cuda:N, or auto."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Precision of the model's weights (attribution accumulates in fp32)."""
    progress: bool = True
    """Show a progress bar."""
