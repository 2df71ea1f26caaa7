"""Everything the viewer reads from and writes to a served graph (the one seam to disk).

A served source is either a trace folder (written by `circuitscope trace`: it holds
the attribution-graph JSON `<slug>.json` next to graph.*, pruned.* and config.json)
or one attribution-graph JSON file (Neuronpedia's format; circuit-tracer's
`create_graph_files` writes the same). What the page saves goes back into the source:
the view (pins, supernodes, positions, slider) into the JSON's `qParams`, node labels
into a labels file beside it (`labels.json` in a trace folder, `<stem>.labels.json`
next to a lone JSON file). Feature cards come from a features folder (`--features`,
or `features/` inside the trace folder).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from circuitscope.errors import CircuitscopeError
from circuitscope.graph import trace_folder as folders
from circuitscope.graph.neuronpedia import schema_problems
from circuitscope.outputs import write_atomically

MAX_LABEL_CHARS = 500
LINK_TYPES = ("inputs", "outputs", "both")
_write_lock = threading.Lock()


@dataclass(frozen=True)
class GraphSource:
    """One served graph: where its JSON, labels, settings and cards live."""

    name: str
    """What the page's graph picker shows."""
    folder: Path
    """The folder files may be served from (the trace folder, or the JSON's folder)."""
    json_path: Path | None
    """The attribution-graph JSON; None when the folder has none (an error in the page)."""
    labels_path: Path
    features_dir: Path | None
    """Feature cards for this graph, if any."""
    is_trace: bool = True
    """A trace folder (else a lone JSON file, beside files that are not its own)."""

    @property
    def config_path(self) -> Path:
        return self.folder / "config.json"


def open_source(path: str | Path, features: str | Path | None = None) -> GraphSource:
    """A served graph from a trace folder or a graph JSON file; raises if neither."""
    path = Path(path).resolve()
    if path.is_file():
        folder, json_path = path.parent, path
        labels = folder / f"{path.stem}.labels.json"
    elif path.is_dir():
        folder, json_path = path, folders.document_path(path)
        labels = path / folders.LABELS_FILE
    else:
        raise CircuitscopeError(f"{path}: no such trace folder or graph JSON file")
    features_dir = _features_dir(folder, features)
    return GraphSource(path.name, folder, json_path, labels, features_dir, path.is_dir())


def _features_dir(folder: Path, features: str | Path | None) -> Path | None:
    if features is not None:
        features = Path(features).resolve()
        if not features.is_dir():
            raise CircuitscopeError(f"--features {features}: no such folder")
        return features
    inside = folder / "features"
    return inside if (inside / "index.json.gz").is_file() else None


def read_document(source: GraphSource) -> dict[str, Any]:
    """The graph JSON with the saved labels merged in; raises CircuitscopeError if bad."""
    if source.json_path is None:
        raise CircuitscopeError(f"{source.folder} holds no attribution-graph JSON")
    try:
        document = json.loads(source.json_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise CircuitscopeError(f"{source.json_path.name}: not readable JSON ({error})") from None
    problems = schema_problems(document)
    if problems:
        raise CircuitscopeError(
            f"{source.json_path.name}: not an attribution-graph JSON: " + "; ".join(problems[:3])
        )
    document["labels"] = read_labels(source)
    document["featureLabels"] = read_feature_labels(source)
    document["suggestions"] = read_suggested_groups(source)
    return document


def read_suggested_groups(source: GraphSource) -> list[dict[str, Any]]:
    """The groups `circuitscope supernodes` suggested for this graph ([] when none); each
    {"label", "members": [node_id...], "check": {...} | null}."""
    from circuitscope.graph.supernodes_files import read_suggestions

    if not source.is_trace or not (source.folder / folders.SUPERNODES_FILE).is_file():
        return []
    groups = read_suggestions(source.folder).get("groups", [])
    return [
        {"label": str(g.get("label", "")), "members": [str(m) for m in g.get("members", [])],
         "check": g.get("check")}
        for g in groups if isinstance(g, dict)
    ]  # fmt: skip


def read_feature_labels(source: GraphSource) -> dict[str, str]:
    """{"LAYER/INDEX": label} from the features folder (automatic ones, overridden by the
    user's); empty without cards."""
    from circuitscope.features.files import read_labels as read_card_labels

    if source.features_dir is None:
        return {}
    return {f"{layer}/{index}": label for (layer, index), label in
            read_card_labels(source.features_dir).items()}  # fmt: skip


def read_labels(source: GraphSource) -> dict[str, str]:
    """{node_id: label} saved from the page (empty when none)."""
    if not source.labels_path.is_file():
        return {}
    try:
        labels = json.loads(source.labels_path.read_text())
    except (OSError, ValueError) as error:
        raise CircuitscopeError(f"{source.labels_path}: unreadable labels ({error})") from None
    if not isinstance(labels, dict):
        raise CircuitscopeError(f"{source.labels_path}: labels must be a JSON object")
    return {str(key): str(value) for key, value in labels.items()}


def save_state(source: GraphSource, q_params: Any, labels: Any) -> None:
    """Write the page's view into the JSON's qParams and its labels into the labels file.

    Raises CircuitscopeError (nothing written) when either is malformed."""
    q_params, labels = check_q_params(q_params), check_labels(labels)
    with _write_lock:
        document = read_document(source)
        document.pop("labels")
        document.pop("featureLabels")
        document.pop("suggestions")
        document["qParams"] = {**document["qParams"], **q_params}
        assert source.json_path is not None
        write_atomically(source.json_path, json.dumps(document))
        merged = {**read_labels(source), **labels}
        merged = {key: value for key, value in merged.items() if value.strip()}
        text = json.dumps(merged, indent=1, ensure_ascii=False)
        write_atomically(source.labels_path, text)


def check_q_params(q_params: Any) -> dict[str, Any]:
    """The qParams the page may save, type-checked; raises CircuitscopeError."""
    if not isinstance(q_params, dict):
        raise CircuitscopeError("qParams must be a JSON object")
    checked: dict[str, Any] = {}
    if "pinnedIds" in q_params:
        checked["pinnedIds"] = _strings(q_params["pinnedIds"], "pinnedIds")
    if "supernodes" in q_params:
        groups = q_params["supernodes"]
        if not isinstance(groups, list):
            raise CircuitscopeError("supernodes must be a list of [label, node_id, ...]")
        checked["supernodes"] = [_strings(group, "a supernode") for group in groups]
        if any(len(group) < 2 for group in checked["supernodes"]):
            raise CircuitscopeError("a supernode needs a label and at least one member")
    for key in ("clickedId", "sg_pos"):
        if key in q_params:
            checked[key] = _string(q_params[key], key)
    if "linkType" in q_params:
        if q_params["linkType"] not in LINK_TYPES:
            raise CircuitscopeError(f"linkType must be one of {LINK_TYPES}")
        checked["linkType"] = q_params["linkType"]
    if "pruningThreshold" in q_params:
        value = q_params["pruningThreshold"]
        if not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise CircuitscopeError("pruningThreshold must be a number in [0, 1]")
        checked["pruningThreshold"] = float(value)
    return checked


def check_labels(labels: Any) -> dict[str, str]:
    if not isinstance(labels, dict):
        raise CircuitscopeError("labels must be a JSON object {node_id: label}")
    for key, value in labels.items():
        _string(value, f"label of {key}")
        if len(value) > MAX_LABEL_CHARS:
            raise CircuitscopeError(f"label of {key} is longer than {MAX_LABEL_CHARS} characters")
    return dict(labels)


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise CircuitscopeError(f"{what} must be a list of strings")
    return list(value)


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise CircuitscopeError(f"{what} must be a string")
    return value


def read_card(source: GraphSource, layer: int, index: int) -> dict[str, Any]:
    """The feature card of (layer, index); raises CircuitscopeError when there is none."""
    from circuitscope.features.files import read_feature

    if source.features_dir is None:
        raise CircuitscopeError("no feature cards are served for this graph (--features DIR)")
    return read_feature(source.features_dir, layer, index)


def compare_sources(a: GraphSource, b: GraphSource) -> dict[str, Any]:
    """`graph.compare.compare_graphs` of the two sources' pruned graphs (with each
    folder's supernodes.json when both have one) as plain JSON data; raises
    CircuitscopeError when either is not a trace folder or their transcoders differ."""
    from circuitscope.graph.compare import check_same_transcoder, compare_graphs
    from circuitscope.graph.supernodes_files import read_suggestions

    opened = []
    for source in (a, b):
        if not source.is_trace:
            raise CircuitscopeError(
                f"{source.name} is a graph JSON file, not a trace folder; comparing needs "
                "the folders `circuitscope trace` writes (their pruned graphs)"
            )
        opened.append(folders.TraceFolder.open(source.folder))
    folder_a, folder_b = opened
    graph_a, graph_b = folder_a.pruned(), folder_b.pruned()
    check_same_transcoder(folder_a, graph_a, folder_b, graph_b)
    document_a, document_b = (
        read_suggestions(folder.path) if folder.file(folders.SUPERNODES_FILE).is_file() else None
        for folder in opened
    )
    return compare_graphs(graph_a, graph_b, document_a, document_b).to_dict()


def read_trace_config(source: GraphSource) -> dict[str, Any]:
    """The trace's settings (config.json: model, transcoder, bos, ...), with the model and
    transcoder as graph.json's metadata resolved them (absolute paths, so a relative path
    given to `trace` still works from here); {} for a lone JSON file."""
    if not source.is_trace:
        return {}
    config = dict(folders.TraceFolder(source.folder).settings())
    graph_info = source.folder / f"{folders.FULL}.json"
    if graph_info.is_file():
        try:
            metadata = json.loads(graph_info.read_text()).get("metadata", {})
        except (OSError, ValueError, AttributeError):
            metadata = {}
        for key in ("model", "transcoder"):
            if isinstance(metadata, dict) and metadata.get(key):
                config[key] = metadata[key]
    return config


def served_file(source: GraphSource, relative: str) -> Path:
    """A file inside the source's folder; raises CircuitscopeError for anything outside it
    (`..`, absolute paths, symlinks that lead out)."""
    root = source.folder.resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise CircuitscopeError(f"not a file of this graph: {relative!r}")
    return target
