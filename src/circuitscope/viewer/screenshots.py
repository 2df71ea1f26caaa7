"""Screenshots of the page on a trace folder, for the README (headless Chromium).

    python -m circuitscope.viewer.screenshots GRAPH_DIR [--features DIR] [--out docs/viewer]
        [--node NODE_ID] [--threshold T]

Serves the folder on a free port, opens the page, takes the whole page
(`viewer-graph.png`), then clicks a feature node (the most influential one whose card
exists, or --node) and takes the page with its card open (`viewer-card.png`).
Needs the dev extra (selenium) and Debian's chromium and chromium-driver.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path
from typing import Any

from circuitscope.viewer.headless import browser_missing, start_chromium
from circuitscope.viewer.page_actions import click_node, wait_for, wait_ready
from circuitscope.viewer.server import ViewerServer
from circuitscope.viewer.trace_folder import open_source, read_document


def feature_to_click(document: dict[str, Any], features: Path | None) -> str:
    """The most influential feature node whose card is in `features` (any when None)."""
    from circuitscope.features.files import read_feature

    nodes = [n for n in document["nodes"] if n.get("feature_type") == "cross layer transcoder"]
    nodes.sort(key=lambda n: float(n.get("influence") or 0.0))  # cumulative: smallest first
    for node in nodes:
        if features is None:
            return node["node_id"]
        layer, index = int(node["layer"]), int(str(node["node_id"]).split("_")[1])
        try:
            read_feature(features, layer, index)
        except Exception:  # noqa: BLE001 (no card for it)
            continue
        return node["node_id"]
    raise SystemExit("no feature node with a card to click")


def take(
    graph: Path,
    features: Path | None,
    out: Path,
    node: str,
    size: tuple[int, int],
    threshold: float | None = None,
) -> None:
    """Both screenshots into `out`; threshold: the prune slider's value (default: the page's)."""
    source = open_source(graph, features)
    server = ViewerServer(("127.0.0.1", 0), [source])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    driver = start_chromium(*size)
    try:
        driver.get(server.url + (f"#g=0&t={threshold:.2f}" if threshold else ""))
        wait_ready(driver)
        time.sleep(0.5)
        out.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out / "viewer-graph.png"))
        clicked = node or feature_to_click(read_document(source), source.features_dir)
        click_node(driver, clicked)
        wait_for(driver, "document.querySelector('#top-examples .example')")
        driver.execute_script(  # the card's examples into the side panel's view
            "document.querySelector('.card').scrollIntoView({block: 'start'})"
        )
        time.sleep(0.5)
        driver.save_screenshot(str(out / "viewer-card.png"))
        print(json.dumps({"graph": str(graph), "clicked": clicked, "out": str(out)}))
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("graph")
    parser.add_argument("--features", default="")
    parser.add_argument("--out", default="docs/viewer")
    parser.add_argument("--node", default="", help="the node to click (default: see above)")
    parser.add_argument("--width", type=int, default=1500)
    parser.add_argument("--height", type=int, default=950)
    parser.add_argument("--threshold", type=float, default=None, help="prune slider value")
    args = parser.parse_args()
    missing = browser_missing()
    if missing:
        raise SystemExit(missing)
    features = Path(args.features) if args.features else None
    take(
        Path(args.graph),
        features,
        Path(args.out),
        args.node,
        (args.width, args.height),
        args.threshold,
    )


if __name__ == "__main__":
    main()
