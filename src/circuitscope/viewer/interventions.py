"""Interventions requested by the page, run like `circuitscope intervene` runs them.

A request (POST /api/intervene/ID) is a JSON object:

    {"interventions": [{"nodes": [node_id, ...], "operation": "set" | "scale" | "add",
                        "value": float}, ...],
     "freeze_attention": bool, "generate": int, "top_k": int}

Each entry applies to every node it names (a supernode is its members). Node ids
are the graph JSON's; feature and error nodes can be intervened on. The model and
transcoder come from the flags of `serve` or else the trace's config.json; they
are loaded on the first request and kept. The answer: the clean and intervened
top tokens (batch 0 and 1 of one `intervene` call, as the CLI prints them) and,
with `generate`, the clean and steered continuations.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from circuitscope.errors import CircuitscopeError
from circuitscope.interventions.spec import OPERATIONS, Intervention
from circuitscope.viewer import trace_folder
from circuitscope.viewer.trace_folder import GraphSource

MAX_GENERATE = 64


@dataclass(frozen=True)
class ModelChoice:
    model: str = ""
    """Overrides the trace's model when set."""
    transcoder: str = ""
    """Overrides the trace's transcoder when set."""
    device: str = "cpu"
    dtype: str = "float32"


class InterventionBackend:
    """Loads each (model, transcoder) pair once and runs requests one at a time."""

    def __init__(self, choice: ModelChoice | None = None) -> None:
        self.choice = choice or ModelChoice()
        self._loaded: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._lock = threading.Lock()

    def settings(self, source: GraphSource) -> dict[str, Any]:
        """model, transcoder and bos for a graph ("" where unknown)."""
        config = trace_folder.read_trace_config(source)
        return {
            "model": self.choice.model or str(config.get("model", "")),
            "transcoder": self.choice.transcoder or str(config.get("transcoder", "")),
            "bos": config.get("bos", "auto"),
        }

    def available(self, source: GraphSource) -> bool:
        try:
            settings = self.settings(source)
        except CircuitscopeError:
            return False
        return bool(settings["model"] and settings["transcoder"])

    def run(self, source: GraphSource, request: dict[str, Any]) -> dict[str, Any]:
        settings = self.settings(source)
        if not (settings["model"] and settings["transcoder"]):
            raise CircuitscopeError(
                "interventions need the model and transcoder: serve a trace folder "
                "(its config.json names them) or pass --model and --transcoder"
            )
        document = trace_folder.read_document(source)
        items = parse_request(request, document)
        generate = _bounded_int(request.get("generate", 0), "generate", 0, MAX_GENERATE)
        top_k = _bounded_int(request.get("top_k", 10), "top_k", 1, 50)
        freeze = request.get("freeze_attention", False)
        if not isinstance(freeze, bool):
            raise CircuitscopeError("freeze_attention must be true or false")
        with self._lock:
            loaded, transcoder = self._load(settings["model"], settings["transcoder"])
            return run_interventions(
                loaded, transcoder, document["metadata"]["prompt"], settings["bos"],
                items, freeze, top_k, generate,
            )  # fmt: skip

    def _load(self, model: str, transcoder: str) -> tuple[Any, Any]:
        from circuitscope.models.loading import load_model
        from circuitscope.transcoders.transcoder import Transcoder

        key = (model, transcoder)
        if key not in self._loaded:
            loaded = load_model(model, device=self.choice.device, dtype=self.choice.dtype)
            device = str(loaded.adapter.device)
            self._loaded[key] = (loaded, Transcoder.load(transcoder, device=device))
        return self._loaded[key]


def parse_request(request: dict[str, Any], document: dict[str, Any]) -> list[Intervention]:
    """The Interventions of a request, its node ids looked up in the graph document."""
    entries = request.get("interventions")
    if not isinstance(entries, list) or not entries:
        raise CircuitscopeError("interventions must be a non-empty list")
    nodes = {node["node_id"]: node for node in document["nodes"]}
    items = []
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("operation") not in OPERATIONS:
            raise CircuitscopeError(f"each intervention needs an operation in {OPERATIONS}")
        value = entry.get("value")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise CircuitscopeError("each intervention needs a numeric value")
        ids = entry.get("nodes")
        if not isinstance(ids, list) or not ids:
            raise CircuitscopeError("each intervention needs a list of node ids")
        for node_id in ids:
            layer, position, feature = node_site(nodes, node_id)
            items.append(Intervention(layer, position, feature, entry["operation"], float(value)))
    return items


def node_site(nodes: dict[str, dict[str, Any]], node_id: Any) -> tuple[int, int, int | None]:
    """(layer, position, feature index or None for an error node) of a graph node."""
    node = nodes.get(node_id) if isinstance(node_id, str) else None
    if node is None:
        raise CircuitscopeError(f"no node {node_id!r} in this graph")
    kind = node["feature_type"]
    if kind not in ("cross layer transcoder", "mlp reconstruction error"):
        raise CircuitscopeError(f"{node_id}: only feature and error nodes can be intervened on")
    layer, position = int(node["layer"]), int(node["ctx_idx"])
    if kind == "mlp reconstruction error":
        return layer, position, None
    return layer, position, int(str(node_id).split("_")[1])


def run_interventions(
    loaded: Any,
    transcoder: Any,
    prompt: str,
    bos: Any,
    items: list[Intervention],
    freeze_attention: bool,
    top_k: int,
    generate_tokens: int,
) -> dict[str, Any]:
    """Top tokens before and after (and continuations), as `circuitscope intervene` has them."""
    from circuitscope.attribution.prompts import prompt_ids
    from circuitscope.interventions.generation import generate
    from circuitscope.interventions.patching import PatchSettings, intervene

    tokenizer = loaded.tokenizer
    ids, _ = prompt_ids(tokenizer, prompt, bos)
    settings = PatchSettings(freeze_attention=freeze_attention, keep_activations=False)
    result = intervene(loaded.adapter, transcoder, ids, [[], items], settings)
    answer: dict[str, Any] = {
        "top_tokens": {
            name: [
                {"token": tokenizer.decode([i]), "id": i, "probability": p}
                for i, p in result.top_tokens(batch, top_k)
            ]
            for batch, name in enumerate(("clean", "intervened"))
        },
        "interventions": [item.describe() for item in items],
    }
    if generate_tokens:
        eos = getattr(tokenizer, "eos_token_id", None)
        answer["generation"] = {
            name: tokenizer.decode(
                generate(loaded.adapter, transcoder, ids, steer, generate_tokens,
                         eos_token_id=eos).token_ids.tolist()
            )
            for name, steer in (("clean", []), ("steered", items))
        }  # fmt: skip
    return answer


def _bounded_int(value: Any, what: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise CircuitscopeError(f"{what} must be an integer in {low}-{high}")
    return value
