"""Recording a model's transcoder inputs and MLP outputs over a corpus into a store.

The input is the MLP's input (`mlp_in`, the default) or the residual stream before
the MLP's norm (`resid_mid`); the manifest records which."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import Tensor

from circuitscope.data.bos import BosPolicy, first_recorded_position
from circuitscope.data.store_format import Manifest
from circuitscope.data.store_writer import StoreWriter
from circuitscope.models import sites
from circuitscope.models.adapter import ModelAdapter


def layer_sites(n_layers: int, input_kind: str = "mlp_in") -> list[str]:
    """The input site (`sites.TRANSCODER_INPUTS`) and MLP output of every layer."""
    inputs = [sites.transcoder_input(input_kind, i) for i in range(n_layers)]
    return inputs + [sites.mlp_out(i) for i in range(n_layers)]


@torch.no_grad()
def record_batch(
    adapter: ModelAdapter, input_ids: Tensor, input_kind: str = "mlp_in", bos: BosPolicy = "auto"
) -> tuple[Tensor, Tensor]:
    """Transcoder inputs and MLP outputs of every layer at every position but the sink (the
    first, when contexts were packed with `bos` auto or always; with never, every position).

    input_ids: [batch, seq] -> (inputs, mlp_out), each [batch * (seq - 1), n_layers, d_model]
    (batch * seq rows with never).
    """
    n_layers = adapter.n_layers
    first = first_recorded_position(bos)
    # No unembedding: the logits are not recorded, and over a 49k vocabulary they are
    # a sixth of SmolLM2-135M's forward (recording 532 -> 642 tokens/s on one thread).
    sites_wanted = layer_sites(n_layers, input_kind)
    cache = adapter.run(input_ids, capture=sites_wanted, unembed=False).cache
    x = torch.stack(
        [cache[sites.transcoder_input(input_kind, i)][:, first:] for i in range(n_layers)], dim=2
    )
    y = torch.stack([cache[sites.mlp_out(i)][:, first:] for i in range(n_layers)], dim=2)
    return x.reshape(-1, n_layers, adapter.d_model), y.reshape(-1, n_layers, adapter.d_model)


def collect_activations(
    adapter: ModelAdapter,
    batches: Iterable[Tensor],
    folder: Path,
    manifest: Manifest,
    n_tokens: int,
    shard_tokens: int = 4096,
    shuffle_shards: int = 4,
    progress: bool = True,
) -> Manifest:
    """Record up to `n_tokens` tokens from `batches` ([batch, seq] ids) into `folder`."""
    from tqdm import tqdm

    writer = StoreWriter(folder, manifest, shard_tokens, shuffle_shards)
    done = 0
    with tqdm(total=n_tokens, unit="tok", disable=not progress, desc="collect") as bar:
        for ids in batches:
            x, y = record_batch(adapter, ids, manifest.input_site, manifest.bos)
            take = min(len(x), n_tokens - done)
            writer.add(x[:take].float().cpu(), y[:take].float().cpu())
            done += take
            bar.update(take)
            if done >= n_tokens:
                break
    return writer.close()
