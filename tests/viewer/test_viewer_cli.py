"""`circuitscope export-html` and `serve` from the command line (no browser)."""

from __future__ import annotations

import json
import re

from viewer_data import feature_keys

from circuitscope.cli import main


def test_export_html_writes_one_file_with_the_graph_and_its_cards(trace_dir, tmp_path, capsys):
    out = tmp_path / "graph.html"
    assert main(["export-html", str(trace_dir), "-o", str(out)]) == 0
    assert "written to" in capsys.readouterr().out
    html = out.read_text()
    assert re.findall(r"<(?:script|link|img)[^>]*(?:src|href)=", html) == [
        '<link rel="icon" href='
    ]  # the only reference is the empty data: icon
    assert 'href="data:,"' in html
    block = re.search(r'<script type="application/json" id="embedded-graph">(.*?)</script>', html)
    assert block is not None
    data = json.loads(block.group(1).replace("<\\/", "</"))
    document = json.loads((trace_dir / "capital.json").read_text())
    assert data["document"]["nodes"] == document["nodes"]
    keys = {f"{layer}/{index}" for layer, index in feature_keys(document)}
    assert set(data["cards"]) == keys and len(keys) > 5
    assert data["cards"][min(keys)]["index"] == int(min(keys).split("/")[1])


def test_serve_and_export_refuse_a_missing_folder_in_one_line(tmp_path, capsys):
    missing = str(tmp_path / "absent")
    assert main(["serve", missing, "--no-open-browser", "--port", "0"]) == 2
    assert main(["export-html", missing, "-o", str(tmp_path / "x.html")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and all("no such trace folder" in line for line in errors)
