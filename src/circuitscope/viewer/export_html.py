"""`circuitscope export-html`: the page, a graph and its cards in one offline HTML file.

The built page's script and style are inlined, and the data the server would
answer with (the graph JSON with labels, the cards of its features) is embedded
as JSON in a `<script type="application/json" id="embedded-graph">` element that
the page reads instead of calling the server. The file makes no request at all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from circuitscope.errors import CircuitscopeError
from circuitscope.viewer import trace_folder
from circuitscope.viewer.server import STATIC_DIR
from circuitscope.viewer.trace_folder import GraphSource

FEATURE_TYPE = "cross layer transcoder"


def embedded_data(source: GraphSource) -> dict[str, Any]:
    """{"name", "document", "cards": {"LAYER/INDEX": card}} of one graph."""
    document = trace_folder.read_document(source)
    cards: dict[str, Any] = {}
    if source.features_dir is not None:
        for node in document["nodes"]:
            if node["feature_type"] != FEATURE_TYPE:
                continue
            layer, index = int(node["layer"]), int(str(node["node_id"]).split("_")[1])
            key = f"{layer}/{index}"
            if key not in cards:
                try:
                    cards[key] = trace_folder.read_card(source, layer, index)
                except CircuitscopeError:
                    continue  # a feature without a card shows none, as in the server
    return {"name": source.name, "document": document, "cards": cards}


def single_file_html(source: GraphSource) -> str:
    """The whole page as one HTML document with the graph embedded."""
    page = (STATIC_DIR / "index.html").read_text()
    script = (STATIC_DIR / "app.js").read_text()
    style = (STATIC_DIR / "style.css").read_text()
    data = json.dumps(embedded_data(source)).replace("</", "<\\/")
    page = _replace_once(page, '<link rel="stylesheet" href="static/style.css">',
                         f"<style>\n{style}\n</style>")  # fmt: skip
    embedded = f'<script type="application/json" id="embedded-graph">{data}</script>\n'
    inline = "<script>\n" + script.replace("</script", "<\\/script") + "\n</script>"
    return _replace_once(page, '<script src="static/app.js"></script>', embedded + inline)


def _replace_once(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:
        raise RuntimeError(f"the built page lacks {old!r}: rebuild web/")
    return text.replace(old, new)


def export_html(source: GraphSource, output: Path) -> Path:
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(single_file_html(source), encoding="utf-8")
    return output
