"""The activation store: manifest, checksums, shuffled reads, statistics, corrupt files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from data_fixtures import (
    CONTEXT,
    make_store,
    tiny_adapter,
    tiny_documents,
    tiny_store_fixture,  # noqa: F401
)

from circuitscope.data.collect import record_batch
from circuitscope.data.packing import pack_contexts
from circuitscope.data.store_format import MANIFEST, read_manifest, sha256_file
from circuitscope.data.store_reader import ActivationStore
from circuitscope.errors import CircuitscopeError
from circuitscope.models import sites
from circuitscope.testing.tiny_models import tiny_tokenizer


def test_manifest_and_checksums(tiny_store: Path):
    manifest = read_manifest(tiny_store)
    assert manifest.n_tokens == 12_000 and manifest.n_layers == 3 and manifest.d_model == 32
    assert [s.n_tokens for s in manifest.shards] == [1024] * 11 + [736]
    for shard in manifest.shards:
        assert sha256_file(tiny_store / shard.file) == shard.sha256


def test_store_holds_the_recorded_tokens_and_statistics(tiny_store: Path):
    store = ActivationStore(tiny_store)
    xs, ys = zip(*(store.read_shard(i) for i in range(len(store.manifest.shards))), strict=True)
    x, y = torch.cat(xs).float(), torch.cat(ys).float()
    assert x.dtype == torch.float32 and store.read_shard(0)[0].dtype == torch.float16
    # The same tokens as a direct recording, in another order (BOS positions left out).
    contexts = list(pack_contexts(tiny_documents(), tiny_tokenizer(), CONTEXT))
    n_contexts = -(-12_000 // (CONTEXT - 1))
    direct_x, direct_y = record_batch(tiny_adapter(), torch.stack(contexts[:n_contexts]))
    direct_x, direct_y = direct_x[:12_000], direct_y[:12_000]
    assert torch.allclose(x.sum(0), direct_x.sum(0), atol=0.5, rtol=1e-3)
    key = lambda t: t[:, 0, :4].sum(-1).sort().values  # noqa: E731
    assert torch.allclose(key(y), key(direct_y.half().float()), atol=1e-3)
    assert not torch.equal(y[:100], direct_y[:100].half().float())  # shuffled
    stats = store.stats
    assert torch.allclose(stats.mean_out.float(), direct_y.mean(0), atol=1e-4)
    assert torch.allclose(stats.norm_in.float(), direct_x.norm(dim=-1).mean(0), rtol=1e-4)
    expected_var = (direct_y - direct_y.mean(0)).pow(2).sum(-1).mean(0)
    assert torch.allclose(stats.out_variance().float(), expected_var, rtol=1e-3)


def test_epochs_visit_every_token_once_in_a_new_order(tiny_store: Path):
    store = ActivationStore(tiny_store, group_shards=3)
    per_epoch = store.batches_per_epoch(500)
    assert per_epoch == 24
    first = torch.cat([store.batch(0, i, 500, seed=1)[1] for i in range(per_epoch)])
    second = torch.cat([store.batch(1, i, 500, seed=1)[1] for i in range(per_epoch)])
    everything = torch.cat([store.read_shard(i)[1] for i in range(12)]).float()
    checksum = lambda t: t.double().sum(0)  # noqa: E731
    assert torch.allclose(checksum(first), checksum(everything), rtol=1e-9)
    rows = lambda t: torch.unique(t.reshape(len(t), -1), dim=0, return_counts=True)  # noqa: E731
    for mine, theirs in zip(rows(first), rows(everything), strict=True):
        assert torch.equal(mine, theirs)  # the same multiset of tokens
    assert not torch.equal(first[:500], second[:500])
    again = ActivationStore(tiny_store, group_shards=3).batch(1, 7, 500, seed=1)
    assert torch.equal(again[0], store.batch(1, 7, 500, seed=1)[0])
    half = store.batch(1, 7, 500, seed=1, rows=(250, 500))[0]
    assert torch.equal(half, again[0][250:])
    assert not torch.equal(store.batch(0, 0, 500, seed=2)[0], store.batch(0, 0, 500, seed=1)[0])


def test_corrupt_missing_and_truncated_files(tiny_store: Path, tmp_path: Path):
    copy = tmp_path / "store"
    shutil.copytree(tiny_store, copy)
    shard = copy / "shard_00003.safetensors"
    data = bytearray(shard.read_bytes())
    data[-10] ^= 0xFF
    shard.write_bytes(bytes(data))
    store = ActivationStore(copy)
    with pytest.raises(CircuitscopeError, match="shard_00003.safetensors is corrupt"):
        store.read_shard(3)
    shard.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(CircuitscopeError, match="unreadable"):
        ActivationStore(copy, verify=False).read_shard(3)
    shard.unlink()
    with pytest.raises(CircuitscopeError, match="missing shard_00003"):
        ActivationStore(copy)
    (copy / MANIFEST).write_text("{not json")
    with pytest.raises(CircuitscopeError, match="unreadable manifest"):
        ActivationStore(copy)
    (copy / MANIFEST).write_text(json.dumps({"format": "something else"}))
    with pytest.raises(CircuitscopeError, match="not a circuitscope activation store"):
        ActivationStore(copy)
    with pytest.raises(CircuitscopeError, match="no such activation store"):
        ActivationStore(tmp_path / "nowhere")


def test_bfloat16_store_and_too_small_store(tmp_path: Path):
    manifest = make_store(tmp_path / "bf16", n_tokens=700, shard_tokens=256, dtype="bfloat16")
    store = ActivationStore(tmp_path / "bf16")
    assert manifest.n_tokens == 700 and store.read_shard(0)[0].dtype == torch.bfloat16
    with pytest.raises(CircuitscopeError, match="fewer than one batch"):
        store.batches_per_epoch(1024)


def test_manifest_records_the_bos_policy_and_old_manifests_load_as_before():
    """The policy and the sink token survive a round trip; a manifest written before they
    were recorded reads as auto (its contexts started with the sink), sink unknown."""
    from circuitscope.data.store_format import Manifest

    written = Manifest("m", "llama", 3, 32, "float16", 32, bos="never", sink_token_id=None)
    again = Manifest.from_dict(json.loads(json.dumps(written.to_dict())), "here")
    assert again == written and again.bos == "never" and again.sink_token_id is None
    auto = Manifest("m", "llama", 3, 32, "float16", 32, bos="auto", sink_token_id=1)
    assert Manifest.from_dict(auto.to_dict(), "here").sink_token_id == 1
    old = {k: v for k, v in auto.to_dict().items() if k not in ("bos", "sink_token_id")}
    read = Manifest.from_dict(old, "old")
    assert (read.bos, read.sink_token_id) == ("auto", None)
    with pytest.raises(CircuitscopeError, match="unknown bos 'sometimes'"):
        Manifest.from_dict({**old, "bos": "sometimes"}, "bad")


def test_a_store_collected_with_bos_never_records_position_0(tmp_path: Path):
    """With never the contexts are all text and every position is recorded: the store holds
    exactly the rows of positions 0..31 of 8 contexts (with auto, position 0 is the sink
    and is left out; see test_store_holds_the_recorded_tokens_and_statistics)."""
    from circuitscope.data.collect import collect_activations
    from circuitscope.data.packing import batched
    from circuitscope.data.store_format import Manifest

    adapter = tiny_adapter()
    contexts = list(pack_contexts(tiny_documents(), tiny_tokenizer(), CONTEXT, bos="never"))
    manifest = Manifest("tiny-llama", "llama", 3, 32, "float32", CONTEXT, bos="never")
    batches = batched(iter(contexts), 4)
    written = collect_activations(adapter, batches, tmp_path, manifest, 8 * CONTEXT, 64, 2, False)
    assert written.n_tokens == 256 and read_manifest(tmp_path).bos == "never"
    stored = torch.cat([ActivationStore(tmp_path).read_shard(i)[1] for i in range(4)])
    with torch.no_grad():
        out = adapter.run(torch.stack(contexts[:8]), capture=["layers.0.mlp_out"]).cache
    every, position_0 = out["layers.0.mlp_out"].flatten(0, 1), out["layers.0.mlp_out"][:, 0]
    key = lambda t: t[:, :4].sum(-1).sort().values  # noqa: E731
    torch.testing.assert_close(key(stored[:, 0]), key(every), atol=1e-5, rtol=1e-5)
    for row in position_0:
        assert torch.isclose(stored[:, 0], row, atol=1e-5).all(-1).any()


def test_recording_skips_the_unembedding_and_keeps_the_values():
    adapter = tiny_adapter()
    calls: list[int] = []
    handle = adapter.unembedding.register_forward_hook(lambda *_: calls.append(1))
    ids = torch.stack(list(pack_contexts(tiny_documents(), tiny_tokenizer(), CONTEXT))[:3])
    try:
        x, y = record_batch(adapter, ids)
    finally:
        handle.remove()
    assert calls == []
    cache = adapter.run(ids, capture=[sites.mlp_in(1), sites.mlp_out(2)]).cache
    assert torch.equal(x[:, 1], cache[sites.mlp_in(1)][:, 1:].reshape(-1, 32))
    assert torch.equal(y[:, 2], cache[sites.mlp_out(2)][:, 1:].reshape(-1, 32))
