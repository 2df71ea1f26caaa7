"""Interventions from the page: the same top tokens as `circuitscope intervene`."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("selenium", reason="browser tests need selenium (./setup.sh --dev)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

from circuitscope.cli import main  # noqa: E402
from circuitscope.errors import CircuitscopeError  # noqa: E402
from circuitscope.viewer.interventions import InterventionBackend, parse_request  # noqa: E402
from circuitscope.viewer.page_actions import (  # noqa: E402
    click_node,
    severe_console_messages,
    wait_for,
    wait_ready,
)
from circuitscope.viewer.trace_folder import open_source, read_document  # noqa: E402

pytestmark = pytest.mark.browser
VALUE = 40.0


def a_feature_that_changes_the_top_token(trace_dir) -> tuple[dict, dict]:
    """(node, the backend's answer) for the first feature whose --set VALUE moves the top token."""
    source, backend = open_source(trace_dir), InterventionBackend()
    features = [n for n in read_document(source)["nodes"]
                if n["feature_type"] == "cross layer transcoder"]  # fmt: skip
    for node in sorted(features, key=lambda n: n["influence"]):
        request = {"interventions": [{"nodes": [node["node_id"]], "operation": "set",
                                      "value": VALUE}], "top_k": 5}  # fmt: skip
        answer = backend.run(source, request)
        tops = answer["top_tokens"]
        if tops["clean"][0]["id"] != tops["intervened"][0]["id"]:
            return node, answer
    raise AssertionError("no feature of the tiny graph moves the top token")


def test_an_intervention_from_the_page_changes_the_top_token_as_the_cli_does(
    chromium, trace_dir, serve, tiny_folders, tmp_path, capsys
):
    node, _ = a_feature_that_changes_the_top_token(trace_dir)
    served = serve(trace_dir)
    severe_console_messages(chromium)
    chromium.get(served.url)
    wait_ready(chromium)
    assert chromium.find_element(By.ID, "intervene").is_displayed()
    click_node(chromium, node["node_id"])
    Select(chromium.find_element(By.ID, "intervene-op")).select_by_value("set")
    value = chromium.find_element(By.ID, "intervene-value")
    value.clear()
    value.send_keys(str(VALUE))
    chromium.find_element(By.ID, "run-intervention").click()
    summary = wait_for(chromium, "document.getElementById('intervention-summary')", timeout=60)
    page_clean = int(summary.get_attribute("data-clean-top"))
    page_intervened = int(summary.get_attribute("data-intervened-top"))

    model, transcoder = tiny_folders
    layer, index, position = node["layer"], node["node_id"].split("_")[1], node["ctx_idx"]
    out = tmp_path / "cli.json"
    args = ["intervene", str(model), str(transcoder), "The capital of France is"]
    assert main([*args, "--set", f"{layer}:{position}:{index}={VALUE}", "-o", str(out)]) == 0
    capsys.readouterr()
    cli = json.loads(out.read_text())["top_tokens"]
    assert page_clean == cli["clean"][0]["id"]
    assert page_intervened == cli["intervened"][0]["id"] != page_clean
    assert severe_console_messages(chromium) == []


def test_a_supernode_is_its_members_and_bad_requests_are_refused(trace_dir):
    source = open_source(trace_dir)
    document = read_document(source)
    feature, error = (
        next(n for n in document["nodes"] if n["feature_type"] == kind)
        for kind in ("cross layer transcoder", "mlp reconstruction error")
    )
    items = parse_request(
        {"interventions": [{"nodes": [feature["node_id"], error["node_id"]],
                            "operation": "scale", "value": 0.5}]}, document)  # fmt: skip
    assert [(i.layer, i.position, i.feature, i.operation, i.value) for i in items] == [
        (int(feature["layer"]), feature["ctx_idx"], int(feature["node_id"].split("_")[1]),
         "scale", 0.5),
        (int(error["layer"]), error["ctx_idx"], None, "scale", 0.5),
    ]  # fmt: skip
    token = next(n for n in document["nodes"] if n["feature_type"] == "embedding")
    for request, message in [
        ({}, "non-empty list"),
        ({"interventions": [{"nodes": ["nope"], "operation": "set", "value": 1}]}, "no node"),
        ({"interventions": [{"nodes": [token["node_id"]], "operation": "set", "value": 1}]},
         "only feature and error"),
        ({"interventions": [{"nodes": [feature["node_id"]], "operation": "explode",
                             "value": 1}]}, "operation"),
    ]:  # fmt: skip
        with pytest.raises(CircuitscopeError, match=message):
            parse_request(request, document)


def test_a_supernode_is_intervened_on_from_the_page(chromium, trace_dir, serve):
    source = open_source(trace_dir)
    features = sorted(
        (
            n
            for n in read_document(source)["nodes"]
            if n["feature_type"] == "cross layer transcoder"
        ),
        key=lambda n: n["influence"],
    )
    a, b = features[0]["node_id"], features[1]["node_id"]
    expected = InterventionBackend().run(
        source, {"interventions": [{"nodes": [a, b], "operation": "scale", "value": -3.0}]}
    )["top_tokens"]["intervened"]
    served = serve(trace_dir)
    chromium.get(served.url + f"#pinned={a},{b}")
    wait_ready(chromium)
    chromium.execute_script("window.circuitscope.state.supernodes = [['pair', arguments[0], "
                            "arguments[1]]]", a, b)  # fmt: skip
    chromium.find_element(By.ID, "ungroup").click()  # re-renders the pane (nothing selected)
    chromium.find_element(By.CSS_SELECTOR, '#subgraph-svg g[data-key="sn:pair"]').click()
    assert "pair" in chromium.find_element(By.ID, "intervene-target").text
    Select(chromium.find_element(By.ID, "intervene-op")).select_by_value("scale")
    value = chromium.find_element(By.ID, "intervene-value")
    value.clear()
    value.send_keys("-3")
    chromium.find_element(By.ID, "run-intervention").click()
    summary = wait_for(chromium, "document.getElementById('intervention-summary')", timeout=60)
    assert int(summary.get_attribute("data-intervened-top")) == expected[0]["id"]
    rows = chromium.find_elements(By.CSS_SELECTOR, "#intervention-table tr")
    assert len(rows) == 1 + len(expected)
