"""Top input tokens equal a brute-force ranking of the embedding matrix against W_enc."""

from __future__ import annotations

import math

import pytest
import torch
from stats_fixtures import tiny_setup
from torch import Tensor

from circuitscope.features.card import FeatureCard, format_card
from circuitscope.features.input_tokens import top_input_tokens
from circuitscope.features.stats_settings import StatsSettings
from circuitscope.features.stream import collect_stats
from circuitscope.models import sites
from circuitscope.models.adapter import ModelAdapter
from circuitscope.testing.tiny_cards import tiny_card
from circuitscope.testing.tiny_models import tiny_model
from circuitscope.testing.tiny_transcoders import tiny_transcoder

K = 5
DIVISOR = 2.5
SETTINGS = StatsSettings(top_k=2, intervals=2, per_interval=1, histogram_bins=8)


def _tensor(value: object) -> Tensor:
    """A module attribute known to be a tensor (for the type checker)."""
    assert isinstance(value, Tensor)
    return value


def _setup(arch: str) -> tuple[ModelAdapter, Tensor]:
    """A tiny fp64 model (norm weights random) and the 24 features of each layer."""
    return ModelAdapter(tiny_model(arch, dtype=torch.float64)), torch.arange(24)


def _embeddings(adapter: ModelAdapter, arch: str) -> Tensor:
    """[vocab, d] the token embeddings as the residual receives them, from the weights."""
    weight = _tensor(adapter.model.get_input_embeddings().weight).double()
    return weight * math.sqrt(adapter.d_model) if arch == "gemma2" else weight


def _brute_read(adapter: ModelAdapter, arch: str, layer: int, e: Tensor) -> Tensor:
    """The MLP norm of `layer` at divisor DIVISOR, minus its value at 0, written out."""
    norm = adapter.layers[layer].get_submodule(adapter.spec.mlp_norm)
    g = _tensor(norm.weight).double()
    if arch == "gemma2":
        return e * (1 + g) / DIVISOR
    if arch == "gpt2":
        return (e - e.mean(dim=1, keepdim=True)) * g / DIVISOR
    return e * g / DIVISOR


def _brute_top(scores: Tensor) -> tuple[list[list[int]], Tensor]:
    """scores: [vocab, F] -> (per feature the K highest token ids, their scores [F, K])."""
    order = scores.argsort(dim=0, descending=True)[:K].T
    return order.tolist(), scores.gather(0, order.T).T


def test_resid_mid_top_input_tokens_are_the_top_of_embeddings_times_encoder() -> None:
    adapter, features = _setup("llama")
    transcoder = tiny_transcoder(adapter, "clt", dtype="float64", input_site="resid_mid")
    e = _embeddings(adapter, "llama")
    for layer in range(adapter.n_layers):
        w_enc = transcoder.layer(layer).W_enc.double()
        ids, values = top_input_tokens(adapter, transcoder, layer, features, DIVISOR, K)
        brute_ids, brute_values = _brute_top(e @ w_enc)
        assert ids.tolist() == brute_ids
        assert ids[:, 0].tolist() == (e @ w_enc).argmax(dim=0).tolist()
        torch.testing.assert_close(values.double(), brute_values, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", ["llama", "gemma2", "gpt2"])
def test_mlp_in_top_input_tokens_read_embeddings_through_the_mlp_norm(arch: str) -> None:
    adapter, features = _setup(arch)
    transcoder = tiny_transcoder(adapter, "plt", dtype="float64")
    e = _embeddings(adapter, arch)
    differs = 0
    for layer in range(adapter.n_layers):
        w_enc = transcoder.layer(layer).W_enc.double()
        ids, values = top_input_tokens(adapter, transcoder, layer, features, DIVISOR, K)
        brute_ids, brute_values = _brute_top(_brute_read(adapter, arch, layer, e) @ w_enc)
        assert ids.tolist() == brute_ids
        torch.testing.assert_close(values.double(), brute_values, rtol=1e-5, atol=1e-6)
        differs += int((ids[:, 0] != (e @ w_enc).argmax(dim=0)).sum())
    assert differs > 0  # the norm's weight changes which token comes first for some features


def test_a_subset_of_features_gets_the_rows_of_the_full_layer() -> None:
    adapter, features = _setup("llama")
    transcoder = tiny_transcoder(adapter, "clt", dtype="float64")
    every, _ = top_input_tokens(adapter, transcoder, 1, features, DIVISOR, K, chunk=7)
    some = torch.tensor([2, 9, 23])
    subset, _ = top_input_tokens(adapter, transcoder, 1, some, DIVISOR, K)
    assert subset.tolist() == every[some].tolist()


def test_the_pass_measures_the_mlp_norms_mean_divisor() -> None:
    tiny = tiny_setup("clt")
    features = {layer: torch.arange(24) for layer in range(tiny.adapter.n_layers)}
    stats = collect_stats(
        tiny.adapter,
        tiny.transcoder,
        tiny.batches(5),
        len(tiny.ids),
        features,
        SETTINGS,
        progress=False,
    )
    names = [sites.resid_mid(layer) for layer in features]
    cache = tiny.adapter.run(tiny.ids, capture=names, unembed=False).cache
    for layer in features:
        x = cache[sites.resid_mid(layer)][:, 1:].double()
        norm = tiny.adapter.layers[layer].get_submodule(tiny.adapter.spec.mlp_norm)
        epsilon = norm.variance_epsilon
        assert isinstance(epsilon, float)
        rms = (x.pow(2).mean(dim=-1) + epsilon).sqrt()
        assert stats.typical_input_divisor(layer) == pytest.approx(float(rms.mean()), rel=1e-5)


def test_a_card_shows_its_input_tokens_and_a_card_without_them_shows_none() -> None:
    record = tiny_card(2, 7)  # tiny cards carry input tokens: this one is from before them
    del record["top_input_tokens"], record["top_input_token_values"]
    card = FeatureCard.from_record(record, 2)
    assert card.top_input_tokens == [] and "input tokens" not in format_card(card)
    record |= {"top_input_tokens": [" Paris", " France"], "top_input_token_values": [1.5, -0.25]}
    card = FeatureCard.from_record(record, 2)
    assert card.top_input_tokens == [(" Paris", 1.5), (" France", -0.25)]
    assert "input tokens   ' Paris' +1.50  ' France' -0.25" in format_card(card).splitlines()
