"""Other people's formats: round trips, and agreement with their own formulas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file, save_file
from transcoder_fixtures import (
    D_MODEL,
    assert_same_outputs,
    assert_same_weights,
    make_transcoder,
    random_inputs,
)

from circuitscope.errors import CircuitscopeError
from circuitscope.transcoders.formats import detect_format, write_format
from circuitscope.transcoders.transcoder import Transcoder


def _round_trip(original: Transcoder, tmp_path: Path, fmt: str) -> Transcoder:
    write_format(original, tmp_path / fmt, fmt)
    assert detect_format(tmp_path / fmt) == fmt
    foreign = Transcoder.load(tmp_path / fmt)
    foreign.save(tmp_path / "back")
    back = Transcoder.load(tmp_path / "back")
    assert back.config == original.config
    assert_same_weights(original, back)
    assert_same_outputs(original, back, random_inputs())
    return foreign


def test_circuit_tracer_set_round_trip(tmp_path: Path) -> None:
    original = make_transcoder("plt", skip_connection=True)
    _round_trip(original, tmp_path, "circuit-tracer")
    config = yaml.safe_load((tmp_path / "circuit-tracer" / "config.yaml").read_text())
    assert config["model_kind"] == "transcoder_set"
    assert config["feature_input_hook"] == "mlp.hook_in"
    assert config["feature_output_hook"] == "hook_mlp_out"
    assert config["model_name"] == "tiny/llama"


def test_circuit_tracer_set_matches_its_formula(tmp_path: Path) -> None:
    original = make_transcoder("plt", skip_connection=True)
    write_format(original, tmp_path, "circuit-tracer")
    raw = load_file(tmp_path / "layer_1.safetensors")
    assert raw["W_enc"].shape == (16, D_MODEL) and raw["W_dec"].shape == (16, D_MODEL)
    x = random_inputs()[1]
    # circuit-tracer: F.linear encoder, JumpReLU on the threshold, x @ W_skip.T
    h = F.linear(x, raw["W_enc"], raw["b_enc"])
    acts = h * (h > raw["activation_function.threshold"])
    y = acts @ raw["W_dec"] + raw["b_dec"] + x @ raw["W_skip"].T
    ours_acts, ours = original({0: random_inputs()[0], 1: x, 2: random_inputs()[2]})
    assert torch.allclose(ours_acts[1], acts, atol=1e-6)
    assert torch.allclose(ours[1], y, atol=1e-5)


def test_circuit_tracer_clt_round_trip(tmp_path: Path) -> None:
    original = make_transcoder("clt")
    foreign = _round_trip(original, tmp_path, "circuit-tracer")
    assert foreign.config.kind == "clt"
    folder = tmp_path / "circuit-tracer"
    names = sorted(p.name for p in folder.glob("*.safetensors"))
    assert names == [f"W_{kind}_{i}.safetensors" for kind in ("dec", "enc") for i in range(3)]
    enc = load_file(folder / "W_enc_1.safetensors")
    assert sorted(enc) == ["W_enc_1", "b_dec_1", "b_enc_1", "threshold_1"]
    assert enc["W_enc_1"].shape == (16, D_MODEL)
    assert load_file(folder / "W_dec_1.safetensors")["W_dec_1"].shape == (16, 2, D_MODEL)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert config["model_kind"] == "cross_layer_transcoder"


def test_circuit_tracer_without_side_file_infers_config(tmp_path: Path) -> None:
    original = make_transcoder("clt", activation="relu", activation_params={})
    write_format(original, tmp_path, "circuit-tracer")
    (tmp_path / "circuitscope.json").unlink()
    config_yaml = yaml.safe_load((tmp_path / "config.yaml").read_text())
    config_yaml["feature_input_hook"] = "hook_resid_mid"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config_yaml))
    foreign = Transcoder.load(tmp_path)
    assert foreign.config.activation == "relu" and foreign.config.kind == "clt"
    assert foreign.config.input_site == "layers.{layer}.resid_mid"
    assert foreign.config.source_format == "circuit-tracer"
    assert_same_weights(original, foreign)


def test_circuit_tracer_topk_set_from_their_files(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(2)
    for layer in range(2):
        save_file(
            {
                "W_enc": torch.randn(12, D_MODEL, generator=generator),
                "W_dec": torch.randn(12, D_MODEL, generator=generator),
                "b_enc": torch.randn(12, generator=generator),
                "b_dec": torch.randn(D_MODEL, generator=generator),
                "k": torch.tensor(3),
            },
            str(tmp_path / f"layer_{layer}.safetensors"),
        )
    (tmp_path / "config.yaml").write_text(
        "model_name: m\nmodel_kind: transcoder_set\nfeature_input_hook: ln2.hook_normalized\n"
        "feature_output_hook: mlp.hook_out\nactivation: topk\n"
    )
    transcoder = Transcoder.load(tmp_path)
    assert transcoder.config.activation_params == {"k": 3, "relu": False}
    x = torch.randn(5, D_MODEL, generator=generator)
    acts = transcoder.encode(0, x)
    assert bool(((acts != 0).sum(-1) == 3).all())


def test_sparsify_round_trip(tmp_path: Path) -> None:
    original = make_transcoder(
        "plt", activation="topk", activation_params={"k": 4, "relu": True}, skip_connection=True
    )
    _round_trip(original, tmp_path, "sparsify")
    folder = tmp_path / "sparsify" / "layers.1.mlp"
    raw = load_file(folder / "sae.safetensors")
    assert sorted(raw) == ["W_dec", "W_skip", "b_dec", "encoder.bias", "encoder.weight"]
    assert raw["encoder.weight"].shape == (16, D_MODEL)
    cfg = (folder / "cfg.json").read_text()
    assert '"transcode": true' in cfg and '"k": 4' in cfg and '"d_in": 8' in cfg


def test_sparsify_matches_its_formula(tmp_path: Path) -> None:
    original = make_transcoder("plt", activation="topk", activation_params={"k": 4})
    write_format(original, tmp_path, "sparsify")
    raw = load_file(tmp_path / "layers.0.mlp" / "sae.safetensors")
    x = random_inputs()[0]
    pre = F.relu(F.linear(x, raw["encoder.weight"], raw["encoder.bias"]))
    values, indices = pre.topk(4, dim=-1)
    y = (values[..., None] * raw["W_dec"][indices]).sum(-2) + raw["b_dec"]
    _, ours = original(random_inputs())
    assert torch.allclose(ours[0], y, atol=1e-5)


def _write_gemmascope(
    folder: Path, n_layers: int = 3, d_sae: int = 16
) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    params = []
    for layer in range(n_layers):
        p = {
            "W_enc": rng.standard_normal((D_MODEL, d_sae)).astype(np.float32) / 3,
            "W_dec": rng.standard_normal((d_sae, D_MODEL)).astype(np.float32) / 4,
            "b_enc": rng.standard_normal(d_sae).astype(np.float32) * 0.1,
            "b_dec": rng.standard_normal(D_MODEL).astype(np.float32) * 0.1,
            "threshold": np.abs(rng.standard_normal(d_sae)).astype(np.float32) * 0.2,
        }
        target = folder / f"layer_{layer}" / "width_16k" / "average_l0_42" / "params.npz"
        target.parent.mkdir(parents=True)
        np.savez(target, **p)  # type: ignore[arg-type]
        params.append(p)
    return params


def test_gemmascope_npz_to_native(tmp_path: Path) -> None:
    params = _write_gemmascope(tmp_path / "gs")
    assert detect_format(tmp_path / "gs") == "gemmascope"
    foreign = Transcoder.load(tmp_path / "gs")
    assert foreign.config.kind == "plt" and foreign.config.activation == "jumprelu"
    foreign.save(tmp_path / "native")
    native = Transcoder.load(tmp_path / "native")
    inputs = random_inputs()
    acts, rec = native(inputs)
    for layer, p in enumerate(params):
        weights = native.read_layer_tensors(layer)
        for ours, theirs in (("W_enc", "W_enc"), ("W_dec", "W_dec"), ("threshold", "threshold")):
            assert torch.equal(weights[ours], torch.from_numpy(p[theirs]))
        # GemmaScope's JumpReLU: relu(h) * (h > θ), decoded with W_dec and b_dec
        t = {key: torch.from_numpy(value) for key, value in p.items()}
        h = inputs[layer] @ t["W_enc"] + t["b_enc"]
        expected_acts = torch.relu(h) * (h > t["threshold"])
        assert torch.equal(acts[layer], expected_acts)
        assert torch.equal(rec[layer], expected_acts @ t["W_dec"] + t["b_dec"])
    assert_same_outputs(foreign, native, inputs)


def test_circuit_tracer_config_listing_gemmascope_files(tmp_path: Path) -> None:
    params = _write_gemmascope(tmp_path / "gs")
    entries = [
        {"id": f"l{i}", "layer": i, "filepath": f"gs/layer_{i}/width_16k/average_l0_42/params.npz"}
        for i in range(3)
    ]
    config = {
        "model_name": "google/gemma-2-2b",
        "model_kind": "transcoder_set",
        "feature_input_hook": "ln2.hook_normalized",
        "feature_output_hook": "hook_mlp_out",
        "transcoders": entries,
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    listed = Transcoder.load(tmp_path)
    assert listed.config.model_id == "google/gemma-2-2b"
    assert listed.config.input_site == "layers.{layer}.mlp_in"
    assert listed.config.n_features == [16, 16, 16] and len(params) == 3
    assert_same_outputs(listed, Transcoder.load(tmp_path / "gs"), random_inputs())


def test_gemmascope_round_trip_and_single_file(tmp_path: Path) -> None:
    original = make_transcoder("plt")
    _round_trip(original, tmp_path, "gemmascope")
    single = Transcoder.load(tmp_path / "gemmascope" / "layer_0" / "params.npz")
    assert single.config.n_layers == 1


@pytest.mark.parametrize(
    ("kind", "changes", "fmt", "message"),
    [
        ("clt", {}, "sparsify", "this is a CLT"),
        ("plt", {}, "sparsify", "TopK after a ReLU"),
        ("clt", {}, "gemmascope", "this is a CLT"),
        ("plt", {"activation": "topk", "activation_params": {"k": 2}}, "gemmascope", "JumpReLU"),
        ("plt", {"activation": "topk", "activation_params": {"k": 2}}, "circuit-tracer", "TopK"),
        ("clt", {"skip_connection": True}, "circuit-tracer", "skip connection"),
        ("clt", {"n_features": [4, 5, 6]}, "circuit-tracer", "same number of features"),
    ],
)
def test_formats_refuse_what_they_cannot_hold(
    tmp_path: Path, kind: str, changes: dict, fmt: str, message: str
) -> None:
    with pytest.raises(CircuitscopeError, match=message):
        write_format(make_transcoder(kind, **changes), tmp_path, fmt)
