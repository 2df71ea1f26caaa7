"""The viewer's server without a browser: what it serves, refuses, saves, and survives."""

from __future__ import annotations

import http.client
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from viewer_data import feature_keys

from circuitscope.errors import CircuitscopeError
from circuitscope.viewer import trace_folder
from circuitscope.viewer.server import MAX_BODY_BYTES
from circuitscope.viewer.trace_folder import open_source


def request(
    port: int, method: str, path: str, body: bytes | None = None, headers=None
) -> tuple[int, Any]:
    """(status, parsed JSON or raw bytes) of one raw request (the path is sent unchanged)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    if response.getheader("Content-Type", "").startswith("application/json"):
        return response.status, json.loads(data)
    return response.status, data


def test_the_page_the_graph_and_a_card_are_served(trace_dir, serve):
    served = serve(trace_dir)
    status, page = request(served.port, "GET", "/")
    assert status == 200 and b'<script src="static/app.js">' in page
    status, script = request(served.port, "GET", "/static/app.js")
    assert status == 200 and len(script) > 10_000
    status, graphs = request(served.port, "GET", "/api/graphs")
    assert graphs == [{"id": 0, "name": "capital", "cards": True, "interventions": True}]
    status, document = request(served.port, "GET", "/api/graph/0")
    on_disk = json.loads((trace_dir / "capital.json").read_text())
    assert status == 200 and len(document["nodes"]) == len(on_disk["nodes"]) > 10
    assert document["labels"] == {}
    assert len(document["featureLabels"]) == len(feature_keys(on_disk)) > 5
    feature = next(n for n in on_disk["nodes"] if n["feature_type"] == "cross layer transcoder")
    layer, index = feature["layer"], feature["node_id"].split("_")[1]
    status, card = request(served.port, "GET", f"/api/feature/0/{layer}/{index}")
    assert status == 200 and card["index"] == int(index) and card["layer"] == int(layer)
    status, answer = request(served.port, "GET", "/api/feature/0/0/99999")
    assert status == 422 and "no feature 99999" in answer["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/static/../server.py",
        "/static/%2e%2e/server.py",
        "/static/..%2f..%2f..%2fetc%2fpasswd",
        "/static/%252e%252e/server.py",
        "/api/file/0/../../etc/passwd",
        "/api/file/0/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/api/file/0//etc/passwd",
        "/api/file/0/outside-link",
        "/api/graph/7",
        "/api/graph/-1",
        "/etc/passwd",
    ],
)
def test_paths_outside_the_served_folders_are_refused(trace_dir, serve, tmp_path, path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the page")
    os.symlink(secret, trace_dir / "outside-link")
    served = serve(trace_dir)
    status, answer = request(served.port, "GET", path)
    assert status == 404
    assert isinstance(answer, dict) and "error" in answer


def test_files_inside_a_trace_folder_are_served(trace_dir, serve):
    served = serve(trace_dir)
    status, data = request(served.port, "GET", "/api/file/0/pruned.png")
    assert status == 200 and data == (trace_dir / "pruned.png").read_bytes()


def test_a_malformed_graph_file_is_an_error_answer_and_the_server_goes_on(
    trace_dir, serve, tmp_path
):
    broken = tmp_path / "broken.json"
    broken.write_text('{"nodes": [1, 2')
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"nodes": [], "links": []}))
    served = serve(broken, wrong, trace_dir)
    status, answer = request(served.port, "GET", "/api/graph/0")
    assert status == 422 and "not readable JSON" in answer["error"]
    status, answer = request(served.port, "GET", "/api/graph/1")
    assert status == 422 and "missing 'metadata'" in answer["error"]
    status, document = request(served.port, "GET", "/api/graph/2")
    assert status == 200 and document["metadata"]["slug"] == "capital"


def _post(port: int, path: str, value) -> tuple[int, Any]:
    body = json.dumps(value).encode()
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    return request(port, "POST", path, body, headers)


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (b"{not json", None, 400, "not JSON"),
        (b"[1, 2]", None, 400, "JSON object"),
        (json.dumps({"qParams": {"pinnedIds": "abc"}}).encode(), None, 422, "list of strings"),
        (json.dumps({"qParams": {"supernodes": [["only a label"]]}}).encode(), None, 422, "member"),
        (json.dumps({"qParams": {"linkType": "sideways"}}).encode(), None, 422, "linkType"),
        (json.dumps({"qParams": {"pruningThreshold": 7}}).encode(), None, 422, "pruningThreshold"),
        (json.dumps({"labels": {"a": 3}}).encode(), None, 422, "must be a string"),
        (json.dumps({"labels": {"a": "x" * 600}}).encode(), None, 422, "longer than"),
        (b"{}", {"Content-Length": str(MAX_BODY_BYTES + 1)}, 413, "body over"),
    ],
)
def test_malformed_or_oversized_posts_are_refused(trace_dir, serve, body, headers, status, message):
    before = (trace_dir / "capital.json").read_bytes()
    served = serve(trace_dir)
    sent = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    got, answer = request(served.port, "POST", "/api/state/0", body, {**sent, **(headers or {})})
    assert got == status and message in answer["error"]
    assert (trace_dir / "capital.json").read_bytes() == before
    assert not (trace_dir / "labels.json").exists()


def test_a_post_without_length_is_refused(trace_dir, serve):
    served = serve(trace_dir)
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    connection.putrequest("POST", "/api/state/0")
    connection.putheader("Content-Type", "application/json")
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 411 and "Content-Length" in json.loads(response.read())["error"]
    connection.close()


def test_saved_state_is_in_the_folder_and_served_back(trace_dir, serve):
    served = serve(trace_dir)
    document = json.loads((trace_dir / "capital.json").read_text())
    a, b = (n["node_id"] for n in document["nodes"][:2])
    state = {
        "qParams": {"pinnedIds": [a, b], "supernodes": [["Texas", a, b]], "linkType": "inputs",
                    "sg_pos": json.dumps({"sn:Texas": [10, 20]}), "pruningThreshold": 0.5},
        "labels": {a: "capital cities"},
    }  # fmt: skip
    assert _post(served.port, "/api/state/0", state) == (200, {"saved": True})
    on_disk = json.loads((trace_dir / "capital.json").read_text())
    assert on_disk["qParams"]["supernodes"] == [["Texas", a, b]]
    assert on_disk["qParams"]["pruningThreshold"] == 0.5 and on_disk["qParams"]["clickedId"] == ""
    assert json.loads((trace_dir / "labels.json").read_text()) == {a: "capital cities"}
    assert len(on_disk["nodes"]) == len(document["nodes"])  # the graph itself is untouched
    _, again = request(serve(trace_dir).port, "GET", "/api/graph/0")  # a "restarted" server
    assert again["labels"] == {a: "capital cities"} and again["qParams"]["pinnedIds"] == [a, b]
    assert _post(served.port, "/api/state/0", {"labels": {a: ""}}) == (200, {"saved": True})
    assert json.loads((trace_dir / "labels.json").read_text()) == {}


def test_the_server_answers_concurrent_requests(trace_dir, serve):
    served = serve(trace_dir)
    paths = ["/api/graph/0", "/api/graphs", "/static/app.js", "/api/graph/9"] * 10

    def get(path: str) -> int:
        return request(served.port, "GET", path)[0]

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(get, paths))
    assert statuses == [200, 200, 200, 404] * 10


def test_a_neuronpedia_json_file_is_a_source(trace_dir, tmp_path):
    lone = tmp_path / "np-graph.json"
    lone.write_bytes((trace_dir / "capital.json").read_bytes())
    source = open_source(lone)
    assert source.json_path == lone and source.labels_path == tmp_path / "np-graph.labels.json"
    assert trace_folder.read_document(source)["metadata"]["slug"] == "capital"
    with pytest.raises(CircuitscopeError, match="no such trace folder"):
        open_source(tmp_path / "absent")


def test_a_folder_without_graph_json_says_so(tmp_path: Path):
    source = open_source(tmp_path)
    with pytest.raises(CircuitscopeError, match="holds no attribution-graph JSON"):
        trace_folder.read_document(source)


def test_requests_from_other_sites_are_refused(trace_dir, serve):
    served = serve(trace_dir)
    status, answer = request(served.port, "GET", "/api/graph/0", headers={"Host": "evil.example"})
    assert status == 403 and "evil.example" in answer["error"]
    body = json.dumps({"labels": {"x": "y"}}).encode()
    form = {"Content-Type": "text/plain", "Content-Length": str(len(body))}
    status, answer = request(served.port, "POST", "/api/state/0", body, form)
    assert status == 415 and "application/json" in answer["error"]
    assert not (trace_dir / "labels.json").exists()
    status, _ = request(served.port, "GET", "/api/graphs", headers={"Host": "localhost:1"})
    assert status == 200


def test_interventions_use_the_resolved_model_and_transcoder_paths(trace_dir, tmp_path):
    from circuitscope.viewer.interventions import InterventionBackend

    config = json.loads((trace_dir / "config.json").read_text())
    config["transcoder"] = "relative/path/that/only/trace/saw"
    (trace_dir / "config.json").write_text(json.dumps(config))
    settings = InterventionBackend().settings(open_source(trace_dir))
    resolved = json.loads((trace_dir / "graph.json").read_text())["metadata"]["transcoder"]
    assert settings["transcoder"] == resolved and Path(resolved).is_absolute()
    lone = tmp_path / "lone.json"
    lone.write_bytes((trace_dir / "capital.json").read_bytes())
    assert not InterventionBackend().available(open_source(lone))
