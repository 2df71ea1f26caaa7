"""Viewer speed: a generated graph of 5,000 nodes and 50,000 edges in headless Chromium.

Measures, on the page served by `circuitscope serve`:
- load-to-first-draw: ms from navigation start to the end of the first full draw;
- full redraw: the page's draw() (layout, every edge in sign x weight batches, every
  node glyph, axes), median of repeated calls;
- hover: the mousemove handler (nearest-node lookup, overlay with the node's edges,
  tooltip), median over real mousemove events at nodes' positions.
Targets (issue 15): redraw <= 50 ms, hover <= 16 ms, first draw <= 2 s.

    .venv/bin/python benchmarks/viewer.py [--nodes 5000] [--edges 50000] [--label cpu-2core]
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from circuitscope.viewer.headless import browser_missing, start_chromium
from circuitscope.viewer.server import ViewerServer
from circuitscope.viewer.trace_folder import open_source

RESULTS = Path(__file__).parent / "results"
TARGETS_MS = {"first_draw": 2000.0, "redraw": 50.0, "hover": 16.0}


def generated_graph(n_nodes: int, n_edges: int, n_layers: int = 30, n_tokens: int = 24) -> dict:
    """An attribution-graph JSON with the given sizes (random features, DAG edges)."""
    rng = random.Random(0)
    n_logits, n_errors = 10, n_layers * n_tokens // 4
    n_features = n_nodes - n_tokens - n_logits - n_errors
    nodes: list[dict[str, Any]] = []

    def add(node_id: str, kind: str, layer: Any, pos: int, **extra: Any) -> None:
        node = {"node_id": node_id, "feature": 0, "layer": str(layer), "ctx_idx": pos,
                "feature_type": kind, "jsNodeId": node_id, "clerp": "", "influence": None,
                "activation": None, "token_prob": 0.0, "is_target_logit": False}  # fmt: skip
        nodes.append({**node, **extra})

    for i in range(n_features):
        layer, pos = rng.randrange(n_layers), rng.randrange(1, n_tokens)
        add(f"{layer}_{i}_{pos}", "cross layer transcoder", layer, pos,
            influence=(i + 1) / n_features, activation=rng.random() * 5)  # fmt: skip
    for i in range(n_errors):
        layer, pos = i % n_layers, 1 + (i // n_layers) % (n_tokens - 1)
        add(f"err_{layer}_{pos}_{i}", "mlp reconstruction error", layer, pos, influence=0.5)
    for pos in range(n_tokens):
        add(f"E_{pos}_{pos}", "embedding", "E", pos)
    for k in range(n_logits):
        add(f"{n_layers + 1}_{k}_{n_tokens - 1}", "logit", n_layers, n_tokens - 1,
            token_prob=0.5 / (k + 1), is_target_logit=k == 0)  # fmt: skip
    sources = [n for n in nodes if n["feature_type"] != "logit"]
    targets = [n for n in nodes if n["feature_type"] in ("cross layer transcoder", "logit")]
    links: dict[tuple[str, str], float] = {}
    while len(links) < n_edges:
        source, target = rng.choice(sources), rng.choice(targets)
        source_layer = -1 if source["layer"] == "E" else int(source["layer"])
        if source_layer < int(target["layer"]) and source["ctx_idx"] <= target["ctx_idx"]:
            links[(source["node_id"], target["node_id"])] = rng.gauss(0, 1)
    return {
        "metadata": {"slug": "generated", "scan": "benchmark", "prompt": "generated",
                     "prompt_tokens": [f"tok{p}" for p in range(n_tokens)], "schema_version": 1,
                     "node_threshold": 1.0, "info": {"n_layers": n_layers}},
        "qParams": {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "",
                    "sg_pos": ""},
        "nodes": nodes,
        "links": [{"source": s, "target": t, "weight": w} for (s, t), w in links.items()],
    }  # fmt: skip


def measure(url: str, n_redraws: int, n_hovers: int) -> dict[str, Any]:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver = start_chromium()
    try:
        driver.get(url)
        deadline = time.monotonic() + 120
        while not driver.execute_script("return !!(window.circuitscope||{}).ready"):
            if time.monotonic() > deadline:
                raise RuntimeError("the page did not load")
            time.sleep(0.05)
        first = driver.execute_script("return window.circuitscope.timings.firstDraw")
        counts = driver.execute_script(
            "const v = window.circuitscope.state.view; return [v.visible.length, v.edgeCount]"
        )
        redraws = driver.execute_script(
            "const out = []; for (let i = 0; i < arguments[0]; i++)"
            " out.push(window.circuitscope.redraw()); return out;",
            n_redraws,
        )
        points = driver.execute_script(
            "const v = window.circuitscope.state.view; return v.visible.slice(0, arguments[0])"
            ".map(n => { const p = v.layout.positions.get(n.id); return [p[0], p[1]]; });",
            n_hovers,
        )
        canvas = driver.find_element(By.ID, "base-canvas")
        size = canvas.size
        driver.execute_script("window.circuitscope.timings.hover = []")
        for x, y in points:
            ActionChains(driver).move_to_element_with_offset(
                canvas, int(x - size["width"] / 2), int(y - size["height"] / 2)
            ).perform()
        hovers = driver.execute_script("return window.circuitscope.timings.hover")
        version = driver.capabilities.get("browserVersion", "")
    finally:
        driver.quit()
    return {
        "nodes_drawn": counts[0],
        "edges_drawn": counts[1],
        "first_draw_ms": first,
        "redraw_ms_median": statistics.median(redraws),
        "redraw_ms_max": max(redraws),
        "hover_ms_median": statistics.median(hovers),
        "hover_ms_p95": sorted(hovers)[int(0.95 * (len(hovers) - 1))],
        "n_redraws": len(redraws),
        "n_hovers": len(hovers),
        "chromium": version,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description="Viewer speed on a generated graph.")
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--edges", type=int, default=50000)
    parser.add_argument("--redraws", type=int, default=20)
    parser.add_argument("--hovers", type=int, default=100)
    parser.add_argument("--label", default="cpu-2core")
    args = parser.parse_args()
    if reason := browser_missing():
        print(f"viewer benchmark: {reason}", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="viewer-bench-"))
    document = generated_graph(args.nodes, args.edges)
    (folder / "generated.json").write_text(json.dumps(document))
    server = ViewerServer(("127.0.0.1", 0), [open_source(folder)])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = measure(server.url, args.redraws, args.hovers)
    finally:
        server.shutdown()
    result.update(nodes=len(document["nodes"]), edges=len(document["links"]))
    write_results(result, args.label)
    return 0


def write_results(result: dict[str, Any], label: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"viewer-{datetime.date.today().isoformat()}-{label}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1))
    lines = [
        f"# Viewer: {result['nodes']} nodes, {result['edges']} edges, headless Chromium "
        f"{result['chromium']} ({label})",
        "",
        "| measure | value | target |",
        "| --- | --- | --- |",
        f"| load to first draw | {result['first_draw_ms']:.0f} ms "
        f"| ≤ {TARGETS_MS['first_draw']:.0f} ms |",
        f"| full redraw (median of {result['n_redraws']}) | {result['redraw_ms_median']:.1f} ms "
        f"(max {result['redraw_ms_max']:.1f}) | ≤ {TARGETS_MS['redraw']:.0f} ms |",
        f"| hover (median of {result['n_hovers']}) | {result['hover_ms_median']:.2f} ms "
        f"(p95 {result['hover_ms_p95']:.2f}) | ≤ {TARGETS_MS['hover']:.0f} ms |",
        "",
        f"Drawn: {result['nodes_drawn']} nodes, {result['edges_drawn']} edges.",
    ]  # fmt: skip
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
