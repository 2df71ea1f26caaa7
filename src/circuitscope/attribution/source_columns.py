"""Columns of the adjacency matrix by forward passes: each source's edges into rows.

The transpose of rows.py. A row is one target's edges from every source, by one
backward pass; a column is one source's edges into every target, by one forward
pass of the same frozen local replacement model. That model (attention and norm
scales frozen, MLP outputs held at constants) is affine in what is written into
the residual stream, so its linear part is read by running it twice on the
positions from the earliest source on: with nothing written but the bias terms
(batch 1) and with each batch row carrying one active feature's writes,
a_s · W_dec[l_s → l][i_s] at its position in the MLP output of every layer l it
decodes to. A target's edge is its injection vector dotted with the difference
arriving at its site and position; targets before the source get none (causal).
No embedding, no constants, no forward-mode AD: the work is that of one batched
forward over the suffix, about what a batch of rows costs, and less when the
sources sit late in the prompt (they are batched by position for that). A column
equals the rows' entries for that source to rounding (tests check it on every
architecture and transcoder kind).

visit.py uses it once columns are restricted: a feature without a column whose
bound says it might still matter gets its column this way, exact over every row
computed so far, instead of being left uncertain.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from circuitscope.attribution.replacement import LocalReplacement
from circuitscope.attribution.rows import Injection
from circuitscope.models import sites


def source_columns(
    rep: LocalReplacement,
    sources: Tensor,
    injections: list[Injection],
    batch_size: int,
    progress: bool = False,
) -> Tensor:
    """Edges from active features into targets.

    sources [k] indices into `rep.features`; injections: r targets (as for
    `RowComputer.rows`) -> [r, k] in `rep.dtype`, entry (i, j) the edge from source j
    into target i. One forward pass per `batch_size` sources, latest positions first."""
    out = torch.zeros(len(injections), len(sources), dtype=rep.dtype)
    order = torch.argsort(rep.features.position[sources], descending=True, stable=True)
    bar = tqdm(total=len(sources), desc="feature columns", unit="col", disable=not progress)
    for start in range(0, len(sources), batch_size):
        chunk = order[start : start + batch_size]
        out[:, chunk] = _columns(rep, sources[chunk], injections)
        bar.update(len(chunk))
    bar.close()
    return out


def _columns(rep: LocalReplacement, sources: Tensor, injections: list[Injection]) -> Tensor:
    """[r, len(sources)] by one forward pass with one source per batch row."""
    first = int(rep.features.position[sources].min())
    targets = _Targets.after(injections, first)
    out = torch.zeros(len(injections), len(sources), dtype=rep.dtype)
    if len(targets.rows) == 0:  # every target precedes every source: no edges
        return out
    base = _linear_run(rep, first, None, 1, targets)  # the bias terms alone: [1, n]
    edges = _linear_run(rep, first, _writes(rep, sources), len(sources), targets)  # [B, n]
    out[targets.rows] = (edges - base).T.cpu()
    return out


@dataclass
class _Targets:
    """The targets at or after position `first`, grouped by site."""

    first: int
    rows: Tensor  # [n] their indices into the injections
    by_site: dict[str, tuple[Tensor, Tensor, Tensor]]  # site -> (slots [m], positions, vectors)

    @classmethod
    def after(cls, injections: list[Injection], first: int) -> _Targets:
        kept = [i for i, injection in enumerate(injections) if injection.position >= first]
        grouped: dict[str, list[int]] = {}
        for slot, row in enumerate(kept):
            grouped.setdefault(injections[row].site, []).append(slot)
        by_site = {
            site: (
                torch.tensor(slots),
                torch.tensor([injections[kept[s]].position - first for s in slots]),
                torch.stack([injections[kept[s]].vector for s in slots]),
            )
            for site, slots in grouped.items()
        }
        return cls(first, torch.tensor(kept, dtype=torch.long), by_site)


def _linear_run(
    rep: LocalReplacement,
    first: int,
    writes: dict[int, _Writes] | None,
    batch: int,
    targets: _Targets,
) -> Tensor:
    """[batch, n] each target's injection dotted with what arrives at its site, in the
    frozen model run on positions `first`.. with zero embedding and zero MLP constants
    (plus the skip term, linear) and `writes` added: the bias terms' response alone
    when `writes` is None."""
    adapter = rep.adapter
    length = rep.seq_len - first
    out = torch.zeros(batch, len(targets.rows), dtype=rep.dtype)

    def read(site: str, value: Tensor) -> Tensor:
        slots, positions, vectors = targets.by_site[site]
        arriving = value.index_select(1, positions.to(value.device)).to(rep.dtype)  # [B, m, d]
        out[:, slots] = (arriving * vectors.to(arriving)).sum(-1).cpu()
        return value.new_zeros(())

    dtype = rep.recording.cache[sites.EMBED].dtype
    zeros = torch.zeros(1, length, adapter.d_model, dtype=dtype, device=adapter.device)
    mlp_out = {
        layer: rep.with_skip(
            layer, _written(zeros, writes.get(layer) if writes else None, batch, first)
        )
        for layer in range(rep.n_layers)
    }
    with torch.no_grad():
        adapter.run(
            rep.input_ids[:, first:].expand(batch, -1),
            frozen=rep.recording.frozen.suffix(first),
            mlp_out=mlp_out,
            embed=zeros,
            capture=sorted(targets.by_site),
            unembed=False,
            capture_as=read,
            live_input=rep.live_input,
        )
    return out


def _written(zeros: Tensor, writes: _Writes | None, batch: int, first: int) -> Tensor:
    """[batch or 1, length, d] the MLP output of one layer: zero but the writes."""
    if writes is None:
        return zeros
    rows, positions, vectors = writes
    output = zeros.expand(batch, -1, -1).clone()
    index = (rows.to(output.device), (positions - first).to(output.device))
    output.index_put_(index, vectors.to(output), accumulate=True)
    return output


_Writes = tuple[Tensor, Tensor, Tensor]
"""(batch rows [n], positions [n], vectors [n, d_model]) written into one layer."""


def _writes(rep: LocalReplacement, sources: Tensor) -> dict[int, _Writes]:
    """Per output layer, what each source (one per batch row) writes into it."""
    features = rep.features
    parts: dict[int, list[tuple[Tensor, Tensor, Tensor]]] = {}
    layers = features.layer[sources]
    for layer in torch.unique(layers).tolist():
        rows = torch.nonzero(layers == layer).flatten()
        chosen = sources[rows]
        values = features.activation[chosen].to(rep.dtype)
        vectors = rep.transcoder.feature_writes(layer, features.index[chosen], values)
        for out_layer, written in vectors.items():
            parts.setdefault(out_layer, []).append((rows, features.position[chosen], written))
    return {
        layer: (
            torch.cat([p[0] for p in pieces]),
            torch.cat([p[1] for p in pieces]),
            torch.cat([p[2] for p in pieces]),
        )
        for layer, pieces in parts.items()
    }
