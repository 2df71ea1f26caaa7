"""load_model on local folders, GGUF files and names, and its errors."""

from pathlib import Path

import pytest
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from circuitscope.errors import CircuitscopeError
from circuitscope.models.loading import load_model, resolve_source
from circuitscope.testing.tiny_models import save_tiny_folder, tiny_model


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_folder(tmp_path_factory.mktemp("tiny-llama"), "llama")


def test_local_folder_loads_with_tokenizer_and_adapter(tiny_folder: Path):
    loaded = load_model(str(tiny_folder))
    assert loaded.adapter.spec.name == "llama"
    assert loaded.adapter.n_layers == 3 and loaded.adapter.d_model == 32
    ids = loaded.tokenizer("two plus two", return_tensors="pt").input_ids
    expected = tiny_model("llama")(ids).logits
    torch.testing.assert_close(loaded.adapter.run(ids).logits, expected, atol=1e-5, rtol=0)


def test_bfloat16_is_an_argument(tiny_folder: Path):
    loaded = load_model(str(tiny_folder), dtype="bfloat16")
    assert loaded.adapter.dtype == torch.bfloat16
    ids = loaded.tokenizer("two plus two", return_tensors="pt").input_ids
    recording = loaded.adapter.record(ids)
    frozen = loaded.adapter.run(ids, frozen=recording.frozen).logits
    assert frozen.dtype == torch.bfloat16
    reference = tiny_model("llama")(ids).logits
    assert (frozen.float() - reference).abs().max().item() < 0.1


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty model name"),
        ("gpt-7", "unknown model 'gpt-7'"),
        ("./no/such/folder", "no such file or folder"),
        ("missing.gguf", "no such GGUF file"),
    ],
)
def test_bad_specs_are_named(spec: str, message: str):
    with pytest.raises(CircuitscopeError, match=message):
        resolve_source(spec)


def test_folder_without_config_is_refused(tmp_path: Path):
    with pytest.raises(CircuitscopeError, match="no config.json"):
        resolve_source(str(tmp_path))


def test_file_that_is_not_gguf_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CIRCUITSCOPE_CACHE", str(tmp_path / "cache"))
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"not a gguf file at all")
    with pytest.raises(CircuitscopeError, match="not a GGUF file"):
        load_model(str(fake))


def test_corrupt_gguf_is_refused_and_leaves_no_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("CIRCUITSCOPE_CACHE", str(tmp_path / "cache"))
    corrupt = tmp_path / "broken.gguf"
    corrupt.write_bytes(b"GGUF" + bytes(range(256)) * 4)
    with pytest.raises(CircuitscopeError, match="cannot read GGUF file"):
        load_model(str(corrupt))
    leftovers = list((tmp_path / "cache" / "gguf").glob("*"))
    assert leftovers == []


def test_unsupported_architecture_names_the_supported_ones(tmp_path: Path):
    config = GPTNeoXConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    GPTNeoXForCausalLM(config).save_pretrained(tmp_path)
    with pytest.raises(CircuitscopeError, match="unsupported architecture 'gpt_neox'.*llama"):
        load_model(str(tmp_path))


def test_unreachable_hub_id_is_a_clear_error(monkeypatch: pytest.MonkeyPatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(CircuitscopeError, match="cannot load 'nobody-here/no-model'"):
        load_model("nobody-here/no-model")


def test_prompt_longer_than_the_context_is_refused(tiny_folder: Path):
    loaded = load_model(str(tiny_folder))
    limit = loaded.adapter.max_positions
    assert limit == 64
    too_long = torch.ones(1, limit + 1, dtype=torch.long)
    with pytest.raises(CircuitscopeError, match="context"):
        loaded.adapter.run(too_long)


def test_gguf_cache_is_keyed_by_content_not_path(tmp_path: Path, monkeypatch):
    from circuitscope.models.gguf_cache import cached_folder

    monkeypatch.setenv("CIRCUITSCOPE_CACHE", str(tmp_path / "cache"))
    payload = b"GGUF" + bytes(range(256)) * 9000
    first, second, other = tmp_path / "a.gguf", tmp_path / "b" / "a.gguf", tmp_path / "c.gguf"
    second.parent.mkdir()
    first.write_bytes(payload)
    second.write_bytes(payload)
    other.write_bytes(payload[:-1] + b"x")
    assert cached_folder(first) == cached_folder(second)
    assert cached_folder(first).parent == tmp_path / "cache" / "gguf"
    assert cached_folder(first).name.split("-")[-1] != cached_folder(other).name.split("-")[-1]
