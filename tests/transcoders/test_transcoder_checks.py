"""A transcoder checked against a model, and loading from a hub repo id."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub
import pytest
from transcoder_fixtures import make_transcoder

from circuitscope.errors import CircuitscopeError
from circuitscope.models.adapter import ModelAdapter
from circuitscope.testing.tiny_models import tiny_model
from circuitscope.transcoders.checks import check_against_model, model_mismatches
from circuitscope.transcoders.transcoder import Transcoder


@pytest.fixture(scope="module")
def llama() -> ModelAdapter:
    return ModelAdapter(tiny_model("llama"))  # 3 layers, d_model 32


def test_matching_transcoder_passes(llama: ModelAdapter) -> None:
    transcoder = make_transcoder("clt", d_model=32)
    check_against_model(transcoder, llama)
    assert model_mismatches(transcoder.config, llama) == []


def test_each_mismatch_gets_its_own_message(llama: ModelAdapter) -> None:
    config = make_transcoder(
        "plt",
        n_layers=4,
        n_features=[4] * 4,
        architecture="gemma2",
        input_site="layers.{layer}.resid_post",
    ).config
    problems = model_mismatches(config, llama)
    assert problems == [
        "transcoder has 4 layers, the model has 3",
        "transcoder d_model is 8, the model's is 32",
        "transcoder was made for a gemma2 model, this is llama",
        "input site 'layers.{layer}.resid_post' is not a transcoder input "
        "('layers.{layer}.mlp_in' or 'layers.{layer}.resid_mid')",
    ]
    with pytest.raises(CircuitscopeError) as error:
        check_against_model(config, llama)
    message = str(error.value)
    assert "\n" not in message and message.startswith("transcoder does not fit model")
    assert all(problem in message for problem in problems)


def test_mismatched_model_after_loading(tmp_path: Path, llama: ModelAdapter) -> None:
    make_transcoder("clt").save(tmp_path)
    with pytest.raises(CircuitscopeError, match="d_model is 8, the model's is 32"):
        check_against_model(Transcoder.load(tmp_path), llama)


def test_hub_repo_id_is_downloaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_transcoder("plt").save(tmp_path / "snapshot" / "sub")
    calls = []

    def fake_snapshot(repo_id: str, revision: str | None = None, allow_patterns=None) -> str:
        calls.append((repo_id, revision, allow_patterns))
        return str(tmp_path / "snapshot")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    transcoder = Transcoder.load("someone/transcoders/sub@v1")
    assert calls == [("someone/transcoders", "v1", ["sub/*"])]
    assert transcoder.config.kind == "plt"


def test_unreachable_hub_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> str:
        raise OSError("network is unreachable")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(CircuitscopeError, match="not a local path, and the hub download failed"):
        Transcoder.load("someone/transcoders")
