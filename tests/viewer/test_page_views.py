"""The page's views: several graphs, bookmarked URL state, SVG and PNG export."""

from __future__ import annotations

import base64
import json
import shutil
import xml.etree.ElementTree as ElementTree

import pytest

pytest.importorskip("selenium", reason="browser tests need selenium (./setup.sh --dev)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

from circuitscope.testing.tiny_cards import tiny_card  # noqa: E402
from circuitscope.viewer.page_actions import (  # noqa: E402
    severe_console_messages,
    visible_count,
    wait_for,
    wait_ready,
)

pytestmark = pytest.mark.browser


def features(trace_dir) -> list[str]:
    document = json.loads((trace_dir / "capital.json").read_text())
    chosen = [n for n in document["nodes"] if n["feature_type"] == "cross layer transcoder"]
    return [n["node_id"] for n in sorted(chosen, key=lambda n: n["influence"])]


def test_a_bookmarked_url_restores_the_view_and_the_picker_switches_graphs(
    chromium, trace_dir, serve, tmp_path
):
    other = shutil.copytree(trace_dir, tmp_path / "second")
    document = json.loads((other / "capital.json").read_text())
    document["metadata"]["slug"] = "second"
    (other / "capital.json").write_text(json.dumps(document))
    served = serve(trace_dir, other)
    a, b, c = features(trace_dir)[:3]
    severe_console_messages(chromium)
    chromium.get(served.url + f"#g=1&t=0.50&link=inputs&clicked={c}&pinned={a},{b}")
    wait_ready(chromium)
    state = chromium.execute_script(
        "const s = window.circuitscope.state;"
        "return [s.gid, s.threshold, s.linkType, s.clicked.id, s.pinned, s.model.doc.metadata.slug]"
    )
    assert state == [1, 0.5, "inputs", c, [a, b], "second"]
    assert Select(chromium.find_element(By.ID, "link-type")).first_selected_option.text == "inputs"
    picker = Select(chromium.find_element(By.ID, "graph-picker"))
    assert [o.text for o in picker.options] == ["capital", "second"]
    picker.select_by_value("0")
    wait_for(chromium, "window.circuitscope.ready && window.circuitscope.state.gid === 0")
    assert chromium.execute_script("return window.circuitscope.state.model.doc.metadata.slug") == (
        "capital"
    )
    assert "g=0" in chromium.current_url and visible_count(chromium) > 0
    assert severe_console_messages(chromium) == []


def test_the_subgraph_exports_as_svg_and_png(chromium, trace_dir, serve):
    served = serve(trace_dir)
    a, b = features(trace_dir)[:2]
    chromium.get(served.url + f"#pinned={a},{b}")
    wait_ready(chromium)
    svg = ElementTree.fromstring(
        chromium.execute_script("return window.circuitscope.subgraphSvg()")
    )
    texts = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    layer, index = (int(part) for part in a.split("_")[:2])
    label = tiny_card(layer, index)["label"]
    assert len(texts) == 2 and (label if len(label) <= 28 else label[:27] + "…") in texts
    url = chromium.execute_async_script(
        "const done = arguments[0];"
        "window.circuitscope.subgraphPng().then(done, e => done(String(e)))"
    )
    assert url.startswith("data:image/png;base64,")
    png = base64.b64decode(url.split(",", 1)[1])
    width = int.from_bytes(png[16:20], "big")
    pane = chromium.find_element(By.ID, "subgraph-svg").size["width"]
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and width == 2 * pane


def test_a_supernodes_links_are_its_members_summed(chromium, trace_dir, serve):
    document = json.loads((trace_dir / "capital.json").read_text())
    served = serve(trace_dir)
    chromium.get(served.url)
    wait_ready(chromium)
    logit = next(n["node_id"] for n in document["nodes"] if n["is_target_logit"])
    a, b, c = features(trace_dir)[:3]
    chromium.execute_script(
        "const s = window.circuitscope.state; s.pinned = arguments[0];"
        "s.supernodes = [['pair', arguments[1], arguments[2]]];",
        [a, b, c, logit],
        a,
        b,
    )
    shown = chromium.execute_script("return window.circuitscope.subgraphLinks()")
    links = {(x["source"], x["target"]): x["weight"] for x in shown}
    weight = {(x["source"], x["target"]): x["weight"] for x in document["links"]}
    summed = weight.get((a, logit), 0.0) + weight.get((b, logit), 0.0)
    assert summed != 0 and links[("sn:pair", logit)] == pytest.approx(summed, rel=1e-12)
    into_c = weight.get((a, c), 0.0) + weight.get((b, c), 0.0)
    assert links.get(("sn:pair", c), 0.0) == pytest.approx(into_c, rel=1e-12, abs=0)
    assert ("sn:pair", "sn:pair") not in links and (a, logit) not in links


def test_suggested_supernodes_are_offered_and_accepted(chromium, trace_dir, serve):
    from circuitscope.graph.supernodes_files import FORMAT, write_suggestions

    a, b, c = features(trace_dir)[:3]
    groups = [
        {"label": "Texas", "members": [a, b], "evidence": {}, "check": None},
        {"label": "capitals", "members": [c, "no_such_node"], "evidence": {}, "check": None},
    ]
    write_suggestions({"format": FORMAT, "version": 1, "graph": "pruned", "method": "ours",
                       "threshold": 0.25, "groups": groups, "coverage": {}, "check": None},
                      trace_dir)  # fmt: skip
    served = serve(trace_dir)
    chromium.get(served.url)
    wait_ready(chromium)
    buttons = chromium.find_elements(By.CSS_SELECTOR, "#suggestions .suggestion")
    assert [b_.text for b_ in buttons] == ["+ Texas (2)", "+ capitals (2)"]
    buttons[1].click()
    buttons[0].click()
    state = chromium.execute_script(
        "const s = window.circuitscope.state; return [s.supernodes, s.pinned]"
    )
    assert state == [[["capitals", c], ["Texas", a, b]], [c, a, b]]
