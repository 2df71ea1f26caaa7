"""The page in real headless Chromium, on a traced tiny model with generated cards."""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("selenium", reason="browser tests need selenium (./setup.sh --dev)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

from circuitscope.graph.neuronpedia import import_neuronpedia  # noqa: E402
from circuitscope.testing.tiny_cards import tiny_card  # noqa: E402
from circuitscope.viewer.export_html import export_html  # noqa: E402
from circuitscope.viewer.page_actions import (  # noqa: E402
    click_node,
    severe_console_messages,
    visible_count,
    wait_for,
    wait_ready,
)
from circuitscope.viewer.subgraph_scores import selection_scores  # noqa: E402
from circuitscope.viewer.trace_folder import open_source  # noqa: E402

pytestmark = pytest.mark.browser


def open_page(driver, url: str) -> None:
    severe_console_messages(driver)  # empty the log
    driver.get(url)
    wait_ready(driver)


def document_of(trace_dir) -> dict:
    return json.loads((trace_dir / "capital.json").read_text())


def features_by_influence(document: dict) -> list[dict]:
    features = [n for n in document["nodes"] if n["feature_type"] == "cross layer transcoder"]
    return sorted(features, key=lambda n: n["influence"])


def test_the_page_loads_without_errors_and_draws_every_node(chromium, trace_dir, serve):
    served = serve(trace_dir)
    open_page(chromium, served.url + "#g=0&t=1.00")
    n_nodes = len(document_of(trace_dir)["nodes"])
    assert chromium.execute_script("return window.circuitscope.error") is None
    assert visible_count(chromium) == n_nodes
    text = chromium.find_element(By.ID, "visible-count").text
    assert text == f"{n_nodes} of {n_nodes} nodes"
    drawn = chromium.execute_script(
        "const c = document.getElementById('base-canvas');"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n;"
    )
    assert drawn > 5000  # edges, glyphs and axes were painted
    assert chromium.execute_script("return window.circuitscope.state.view.edgeCount") == len(
        document_of(trace_dir)["links"]
    )
    assert severe_console_messages(chromium) == []


def test_clicking_a_node_opens_its_card_with_the_right_top_example(chromium, trace_dir, serve):
    served = serve(trace_dir)
    open_page(chromium, served.url)
    node = features_by_influence(document_of(trace_dir))[0]
    click_node(chromium, node["node_id"])
    assert chromium.execute_script("return window.circuitscope.state.clicked.id") == node["node_id"]
    wait_for(chromium, "document.querySelector('#top-examples .example')")
    layer, index = int(node["layer"]), int(node["node_id"].split("_")[1])
    expected = tiny_card(layer, index)["examples_quantiles"][0]["examples"][0]["tokens"]
    shown = chromium.find_element(By.CSS_SELECTOR, "#top-examples .example")
    spans = shown.find_elements(By.TAG_NAME, "span")
    assert [s.get_attribute("textContent") for s in spans] == [
        json.dumps(t)[1:-1] for t in expected
    ]
    title = chromium.find_element(By.ID, "node-title").text
    assert title == tiny_card(layer, index)["label"]  # the card's automatic label names it
    peak = shown.find_element(By.CLASS_NAME, "peak")
    assert peak.get_attribute("title").startswith("activation ")
    weights = [link["weight"] for link in document_of(trace_dir)["links"]
               if link["target"] == node["node_id"]]  # fmt: skip
    shown_rows = chromium.find_elements(By.CSS_SELECTOR, "[data-kind=inputs] tr")
    positive, negative = sum(w > 0 for w in weights), sum(w < 0 for w in weights)
    assert len(shown_rows) == min(10, positive) + min(10, negative) > 0
    assert chromium.find_element(By.ID, "histogram-marker") is not None
    inputs = chromium.find_elements(By.CSS_SELECTOR, "#input-tokens .input-token")
    card = tiny_card(layer, index)
    assert [s.get_attribute("textContent") for s in inputs] == [
        json.dumps(t)[1:-1] for t in card["top_input_tokens"]
    ]
    assert inputs[0].get_attribute("title") == "direct score 0.900"
    assert severe_console_messages(chromium) == []


def test_the_slider_changes_the_number_of_visible_nodes(chromium, trace_dir, serve):
    served = serve(trace_dir)
    open_page(chromium, served.url)
    document = document_of(trace_dir)
    threshold = document["metadata"]["node_threshold"]
    expected = sum(
        1 for n in document["nodes"]
        if n["feature_type"] in ("embedding", "logit") or n["influence"] <= threshold + 1e-12
    )  # fmt: skip
    assert visible_count(chromium) == expected
    slider = chromium.find_element(By.ID, "threshold")
    slider.send_keys(Keys.HOME)  # the slider at 0: only tokens and logits remain
    always = sum(1 for n in document["nodes"] if n["feature_type"] in ("embedding", "logit"))
    assert visible_count(chromium) == always < expected
    assert chromium.find_element(By.ID, "threshold-value").text == "0.00"
    assert "t=0.00" in chromium.current_url


def test_pins_a_renamed_supernode_and_a_label_survive_save_and_reload(chromium, trace_dir, serve):
    served = serve(trace_dir)
    open_page(chromium, served.url)
    a, b = (n["node_id"] for n in features_by_influence(document_of(trace_dir))[:2])
    click_node(chromium, a, shift=True)
    click_node(chromium, b, shift=True)
    assert chromium.execute_script("return window.circuitscope.state.pinned") == [a, b]
    for key in (a, b):
        chromium.find_element(By.CSS_SELECTOR, f'#subgraph-svg g[data-key="{key}"]').click()
    name = chromium.find_element(By.ID, "group-name")
    name.send_keys("Texas")
    chromium.find_element(By.ID, "group").click()
    name.clear()
    name.send_keys("say a capital")
    chromium.find_element(By.ID, "rename").click()
    click_node(chromium, a)
    chromium.find_element(By.ID, "label-input").send_keys("capital cities")
    chromium.find_element(By.ID, "label-save").click()
    chromium.find_element(By.ID, "save").click()
    wait_for(chromium, "document.getElementById('status').textContent === 'saved'")
    on_disk = document_of(trace_dir)
    assert on_disk["qParams"]["supernodes"] == [["say a capital", a, b]]
    assert on_disk["qParams"]["pinnedIds"] == [a, b] and on_disk["qParams"]["clickedId"] == a
    assert json.loads((trace_dir / "labels.json").read_text()) == {a: "capital cities"}
    restarted = serve(trace_dir)  # a new server on the same folder
    open_page(chromium, restarted.url)
    state = chromium.execute_script(
        "const s = window.circuitscope.state; return [s.supernodes, s.labels, s.pinned]"
    )
    assert state == [[["say a capital", a, b]], {a: "capital cities"}, [a, b]]
    item = chromium.find_element(By.CSS_SELECTOR, '#subgraph-svg g[data-key="sn:say a capital"]')
    assert item.text.startswith("say a capital (2)")
    assert chromium.find_element(By.ID, "node-title").text == "capital cities"
    assert severe_console_messages(chromium) == []


def test_the_subgraph_scores_equal_the_python_functions(chromium, trace_dir, serve):
    served = serve(trace_dir)
    open_page(chromium, served.url)
    document = document_of(trace_dir)
    graph = import_neuronpedia(document)
    features = [n["node_id"] for n in features_by_influence(document)]
    for count in (0, 3, len(features)):
        chromium.execute_script(
            "const s = window.circuitscope.state; s.pinned = arguments[0]; s.supernodes = [];",
            features[:count],
        )
        chromium.find_element(By.ID, "ungroup").click()  # re-renders the pane and its scores
        box = chromium.find_element(By.ID, "scores")
        page = (float(box.get_attribute("data-replacement") or "nan"),
                float(box.get_attribute("data-completeness") or "nan"))  # fmt: skip
        python = selection_scores(graph, set(features[:count]))
        assert math.isclose(page[0], python.replacement, rel_tol=1e-9, abs_tol=1e-12)
        assert math.isclose(page[1], python.completeness, rel_tol=1e-9, abs_tol=1e-12)
    assert 0 < page[0] <= 1 and python.replacement == pytest.approx(graph.metadata.get(
        "scores", {}).get("replacement", python.replacement))  # fmt: skip


def circuit_tracer_style(document: dict) -> dict:
    """The document as circuit-tracer writes it: error ids `0_{layer}_{pos}`, no n_layers."""
    renamed = {}
    for node in document["nodes"]:
        if node["feature_type"] == "mlp reconstruction error":
            new = f"0_{node['layer']}_{node['ctx_idx']}"
            renamed[node["node_id"]] = new
            node["node_id"] = node["jsNodeId"] = new
    for link in document["links"]:
        link["source"] = renamed.get(link["source"], link["source"])
        link["target"] = renamed.get(link["target"], link["target"])
    document["metadata"].pop("info", None)
    return document


def test_a_neuronpedia_format_file_opens(chromium, trace_dir, serve, tmp_path):
    lone = tmp_path / "from-circuit-tracer.json"
    lone.write_text(json.dumps(circuit_tracer_style(document_of(trace_dir))))
    served = serve(lone)
    open_page(chromium, served.url + "#g=0&t=1.00")
    assert chromium.execute_script("return window.circuitscope.error") is None
    assert visible_count(chromium) == len(document_of(trace_dir)["nodes"])
    kinds = chromium.execute_script(
        "return window.circuitscope.state.model.nodes.filter(n => n.kind === 'error').length"
    )
    errors = [n for n in document_of(trace_dir)["nodes"] if n["feature_type"].startswith("mlp")]
    assert kinds == len(errors) > 0
    assert severe_console_messages(chromium) == []


def test_a_malformed_graph_shows_an_error_in_the_page(chromium, tmp_path, serve):
    broken = tmp_path / "broken.json"
    broken.write_text('{"metadata": ')
    served = serve(broken)
    open_page(chromium, served.url)
    box = chromium.find_element(By.ID, "error-box")
    assert box.is_displayed() and "not readable JSON" in box.text
    severe_console_messages(chromium)  # the 422 itself is logged by the browser


def test_the_exported_html_opens_from_file_with_no_request(chromium, trace_dir, tmp_path):
    path = export_html(open_source(trace_dir), tmp_path / "mail-me.html")
    open_page(chromium, path.as_uri() + "#t=1.00")
    n_nodes = len(document_of(trace_dir)["nodes"])
    assert chromium.execute_script("return window.circuitscope.error") is None
    assert visible_count(chromium) == n_nodes
    node = features_by_influence(document_of(trace_dir))[0]
    click_node(chromium, node["node_id"])
    wait_for(chromium, "document.querySelector('#top-examples .example')")
    requests = chromium.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert requests == []
    assert severe_console_messages(chromium) == []
