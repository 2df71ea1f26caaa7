"""The exported JSON against Neuronpedia's published graph schema and upload checks.

NEURONPEDIA_SCHEMA transcribes the types and required fields of
`apps/webapp/app/api/graph/graph-schema.json` (hijohnnylin/neuronpedia at ebb8426,
August 2026; draft-07), leaving out descriptions, examples and the QK-tracing fields we
never write. Neuronpedia compiles that schema with Ajv (`strict: false`) on upload,
then refuses a `scan` or `slug` outside [a-zA-Z0-9_.-] (save-to-db/route.ts).
"""

import json
import re
from typing import Any

import pytest

from circuitscope.graph.neuronpedia import export_neuronpedia
from circuitscope.graph.neuronpedia_metadata import neuronpedia_scan, transcoder_name
from circuitscope.graph.prune import prune_graph
from circuitscope.testing.tiny_graphs import tiny_graph

STRING, NUMBER, INTEGER = {"type": "string"}, {"type": "number"}, {"type": "integer"}
NEURONPEDIA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["metadata", "qParams", "nodes", "links"],
    "properties": {
        "metadata": {
            "type": "object",
            "required": ["slug", "scan", "prompt_tokens", "prompt"],
            "properties": {
                "slug": STRING,
                "scan": STRING,
                "prompt_tokens": {"type": "array", "items": STRING},
                "prompt": STRING,
                "feature_details": {
                    "type": "object",
                    "properties": {
                        "feature_json_base_url": STRING,
                        "neuronpedia_source_set": STRING,
                        "neuronpedia_lorsa_source_set": STRING,
                    },
                },
                "node_threshold": NUMBER,
                "info": {
                    "type": "object",
                    "properties": {
                        "description": STRING,
                        "creator_name": STRING,
                        "creator_url": STRING,
                        "source_urls": {"type": "array"},
                        "generator": {
                            "type": "object",
                            "properties": {
                                "name": STRING,
                                "version": STRING,
                                "url": STRING,
                                "email": STRING,
                            },
                        },
                        "create_time_ms": NUMBER,
                    },
                },
                "generation_settings": {
                    "type": "object",
                    "properties": {
                        "max_n_logits": INTEGER,
                        "desired_logit_prob": NUMBER,
                        "batch_size": INTEGER,
                        "max_feature_nodes": INTEGER,
                    },
                },
                "pruning_settings": {
                    "type": "object",
                    "properties": {"node_threshold": NUMBER, "edge_threshold": NUMBER},
                },
            },
        },
        "qParams": {
            "type": "object",
            "required": [],
            "properties": {
                "pinnedIds": {"type": "array", "items": STRING},
                "supernodes": {"type": "array"},
                "linkType": STRING,
                "clickedId": STRING,
                "sg_pos": STRING,
            },
        },
        "nodes": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "node_id",
                    "feature",
                    "layer",
                    "ctx_idx",
                    "feature_type",
                    "jsNodeId",
                    "clerp",
                ],  # fmt: skip
                "properties": {
                    "node_id": STRING,
                    "feature": {"type": ["integer", "null"]},
                    "layer": {"type": ["string", "integer"]},
                    "ctx_idx": INTEGER,
                    "feature_type": STRING,
                    "jsNodeId": STRING,
                    "clerp": STRING,
                    "influence": {"type": ["number", "null"]},
                    "activation": {"type": ["number", "null"]},
                },
            },
        },
        "links": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["source", "target", "weight"],
                "properties": {"source": STRING, "target": STRING, "weight": NUMBER},
            },
        },
    },
}
UPLOAD_NAME = re.compile(r"^[a-zA-Z0-9_.-]+$")


def _has_type(value: Any, name: str) -> bool:
    """JSON Schema's type names on values parsed by `json.loads` (a bool is no number)."""
    if name in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return name == "number" or float(value).is_integer()
    kinds = {"string": str, "boolean": bool, "null": type(None), "array": list, "object": dict}
    return isinstance(value, kinds[name])


def schema_errors(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Where `value` breaks `schema` (type, required, properties, items), as Ajv reports."""
    names = schema.get("type", [])
    names = [names] if isinstance(names, str) else names
    if names and not any(_has_type(value, name) for name in names):
        return [f"{path or 'root'}: must be {' or '.join(names)}"]
    errors = []
    if isinstance(value, dict):
        errors += [f"{path or 'root'}: must have required property '{key}'"
                   for key in schema.get("required", []) if key not in value]  # fmt: skip
        for key, inner in schema.get("properties", {}).items():
            if key in value:
                errors += schema_errors(value[key], inner, f"{path}/{key}")
    if isinstance(value, list) and "items" in schema:
        for number, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{path}/{number}")
    return errors


@pytest.fixture(scope="module")
def document():
    pruned = prune_graph(tiny_graph("llama"), 0.8, 0.98)
    pruned.metadata.update(
        transcoder="org/tiny-clt",
        config={"max_n_logits": 4, "desired_logit_prob": 0.95, "batch_size": 16,
                "max_feature_nodes": None},
    )  # fmt: skip
    scan = neuronpedia_scan("org/Tiny-Llama")
    return json.loads(json.dumps(export_neuronpedia(pruned, "capital", scan)))


def test_export_validates_against_neuronpedias_schema(document):
    assert schema_errors(document, NEURONPEDIA_SCHEMA) == []
    assert UPLOAD_NAME.match(document["metadata"]["scan"])
    assert UPLOAD_NAME.match(document["metadata"]["slug"])


def test_metadata_fields(document):
    metadata = document["metadata"]
    assert metadata["scan"] == "tiny-llama"
    assert metadata["info"]["generator"]["name"] == "circuitscope"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", metadata["info"]["generator"]["version"])
    assert metadata["info"]["transcoder_set"] == "org/tiny-clt"
    assert metadata["pruning_settings"] == {"node_threshold": 0.8, "edge_threshold": 0.98}
    # max_feature_nodes=None is left out: null is not an integer.
    assert metadata["generation_settings"] == {
        "max_n_logits": 4, "desired_logit_prob": 0.95, "batch_size": 16,
    }  # fmt: skip


def test_the_validator_catches_what_neuronpedia_refuses(document):
    broken = json.loads(json.dumps(document))
    broken["metadata"]["info"]["generator"] = "circuitscope"  # what the old export wrote
    broken["nodes"][0]["ctx_idx"] = "3"
    del broken["nodes"][1]["jsNodeId"]
    broken["links"][0]["weight"] = None
    del broken["metadata"]["prompt"]
    assert sorted(schema_errors(broken, NEURONPEDIA_SCHEMA)) == [
        "/links/0/weight: must be number",
        "/metadata/info/generator: must be object",
        "/metadata: must have required property 'prompt'",
        "/nodes/0/ctx_idx: must be integer",
        "/nodes/1: must have required property 'jsNodeId'",
    ]


def test_logit_nodes_sit_one_layer_above_the_model_as_their_ids_say(document):
    n_layers = document["metadata"]["info"]["n_layers"]
    logits = [node for node in document["nodes"] if node["feature_type"] == "logit"]
    assert logits
    for node in logits:
        assert node["layer"] == str(n_layers + 1)
        assert node["node_id"].split("_")[0] == node["layer"]
        assert node["jsNodeId"] == f"L_{node['feature']}-{node['ctx_idx']}"
    others = [int(n["layer"]) for n in document["nodes"] if n["feature_type"] != "logit"
              and n["layer"] != "E"]  # fmt: skip
    assert max(others) < n_layers + 1


@pytest.mark.parametrize(
    ("model", "scan"),
    [
        ("HuggingFaceTB/SmolLM2-135M", "smollm2-135m"),
        ("/models/SmolLM2-135M/", "smollm2-135m"),
        ("/models/SmolLM2-135M-Instruct.Q8_0.gguf", "smollm2-135m-instruct.q8_0"),
        ("smollm2-135m", "smollm2-135m"),
        ("google/gemma-2-2b", "gemma-2-2b"),
        ("C:\\models\\Qwen3 4B", "qwen3-4b"),
        ("///", "model"),
    ],
)
def test_scan_is_a_model_id_neuronpedia_accepts(model, scan):
    assert neuronpedia_scan(model) == scan
    assert UPLOAD_NAME.match(scan)


def test_settings_given_by_the_caller_and_none_at_all():
    pruned = prune_graph(tiny_graph("llama"), 0.8, 0.98)
    config = {"max_n_logits": 10, "batch_size": 32, "max_feature_nodes": 512, "prompt": "x",
              "desired_logit_prob": 0.95, "row_buffer_mb": 2048.0}  # fmt: skip
    metadata = export_neuronpedia(pruned, "s", "m", settings=config)["metadata"]
    assert metadata["generation_settings"] == {
        "max_n_logits": 10, "desired_logit_prob": 0.95, "batch_size": 32, "max_feature_nodes": 512,
    }  # fmt: skip
    assert "generation_settings" not in export_neuronpedia(pruned, "s", "m")["metadata"]
    assert "transcoder_set" not in export_neuronpedia(pruned, "s", "m")["metadata"]["info"]


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        ("mntss/clt-gemma-2-2b-426k", "mntss/clt-gemma-2-2b-426k"),
        ("/home/me/runs/my-clt", "my-clt"),
        ("/home/me/runs/my-clt/", "my-clt"),
        ("./my-clt", "my-clt"),
        ("C:\\runs\\my-clt", "my-clt"),
        ("out/bench/clt", "clt"),
    ],
)
def test_transcoder_name_keeps_hub_ids_and_drops_local_folders(spec, name):
    assert transcoder_name(spec) == name
