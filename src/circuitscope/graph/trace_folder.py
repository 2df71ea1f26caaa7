"""A trace folder: what `trace` writes for one prompt, and the one place that knows its files.

    graph.safetensors + graph.json     the full graph (`graph.files`)
    pruned.safetensors + pruned.json   the pruned graph
    pruned.png                         a picture of the pruned graph
    <slug>.json                        the attribution-graph JSON of the pruned graph
                                       (Neuronpedia's and circuit-tracer's page read it)
    config.json                        the settings of the command that made it (written once)
    labels.json                        node labels a person gave (the viewer writes it)
    supernodes.json                    suggested groups (`circuitscope supernodes`)

A reader may rely on: `graph` and `pruned` load with `load_graph`; `pruned.json`'s
metadata names the attribution-graph JSON (`slug`; folders written before it have
exactly one other JSON file); `config.json` holds at least `model` and `transcoder`
as they were given, and `graph.json`'s metadata holds `model` and `transcoder`
resolved to absolute paths where they were paths. Every file is written whole or
not at all (`circuitscope.outputs.write_atomically`). A folder is recognised as a
trace folder by its `graph.json` + `graph.safetensors`; `prepare_trace_folder` refuses to write into
any other non-empty folder, so `-o` never overwrites what is not a trace.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from circuitscope.errors import CircuitscopeError
from circuitscope.graph.files import load_graph, save_graph
from circuitscope.graph.graph import Graph
from circuitscope.outputs import write_json

FULL, PRUNED = "graph", "pruned"
CONFIG_FILE = "config.json"
PICTURE_FILE = "pruned.png"
LABELS_FILE = "labels.json"
SUPERNODES_FILE = "supernodes.json"
GRAPH_FILES = tuple(f"{name}.{ext}" for name in (FULL, PRUNED) for ext in ("safetensors", "json"))
KNOWN_FILES = frozenset([*GRAPH_FILES, CONFIG_FILE, PICTURE_FILE, LABELS_FILE, SUPERNODES_FILE])
"""Files with fixed names; the attribution-graph JSON is named by the graph's slug."""


def is_trace_folder(folder: Path) -> bool:
    return (folder / f"{FULL}.json").is_file() and (folder / f"{FULL}.safetensors").is_file()


def slug_of(prompt: str) -> str:
    """A file name for a prompt's graph: its words, lowercased, dash-joined."""
    words = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:48].strip("-") or "prompt"
    return f"{words}-prompt" if f"{words}.json" in KNOWN_FILES else words


def check_slug(slug: str) -> str:
    """`slug` if it is a plain file name stem (the JSON stays inside the folder), else an
    error."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", slug) or slug.endswith(".json"):
        raise CircuitscopeError(
            f"slug {slug!r} must be a plain name: letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    if f"{slug}.json" in KNOWN_FILES:
        raise CircuitscopeError(f"slug {slug!r} is the name of another file of a trace folder")
    return slug


def prepare_trace_folder(folder: Path, dry_run: bool = False) -> None:
    """Make `folder` ready for a new trace: create it, or clear a previous trace's files.

    Refuses (CircuitscopeError) a file, or a non-empty folder that is not a trace folder,
    so that `-o` never overwrites a transcoder, a model or anything else. dry_run: only
    check (commands check before they compute)."""
    if folder.is_file():
        raise CircuitscopeError(f"-o {folder} is a file; give a folder for the graph files")
    if folder.is_dir() and any(folder.iterdir()):
        if not is_trace_folder(folder):
            raise CircuitscopeError(
                f"-o {folder} is a folder that holds something other than a trace; "
                "give a new folder or a previous trace folder"
            )
        if dry_run:
            return
        document = document_path(folder)
        for path in folder.iterdir():  # a previous trace: its files, not a user's other files
            if path.name in KNOWN_FILES or path == document:
                path.unlink()
    if not dry_run:
        folder.mkdir(parents=True, exist_ok=True)


def write_trace_folder(
    folder: Path,
    graph: Graph,
    pruned: Graph,
    document: dict[str, Any],
    settings: dict[str, Any],
    picture: Callable[[Graph, Path], Any] | None = None,
) -> Path:
    """Write a trace into `folder` (see `prepare_trace_folder`): both graphs, the
    attribution-graph JSON named by its slug, the settings, and a picture of the pruned
    graph when `picture(graph, path)` is given. Returns the folder."""
    slug = check_slug(str(document["metadata"]["slug"]))
    prepare_trace_folder(folder)
    pruned.metadata["slug"] = graph.metadata["slug"] = slug
    save_graph(graph, folder, FULL)
    save_graph(pruned, folder, PRUNED)
    write_json(folder / f"{slug}.json", document, indent=None)
    write_json(folder / CONFIG_FILE, settings)
    if picture is not None:
        picture(pruned, folder / PICTURE_FILE)
    return folder


def document_path(folder: Path) -> Path | None:
    """The attribution-graph JSON of a trace folder, or None when it has none."""
    pruned_info = folder / f"{PRUNED}.json"
    if pruned_info.is_file():
        try:
            slug = json.loads(pruned_info.read_text()).get("metadata", {}).get("slug")
        except (json.JSONDecodeError, AttributeError):
            slug = None
        if slug and (folder / f"{slug}.json").is_file():
            return folder / f"{slug}.json"
    others = sorted(
        path
        for path in folder.glob("*.json")
        if path.name not in KNOWN_FILES and not path.name.endswith(".labels.json")
    )
    return others[0] if len(others) == 1 else None


@dataclass(frozen=True)
class TraceFolder:
    """A trace folder opened for reading."""

    path: Path

    @classmethod
    def open(cls, path: str | Path) -> TraceFolder:
        folder = Path(path).expanduser()
        if not is_trace_folder(folder):
            raise CircuitscopeError(
                f"{folder} is not a trace folder (no graph.json + graph.safetensors); "
                "make one with `circuitscope trace ... -o FOLDER`"
            )
        return cls(folder)

    def graph(self) -> Graph:
        """The full graph."""
        return load_graph(self.path, FULL)

    def pruned(self) -> Graph:
        """The pruned graph."""
        return load_graph(self.path, PRUNED)

    def settings(self) -> dict[str, Any]:
        """The config of the command that made it ({} when the folder has none)."""
        path = self.path / CONFIG_FILE
        if not path.is_file():
            return {}
        try:
            value = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise CircuitscopeError(f"cannot read {path}: {error}") from None
        if not isinstance(value, dict):
            raise CircuitscopeError(f"{path}: expected a JSON object of settings")
        return value

    def document_path(self) -> Path | None:
        return document_path(self.path)

    def file(self, name: str) -> Path:
        """One of the fixed-name files (`KNOWN_FILES`), e.g. `LABELS_FILE`."""
        if name not in KNOWN_FILES:
            raise ValueError(f"{name!r} is not a file of a trace folder")
        return self.path / name
