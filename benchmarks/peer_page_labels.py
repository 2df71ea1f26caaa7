"""Our attribution-graph JSON in circuit-tracer 0.5.0's own page, in headless Chromium.

    .venv/bin/python benchmarks/peer_page_labels.py [--peer-python /work/peer-venv/bin/python]

Exports tiny traced graphs (circuitscope.testing.tiny_graphs) whose logit labels are
awkward tokens (quotes, backslashes, newlines, unicode), serves them with circuit-tracer's
`frontend.local_server.serve` from the peer virtualenv (benchmarks/README.md), opens each
in /usr/bin/chromium (Selenium, the driver at /usr/bin/chromedriver), and reads back what
the page draws: the token above each logit (its `logitToken`), every node it placed, the
layer it put the logits on, and the console's errors. Prints a table; exit 1 on a mismatch.
Needs chromium, chromium-driver and selenium (`setup.sh --dev`) and the peer venv.

The page loads d3 with Anthropic's fork of d3-jetpack, dagre and pako from CDNs, which
this offline machine cannot reach: the script serves a copy of circuit-tracer's assets
whose <script> tags point at local builds instead (nothing else changes). They come from
npm, d3 and d3-jetpack bundled into one file with esbuild (d3-jetpack's own d3v7 build
attaches its helpers to a second copy of d3-selection, so the page cannot see them):

    mkdir -p out/ct-page-libs && cd out/ct-page-libs && echo '{"private":true}' > package.json
    npm install d3@7 d3-jetpack@2.3.0 dagre@0.8.5 pako@2.1.0
    cat > entry.js <<'JS'
    import * as d3 from "d3";
    import "./node_modules/d3-jetpack/essentials.js";
    import nestBy from "./node_modules/d3-jetpack/src/nestBy.js";
    import clamp from "./node_modules/d3-jetpack/src/clamp.js";
    import conventions from "./node_modules/d3-jetpack/src/conventions.js";
    window.d3 = Object.assign({}, d3, { nestBy, clamp, conventions });
    JS
    ../../web/node_modules/.bin/esbuild entry.js --bundle --format=iife \\
        --alias:d3-selection=./node_modules/d3/node_modules/d3-selection \\
        --alias:d3-transition=./node_modules/d3/node_modules/d3-transition \\
        --outfile=node_modules/d3-jetpack-d3v7.js

The fork's `hotserver-client-ws.js` and `npy_v0.js` are dropped: a dev reloader and a
reader of .npy files that the graph page does not load.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TOKENS = [
    " Au", '"', ' "quoted"', "it's \"both\"", "back\\slash", "\n", "\r\n\t", "é", " 日本",
    "🙂", "＂", "'", "a) (b", " Paris",
]  # fmt: skip
SERVER = """
import sys, threading
from importlib.resources import files
from circuit_tracer.frontend.local_server import serve
if sys.argv[3] == "print-assets":
    print(files("circuit_tracer") / "frontend/assets")
    sys.exit(0)
serve(data_dir=sys.argv[1], frontend_dir=sys.argv[3], port=int(sys.argv[2]))
threading.Event().wait()
"""
CDN = "https://transformer-circuits.pub/2025/attribution-graphs/static_js/lib/"
LOCAL_SCRIPTS = {
    CDN + "hotserver-client-ws.js": None,
    CDN + "d3.js": "d3-jetpack-d3v7.js",
    CDN + "jetpack_2024-07-20.js": None,
    CDN + "npy_v0.js": None,
    "https://unpkg.com/dagre@0.8.5/dist/dagre.min.js": "dagre/dist/dagre.min.js",
    "https://unpkg.com/pako@2.1.0/dist/pako.min.js": "pako/dist/pako.min.js",
}
READ_PAGE = """
const logits = Array.from(document.querySelectorAll('g.axis text'))
  .filter(t => t.__data__ && t.__data__.feature_type === 'logit')
  .map(t => t.textContent);
const nodes = Array.from(document.querySelectorAll('circle, rect, path'))
  .map(e => e.__data__).filter(d => d && d.nodeId);
const logitLayers = [...new Set(nodes.filter(d => d.feature_type === 'logit').map(d => d.layer))];
return {logits, nodeIds: [...new Set(nodes.map(d => d.nodeId))], logitLayers};
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--peer-python", default="/work/peer-venv/bin/python")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--driver", default="/usr/bin/chromedriver")
    parser.add_argument(
        "--libs", default="out/ct-page-libs/node_modules", help="npm's folder (see above)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        data, frontend = Path(folder) / "data", Path(folder) / "frontend"
        data.mkdir()
        documents = write_documents(data)
        offline_page(args, frontend)
        port = free_port()
        command = [args.peer_python, "-c", SERVER, str(data), str(port), str(frontend)]
        server = subprocess.Popen(command)
        try:
            wait_for_port(port)
            results = [read_page(args, port, slug, doc) for slug, doc in documents.items()]
        finally:
            server.terminate()
            server.wait(timeout=10)
    ok = True
    print("| written token | page shows | same |\n|---|---|---|")
    for result in results:
        for token, shown in zip(result["tokens"], result["logits"], strict=False):
            same = shown == token.replace('"', "\uff02")
            ok &= same
            print(f"| {token!r} | {shown!r} | {'yes' if same else 'NO'} |")
    for result in results:
        nodes_ok = result["all_nodes_drawn"] and not result["errors"]
        ok &= nodes_ok and len(result["logits"]) == len(result["tokens"])
        print(
            f"- {result['slug']}: {len(result['logits'])} logit labels, nodes drawn "
            f"{result['n_drawn']}/{result['n_nodes']} (missing: {result['missing'] or 'none'}), "
            f"logits drawn on layer {result['logit_layers']} (the page puts them above the "
            f"highest layer drawn), console errors: {result['errors'] or 'none'}"
        )
    print(
        "verdict: "
        + (
            "the page reads every label back and draws every node, no console errors"
            if ok
            else "MISMATCH"
        )
    )
    return 0 if ok else 1


def write_documents(folder: Path) -> dict[str, dict[str, Any]]:
    """Our JSON for tiny graphs labelled with TOKENS, and circuit-tracer's graph-metadata."""
    from circuitscope.graph.neuronpedia import export_neuronpedia
    from circuitscope.graph.prune import prune_graph
    from circuitscope.testing.tiny_graphs import tiny_graph

    pruned = prune_graph(tiny_graph("llama"), 0.8, 0.98)
    n = pruned.n_logits
    documents, listing = {}, []
    for start in range(0, len(TOKENS), n):
        tokens = (TOKENS[start : start + n] + TOKENS[:n])[:n]
        labels = [f"{token!r} (p={0.5 / (k + 1):.3f})" for k, token in enumerate(tokens)]
        graph = dataclasses.replace(pruned, logit_labels=labels)
        slug = f"labels-{start // n}"
        document = export_neuronpedia(graph, slug, "tiny-llama")
        (folder / f"{slug}.json").write_text(json.dumps(document))
        documents[slug] = {**document, "tokens": tokens}
        listing.append(document["metadata"])
    (folder / "graph-metadata.json").write_text(json.dumps({"graphs": listing}))
    return documents


def offline_page(args: argparse.Namespace, frontend: Path) -> None:
    """A copy of circuit-tracer's assets loading its libraries from `args.libs`."""
    command = [args.peer_python, "-c", SERVER, "", "0", "print-assets"]
    assets = Path(
        subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
    )
    shutil.copytree(assets, frontend)
    (frontend / "lib").mkdir()
    index = (frontend / "index.html").read_text()
    for url, local in LOCAL_SCRIPTS.items():
        tag = f"<script src='{url}'></script>"
        if tag not in index:
            raise SystemExit(f"circuit-tracer's index.html no longer loads {url}")
        if local is None:
            index = index.replace(tag, "")
            continue
        shutil.copy(Path(args.libs) / local, frontend / "lib" / Path(local).name)
        index = index.replace(tag, f"<script src='./lib/{Path(local).name}'></script>")
    (frontend / "index.html").write_text(index)


def read_page(args: argparse.Namespace, port: int, slug: str, document: dict) -> dict[str, Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = args.chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1600,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(args.driver), options=options)
    try:
        driver.get(f"http://localhost:{port}/index.html?slug={slug}")
        page = _wait_for_logits(driver)
        log = driver.get_log("browser")
        errors = [
            e["message"] for e in log if e["level"] == "SEVERE" and "favicon" not in e["message"]
        ]
    finally:
        driver.quit()
    threshold = document["metadata"]["node_threshold"]
    ids = {node["node_id"] for node in document["nodes"] if _shown(node, threshold)}
    return {
        "slug": slug,
        "tokens": document["tokens"],
        "logits": page["logits"],
        "n_nodes": len(ids),
        "n_drawn": len(ids & set(page["nodeIds"])),
        "all_nodes_drawn": ids <= set(page["nodeIds"]),
        "missing": sorted(ids - set(page["nodeIds"])),
        "logit_layers": page["logitLayers"],
        "errors": errors,
    }


def _shown(node: dict[str, Any], threshold: float) -> bool:
    """Whether the page draws `node` at its default pruning slider (metadata.node_threshold):
    tokens and logits always, others when their cumulative influence is within it (so the
    one node that crosses the threshold, kept by pruning, is hidden, as with circuit-tracer's
    own files)."""
    if node["feature_type"] in ("embedding", "logit") or node.get("influence") is None:
        return True
    return node["influence"] <= threshold


def _wait_for_logits(driver: Any, timeout_s: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    page = driver.execute_script(READ_PAGE)
    while not page["logits"] and time.monotonic() < deadline:
        time.sleep(0.5)
        page = driver.execute_script(READ_PAGE)
    return page


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"circuit-tracer's server did not open port {port}")


if __name__ == "__main__":
    sys.exit(main())
