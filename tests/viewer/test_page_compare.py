"""The page's compare view in headless Chromium: two traced tiny folders served, the
panel lists exactly the shared and only features, and clicking a row highlights the
feature's nodes in the graph."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("selenium", reason="browser tests need selenium (./setup.sh --dev)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402
from viewer_data import feature_keys  # noqa: E402

from circuitscope.viewer.page_actions import (  # noqa: E402
    node_screen_position,
    severe_console_messages,
    wait_for,
    wait_ready,
)

pytestmark = pytest.mark.browser

TEAL = (13, 148, 136)  # draw.js COLORS.compared


def listed(driver, table: str) -> list[str]:
    rows = driver.find_elements(By.CSS_SELECTOR, f"#{table} tr[data-feature]")
    return [row.get_attribute("data-feature") for row in rows]


def as_keys(features: set[tuple[int, int]]) -> set[str]:
    return {f"{layer}/{index}" for layer, index in features}


def teal_pixels_near(driver, node_id: str, reach: int = 14) -> int:
    """Pixels of the compare highlight's colour drawn around a node on the base canvas."""
    x, y = node_screen_position(driver, node_id)
    return driver.execute_script(
        "const c = document.getElementById('base-canvas'), r = window.devicePixelRatio || 1;"
        "const [x, y, reach, teal] = arguments;"
        "const d = c.getContext('2d').getImageData("
        "  Math.round((x - reach) * r), Math.round((y - reach) * r),"
        "  Math.round(2 * reach * r), Math.round(2 * reach * r)).data;"
        "let n = 0;"
        "for (let i = 0; i < d.length; i += 4) {"
        "  if (Math.abs(d[i] - teal[0]) + Math.abs(d[i + 1] - teal[1])"
        "      + Math.abs(d[i + 2] - teal[2]) < 40 && d[i + 3] > 200) n++;"
        "}"
        "return n;",
        x,
        y,
        reach,
        list(TEAL),
    )


def test_the_compare_view_lists_the_shared_features_and_highlights_a_clicked_one(
    chromium, compare_dirs, serve, tmp_path
):
    english, french = compare_dirs
    document = json.loads((english / "capital.json").read_text())
    here = feature_keys(document)
    there = feature_keys(json.loads((french / "capitale.json").read_text()))
    served = serve(english, french)
    severe_console_messages(chromium)
    chromium.get(served.url + "#g=0&t=1.00")
    wait_ready(chromium)
    assert chromium.find_element(By.ID, "compare").is_displayed() is False
    picker = Select(chromium.find_element(By.ID, "compare-picker"))
    assert [o.text for o in picker.options] == ["—", "capitale"]
    picker.select_by_value("1")
    wait_for(chromium, "window.circuitscope.state.compareStatus === 'ready'")
    assert chromium.find_element(By.ID, "compare").is_displayed()

    shared = listed(chromium, "compare-shared")
    assert shared and len(shared) == len(set(shared)) and set(shared) == as_keys(here & there)
    assert set(listed(chromium, "compare-only-here")) == as_keys(here - there)
    assert set(listed(chromium, "compare-only-there")) == as_keys(there - here)
    headings = [h.text for h in chromium.find_elements(By.CSS_SELECTOR, "#compare h4")]
    assert f"SHARED FEATURES ({len(shared)})" in headings  # h4 is upper-cased by the style
    summary = chromium.find_element(By.ID, "compare-summary").text
    assert f"features: {len(shared)} shared, {len(here - there)} only here" in summary
    assert "“The capital of France is”" in summary
    assert "“La capitale de la France est”" in summary
    groups = chromium.execute_script("return window.circuitscope.state.comparison.supernodes")
    counts = [len(groups[side]) for side in ("matched", "only_a", "only_b")]
    assert sum(counts) > 0  # both folders have suggestions: they were compared
    text = chromium.find_element(By.ID, "compare-supernodes").text
    assert "{} matched (Jaccard ≥ 0.5), {} only here, {} only in “capitale”".format(*counts) in text

    # Clicking a shared feature clicks its most influential node and outlines all of them.
    key = shared[0]
    layer, index = (int(part) for part in key.split("/"))
    nodes = [
        n
        for n in document["nodes"]
        if n["feature_type"] == "cross layer transcoder"
        and int(n["layer"]) == layer
        and int(n["node_id"].split("_")[1]) == index
    ]
    best = min(nodes, key=lambda n: n["influence"])["node_id"]
    assert teal_pixels_near(chromium, best) == 0
    chromium.find_element(By.CSS_SELECTOR, f'#compare-shared tr[data-feature="{key}"]').click()
    state = chromium.execute_script(
        "const s = window.circuitscope.state;"
        "return [s.clicked.id, [...s.compareHighlight].sort(), [...s.view.highlighted].sort()]"
    )
    ids = sorted(n["node_id"] for n in nodes)
    assert state == [best, ids, ids]
    assert teal_pixels_near(chromium, best) > 20  # drawn outlined in the graph
    row = chromium.find_element(By.CSS_SELECTOR, f'#compare-shared tr[data-feature="{key}"]')
    assert "current" in (row.get_attribute("class") or "")
    assert chromium.find_element(By.ID, "node-title").text  # the side panel shows it
    chromium.save_screenshot(str(tmp_path / "compare-view.png"))
    assert (tmp_path / "compare-view.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The URL bookmarks the comparison; choosing "—" closes it.
    assert "cmp=1" in chromium.current_url
    chromium.get("about:blank")  # else only the hash would change: no new page
    chromium.get(served.url + f"#g=0&t=1.00&cmp=1&clicked={best}")
    wait_ready(chromium)
    wait_for(chromium, "window.circuitscope.state.compareStatus === 'ready'")
    assert set(listed(chromium, "compare-shared")) == as_keys(here & there)
    Select(chromium.find_element(By.ID, "compare-picker")).select_by_value("")
    assert chromium.find_element(By.ID, "compare").is_displayed() is False
    assert "cmp=" not in chromium.current_url
    assert severe_console_messages(chromium) == []


def test_a_comparison_the_server_refuses_shows_its_reason(chromium, compare_dirs, serve, tmp_path):
    english, _ = compare_dirs
    lone = tmp_path / "lone.json"
    lone.write_bytes((english / "capital.json").read_bytes())
    served = serve(english, lone)
    chromium.get(served.url + "#g=0&cmp=1")
    wait_ready(chromium)
    wait_for(chromium, "window.circuitscope.state.compareStatus === 'error'")
    error = chromium.find_element(By.ID, "compare-error").text
    assert "cannot compare" in error and "not a trace folder" in error
    assert chromium.execute_script("return window.circuitscope.error") is None  # graph is fine


def test_matched_supernodes_are_listed_and_clicking_one_outlines_its_nodes(
    chromium, compare_dirs, serve
):
    from circuitscope.graph.supernodes_files import FORMAT, write_suggestions

    english, french = compare_dirs
    documents = [json.loads((english / "capital.json").read_text())]
    documents.append(json.loads((french / "capitale.json").read_text()))
    shared = sorted(feature_keys(documents[0]) & feature_keys(documents[1]))[:2]
    for folder, document, label in zip(
        (english, french), documents, ("cities", "villes"), strict=True
    ):
        members = [
            n["node_id"]
            for n in document["nodes"]
            if n["feature_type"] == "cross layer transcoder"
            and (int(n["layer"]), int(n["node_id"].split("_")[1])) in shared
        ]
        groups = [{"label": label, "members": members, "evidence": {}, "check": None}]
        write_suggestions({"format": FORMAT, "version": 1, "graph": "pruned", "method": "ours",
                           "threshold": 0.25, "groups": groups, "coverage": {}, "check": None},
                          folder)  # fmt: skip
    served = serve(english, french)
    chromium.get(served.url + "#g=0&cmp=1")
    wait_ready(chromium)
    wait_for(chromium, "window.circuitscope.state.compareStatus === 'ready'")
    rows = chromium.find_elements(By.CSS_SELECTOR, "#compare-matched tr")
    assert [r.text.split() for r in rows] == [
        ["Jaccard", "shared", "here", "there"],
        ["1.000", "2", "cities", "villes"],
    ]
    rows[1].click()
    outlined = chromium.execute_script(
        "return [...window.circuitscope.state.compareHighlight].sort()"
    )
    assert outlined == sorted(
        n["node_id"]
        for n in documents[0]["nodes"]
        if n["feature_type"] == "cross layer transcoder"
        and (int(n["layer"]), int(n["node_id"].split("_")[1])) in shared
    )
