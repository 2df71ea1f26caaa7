"""Columns of the adjacency matrix by forward-mode passes: each source's edges into rows.

The transpose of rows.py. A row is one target's edges from every source, by one
backward pass; a column is one source's edges into every target, by one forward
pass of the same frozen local replacement model (attention and norm scales
frozen, MLP outputs held at their constants) with forward-mode AD: each batch row
carries the tangent of one active feature's writes, a_s · W_dec[l_s → l][i_s] at
its position in the MLP output of every layer l it decodes to, and a target's
edge is its injection vector dotted with the tangent arriving at its site and
position. The map is the same linear one, read the other way, so a column equals
the rows' entries for that source to rounding (tests check it on every
architecture and transcoder kind).

visit.py uses it once columns are restricted: a feature without a column whose
bound says it might still matter gets its column this way, exact over every row
computed so far, instead of being left uncertain.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.autograd.forward_ad as forward_ad
from torch import Tensor
from tqdm.auto import tqdm

from circuitscope.attribution.replacement import LocalReplacement
from circuitscope.attribution.rows import Injection


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
    into target i. One forward pass per `batch_size` sources."""
    out = torch.zeros(len(injections), len(sources), dtype=rep.dtype)
    by_site: dict[str, list[int]] = {}
    for row, injection in enumerate(injections):
        by_site.setdefault(injection.site, []).append(row)
    constants = rep.constant_outputs(with_errors=True)
    bar = tqdm(total=len(sources), desc="feature columns", unit="col", disable=not progress)
    for start in range(0, len(sources), batch_size):
        chunk = sources[start : start + batch_size]
        out[:, start : start + len(chunk)] = _columns(rep, chunk, injections, by_site, constants)
        bar.update(len(chunk))
    bar.close()
    return out


def _columns(
    rep: LocalReplacement,
    sources: Tensor,
    injections: list[Injection],
    by_site: dict[str, list[int]],
    constants: dict[int, Tensor],
) -> Tensor:
    """[r, len(sources)] by one forward pass with one source per batch row."""
    adapter = rep.adapter
    batch = len(sources)
    writes = _writes(rep, sources)
    out = torch.zeros(len(injections), batch, dtype=rep.dtype)

    def read(site: str, value: Tensor) -> Tensor:
        tangent = forward_ad.unpack_dual(value).tangent
        rows = by_site.get(site, [])
        if rows and tangent is not None:
            positions = torch.tensor([injections[r].position for r in rows], device=tangent.device)
            vectors = torch.stack([injections[r].vector for r in rows]).to(tangent.device)
            arriving = tangent.index_select(1, positions).to(rep.dtype)  # [B, n, d]
            edges = (arriving * vectors.to(rep.dtype)).sum(-1)  # [B, n]
            out[torch.tensor(rows)] = edges.T.cpu()
        return value.new_zeros(())

    ids = rep.input_ids.expand(batch, -1)
    with torch.no_grad(), forward_ad.dual_level():
        mlp_out = {
            layer: _dual_output(rep, layer, constant, writes.get(layer), batch)
            for layer, constant in constants.items()
        }
        adapter.run(
            ids,
            frozen=rep.recording.frozen,
            mlp_out=mlp_out,
            capture=sorted(by_site),
            keep_graph=True,  # no detach: it would drop the tangents
            unembed=False,
            capture_as=read,
            live_input=rep.live_input,
        )
    return out


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


def _dual_output(
    rep: LocalReplacement, layer: int, constant: Tensor, writes: _Writes | None, batch: int
) -> Callable[[Tensor], Tensor]:
    """The MLP output of `layer` with its tangent, made when the layer runs (so that
    only one layer's [B, seq, d] tangent lives at a time)."""

    def output(live: Tensor) -> Tensor:
        shape = (batch, *constant.shape[1:])
        primal = constant.to(live.dtype).expand(shape).contiguous()
        tangent = torch.zeros_like(primal)
        if writes is not None:
            rows, positions, vectors = writes
            device = tangent.device
            index = (rows.to(device), positions.to(device))
            tangent.index_put_(index, vectors.to(device, tangent.dtype))
        value = forward_ad.make_dual(primal, tangent)
        if rep.transcoder.config.skip_connection:
            return value + rep.transcoder.skip(layer, live)
        return value

    return output
