"""The training forward pass of a transcoder held in memory: one matmul per layer.

Same result as `Transcoder.forward` (tested), but decodes each layer's features to
all of its output layers with one matmul, and keeps the pre-activations that the
pre-activation loss needs.

TopK layers take a sparse path: the k kept values and their indices per token
(`sparse_topk_encode`: a two-stage top-k, `row_topk`, and a backward that forms
W_enc's gradient from the kept entries only, by one sparse-dense matmul) are decoded
by `embedding_bag` (a weighted sum of k decoder rows) instead of a dense
[batch, n] @ [n, n_out·d] matmul; same values and gradients as the dense path (tested).
JumpReLU layers keep their dense activations (the sparsity and pre-activation losses
read them) but decode only their active entries and those in θ's straight-through
window (`decode_entries`: the only ones whose gradient matters), once few enough are.

`aux_reconstruction` is AuxK's: the residual error's reconstruction from dead features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from circuitscope.transcoders.activations import JumpReLU, TopK
from circuitscope.transcoders.transcoder import Transcoder


@dataclass
class TrainingForward:
    pre_activations: list[Tensor]
    """Per layer [batch, n_features]."""
    dense_activations: list[Tensor | None]
    """Per layer [batch, n_features], or None for a layer on the sparse TopK path."""
    reconstruction: Tensor
    """[batch, n_layers, d_model]."""
    top: list[tuple[Tensor, Tensor] | None]
    """Per layer (values, indices), each [batch, k], for layers on the sparse TopK path."""

    @property
    def activations(self) -> list[Tensor]:
        """Per layer [batch, n_features] (made dense, without gradient, for sparse layers)."""
        out = []
        for dense, top, h in zip(
            self.dense_activations, self.top, self.pre_activations, strict=True
        ):
            if dense is not None:
                out.append(dense)
            else:
                assert top is not None
                values, indices = top
                full = torch.zeros(h.shape, dtype=values.dtype, device=values.device)
                out.append(full.scatter_(-1, indices, values.detach()))
        return out

    @torch.no_grad()
    def fire_counts(self) -> list[Tensor]:
        """Per layer [n_features]: on how many tokens of the batch each feature fired."""
        rows = []
        for dense, top, h in zip(
            self.dense_activations, self.top, self.pre_activations, strict=True
        ):
            if dense is not None:
                rows.append((dense != 0).sum(0))
            else:
                assert top is not None
                values, indices = top
                fired = indices[values != 0]
                rows.append(torch.bincount(fired, minlength=h.shape[-1]))
        return rows

    @torch.no_grad()
    def l0_per_layer(self) -> Tensor:
        """[n_layers]: mean number of active features per token."""
        rows = []
        for dense, top in zip(self.dense_activations, self.top, strict=True):
            active = dense if dense is not None else top[0]  # type: ignore[index]
            rows.append((active != 0).float().sum(-1).mean())
        return torch.stack(rows)


class _TopKEncode(torch.autograd.Function):
    """(values, indices, h) of TopK(h), h = x @ W_enc + b_enc; sparse backward."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, weight: Tensor, bias: Tensor, k: int, relu: bool
    ) -> tuple[Tensor, Tensor, Tensor]:
        h = torch.addmm(bias, x, weight) if x.dim() == 2 else x @ weight + bias
        values, indices = row_topk(h, min(k, h.shape[-1]))
        # Under bf16 autocast h is bf16; the k kept values go on in the weights' dtype, so
        # their gradients (and W_enc's, formed from them) are not rounded to bf16.
        values = values.to(weight.dtype)
        if relu:
            values = torch.relu(values)
        ctx.save_for_backward(x, weight, values, indices)
        ctx.relu = relu
        ctx.set_materialize_grads(False)  # h and indices get no gradient: no zero tensors
        ctx.mark_non_differentiable(indices, h)
        return values, indices, h

    @staticmethod
    def backward(
        ctx: Any, grad_values: Tensor | None, _grad_indices: Tensor | None, _grad_h: Tensor | None
    ) -> tuple[Tensor | None, ...]:
        x, weight, values, indices = ctx.saved_tensors
        if grad_values is None:
            return None, None, None, None, None
        grad: Tensor = grad_values * (values > 0) if ctx.relu else grad_values
        n = weight.shape[1]
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            rows = weight.t()[indices]  # [batch, k, d]
            grad_x = (grad.to(rows.dtype).unsqueeze(-1) * rows).sum(-2).to(x.dtype)
        if ctx.needs_input_grad[1]:
            # in W_enc's layout (the copy AccumulateGrad made of the transpose before), so
            # that AuxK's sparse gradient adds into it in place
            grad_weight = encoder_weight_grad(x.to(weight.dtype), grad, indices, n).t().contiguous()
        if ctx.needs_input_grad[2]:
            grad_bias = torch.zeros(n, dtype=weight.dtype, device=weight.device)
            grad_bias.index_add_(0, indices.reshape(-1), grad.reshape(-1).to(weight.dtype))
        return grad_x, grad_weight, grad_bias, None, None


TOPK_BLOCK = 16
"""Block size of `row_topk`'s first stage."""


def row_topk(h: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The k largest entries of each row of h [batch, n], descending: (values, indices).

    The values equal `h.topk(k)`'s; the indices too unless a row has ties at the k-th
    value (then either choice is a top k, as with `topk` itself). For wide rows, two
    stages: the maxima of n/16 strided blocks (one vectorised pass), the k blocks with
    the largest maxima, then `topk` over those blocks' 16·k entries only. A row's k
    largest entries all lie in those blocks: an entry e outside them sits in a block
    whose maximum is at most that of each of the k chosen blocks, so k other entries
    are ≥ e. About 1.5x faster than `topk` on [512, 4096] rows at k = 32 on a CPU.
    """
    block = TOPK_BLOCK
    if h.dim() != 2 or h.shape[1] % block or h.shape[1] // block < 4 * k:
        values, indices = h.topk(k, dim=-1)
        return values, indices
    batch, n = h.shape
    n_blocks = n // block
    blocks = h.reshape(batch, block, n_blocks)  # block j: entries j, j + n_blocks, ...
    chosen = blocks.amax(1).topk(k, dim=-1, sorted=False).indices  # [batch, k]
    candidates = blocks.gather(2, chosen.unsqueeze(1).expand(batch, block, k))
    values, position = candidates.reshape(batch, block * k).topk(k, dim=-1)
    indices = (position // k) * n_blocks + chosen.gather(1, position % k)
    return values, indices


def encoder_weight_grad(x: Tensor, grad_values: Tensor, indices: Tensor, n: int) -> Tensor:
    """x [batch, d], grad_values and indices [batch, k] -> [n, d], the transpose of dL/dW_enc.

    Row i is Σ over the (token b, slot j) with indices[b, j] = i of grad_values[b, j] · x[b]:
    the product of a [n, batch] sparse matrix of batch·k entries with x (one sparse-dense
    matmul, no [batch, k, d] intermediate).
    """
    batch, k = indices.shape
    tokens = torch.arange(batch, device=x.device).repeat_interleave(k)
    sparse = torch.sparse_coo_tensor(
        torch.stack([indices.reshape(-1), tokens]),
        grad_values.reshape(-1).to(x.dtype),
        (n, batch),
        check_invariants=False,
    )
    # addmm with beta = 0 ignores its (expanded, zero-size) input; torch.sparse.mm would
    # zero-fill its [n, d] result twice.
    return torch.addmm(x.new_zeros(()).expand(n, x.shape[1]), sparse, x, beta=0)


def sparse_topk_encode(
    x: Tensor, weight: Tensor, bias: Tensor, k: int, relu: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """x [batch, d], W_enc [d, n], b_enc [n] -> (values [batch, k], indices [batch, k], h).

    The kept values of TopK(x @ W_enc + b_enc) (ReLU'd if `relu`) and their feature
    indices; h (the dense pre-activations) carries no gradient. The backward pass
    forms only the kept entries' gradients (`encoder_weight_grad`, a sparse-dense
    matmul) instead of a dense one.
    """
    out = _TopKEncode.apply(x, weight, bias, k, relu)
    return out[0], out[1], out[2]  # type: ignore[index]


def sparse_decode(values: Tensor, indices: Tensor, decoder: Tensor) -> Tensor:
    """values, indices [batch, k], decoder [n, m] -> Σ_j values[:, j] · decoder[indices[:, j]]."""
    return F.embedding_bag(
        indices, decoder, per_sample_weights=values.to(decoder.dtype), mode="sum"
    )


SPARSE_DECODE_DENSITY = 1 / 16
"""A JumpReLU layer decodes the entries it needs (`jumprelu_entries`) by `decode_entries`
when at most this fraction of them is needed; more (early in training, thresholds near
0), by the dense matmul."""


def decode_entries(a: Tensor, entries: Tensor, decoder: Tensor) -> Tensor:
    """a [batch, n], entries [batch, n] bool (every nonzero of a among them), decoder [n, m]
    -> a @ decoder [batch, m] in the decoder's dtype: each row sums the decoder rows of its
    entries only (one `embedding_bag` over bags of varying size). Gradients: to the
    decoder, and to a at the entries (0 elsewhere: entries must hold every position whose
    gradient matters)."""
    rows, columns = entries.nonzero(as_tuple=True)
    counts = torch.bincount(rows, minlength=a.shape[0])
    offsets = torch.cumsum(counts, 0) - counts
    values = a[rows, columns].to(decoder.dtype)
    return F.embedding_bag(columns, decoder, offsets, per_sample_weights=values, mode="sum")


@torch.no_grad()
def jumprelu_entries(h: Tensor, activation: JumpReLU) -> Tensor:
    """[batch, n] bool: where JumpReLU(h) needs its output's gradient: the active entries
    (h > θ), and those in the straight-through window of θ's gradient (|h - θ| < ε/2):
    together, h > θ - ε/2 (here with 0.1% to spare, so that rounding in the kernel's own
    (h - θ) / ε cannot put an entry inside the window and outside these)."""
    return h > activation.threshold - activation.bandwidth * (0.5 + 2**-10)


def _decode(a: Tensor, h: Tensor, activation: Any, decoder: Tensor, sparse: bool) -> Tensor:
    """a @ decoder; for a JumpReLU layer on the sparse path, over the entries it needs
    only, when they are few enough."""
    if sparse and isinstance(activation, JumpReLU):
        entries = jumprelu_entries(h, activation)
        if int(entries.sum()) <= SPARSE_DECODE_DENSITY * entries.numel():
            return decode_entries(a, entries, decoder)
    return a @ decoder


def training_forward(
    transcoder: Transcoder, mlp_in: Tensor, sparse: bool = True
) -> TrainingForward:
    """mlp_in: [batch, n_layers, d_model] (the transcoder's input site).

    A transcoder with a skip connection adds each layer's x_l @ W_skip,l to its own layer.
    sparse: TopK layers take the sparse path, and JumpReLU layers decode only the entries
    whose gradients matter (`decode_entries`) when few enough do (same values and
    gradients; False: dense, as the module).
    """
    config = transcoder.config
    batch, n_layers, d = mlp_in.shape
    flats: list[Tensor] = []
    pre_list: list[Tensor] = []
    act_list: list[Tensor | None] = []
    top_list: list[tuple[Tensor, Tensor] | None] = []
    for layer in range(n_layers):
        block = transcoder.layer(layer)
        decoder = flat_decoder(block.W_dec)
        activation = block.activation
        if sparse and isinstance(activation, TopK):
            x = mlp_in[:, layer].to(block.W_enc.dtype)
            values, indices, h = sparse_topk_encode(
                x, block.W_enc, block.b_enc, activation.k, activation.relu
            )
            flat = sparse_decode(values, indices, decoder)
            act_list.append(None)
            top_list.append((values, indices))
        else:
            h = mlp_in[:, layer] @ block.W_enc + block.b_enc
            a = activation(h)
            flat = _decode(a, h, activation, decoder, sparse)
            act_list.append(a)
            top_list.append(None)
        flats.append(flat.view(batch, config.n_outputs(layer), d))
        pre_list.append(h)
    biases = torch.stack([transcoder.layer(layer).b_dec for layer in range(n_layers)])
    starts = tuple(config.output_layers(layer).start for layer in range(n_layers))
    stacked = sum_layer_outputs(flats, starts, n_layers) + biases
    if config.skip_connection:
        stacked = stacked + skip_terms(transcoder, mlp_in)
    return TrainingForward(pre_list, act_list, stacked, top_list)


def skip_terms(transcoder: Transcoder, mlp_in: Tensor) -> Tensor:
    """mlp_in: [batch, n_layers, d_model] -> [batch, n_layers, d_model], x_l @ W_skip,l."""
    terms = []
    for layer in range(mlp_in.shape[1]):
        weight = transcoder.layer(layer).W_skip
        assert weight is not None
        terms.append(mlp_in[:, layer].to(weight.dtype) @ weight)
    return torch.stack(terms, dim=1)


AUX_DENSE_RATIO = 16
"""AuxK decodes densely over a layer's dead features (BLAS matmuls, the top aux_k kept by a
mask) when at most this many times aux_k are dead; beyond, it decodes its aux_k per token
sparsely (`embedding_bag`, and W_enc's gradient by a sparse-dense matmul)."""


def _sparse_columns(grad: Tensor, ids: Tensor, shape: torch.Size) -> Tensor:
    """grad [rows, len(ids)] -> a sparse COO tensor of `shape` holding it in columns ids."""
    rows = torch.arange(shape[0], device=grad.device).repeat_interleave(ids.numel())
    indices = torch.stack([rows, ids.repeat(shape[0])])
    return torch.sparse_coo_tensor(
        indices, grad.reshape(-1), shape, check_invariants=False, is_coalesced=True
    )


def _sparse_rows(grad: Tensor, ids: Tensor, shape: torch.Size) -> Tensor:
    """grad [len(ids), ...] -> a (hybrid) sparse COO tensor of `shape` holding it in rows ids."""
    return torch.sparse_coo_tensor(
        ids[None], grad, shape, check_invariants=False, is_coalesced=True
    )


class _FlatRows(torch.autograd.Function):
    """W_dec [n, n_out, d] viewed as [n, n_out · d], whose gradient is no autograd view
    (`_unsafe_view`), so that AuxK's sparse gradient adds into it in place (a view's
    gradient is added to out of place: a copy of W_dec per layer and step)."""

    @staticmethod
    def forward(ctx: Any, weight: Tensor) -> Tensor:
        ctx.shape = weight.shape
        return weight.view(weight.shape[0], -1)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return torch.ops.aten._unsafe_view(grad, ctx.shape)


def flat_decoder(weight: Tensor) -> Tensor:
    """W_dec as [n_features, n_outputs · d_model] (a PLT's as it is)."""
    return weight if weight.dim() == 2 else _FlatRows.apply(weight)  # type: ignore[return-value]


class _SelectRows(torch.autograd.Function):
    """weight[ids] (ids sorted, unique), with a sparse gradient: a few rows of a large
    parameter cost no zero-filled, parameter-sized gradient (autograd adds the sparse
    gradient into the dense one of the main loss)."""

    @staticmethod
    def forward(ctx: Any, weight: Tensor, ids: Tensor) -> Tensor:
        ctx.save_for_backward(ids)
        ctx.shape = weight.shape
        return weight.index_select(0, ids)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None]:
        (ids,) = ctx.saved_tensors
        return _sparse_rows(grad.contiguous(), ids, ctx.shape), None


class _AuxEncode(torch.autograd.Function):
    """The top k of the dead features' pre-activations h[:, ids] per token (h = x W_enc + b_enc
    of the main pass, reused: no second encoder matmul), ReLU'd if `relu`; W_enc's and
    b_enc's gradients are sparse (columns ids only).

    dense: ([batch, n_dead] with the rest zeroed, None), in h's dtype (bf16 under autocast,
    as is the matmul of W_enc's gradient); else (values [batch, k] in W_enc's dtype,
    positions [batch, k] into ids), W_enc's gradient by a sparse-dense matmul.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        weight: Tensor,
        bias: Tensor,
        h: Tensor,
        ids: Tensor,
        k: int,
        relu: bool,
        dense: bool,
    ) -> tuple[Tensor, Tensor | None]:
        h_dead = h.index_select(1, ids)
        positions = None
        if k < h_dead.shape[1]:
            values, positions = h_dead.topk(k, dim=-1, sorted=False)
            if dense:
                values = torch.zeros_like(h_dead).scatter_(1, positions, values)
        else:
            values = h_dead
        if not dense:
            values = values.to(weight.dtype)
        if relu:
            values = torch.relu(values)
        ctx.save_for_backward(x, values, ids, positions)
        ctx.relu, ctx.dense = relu, dense
        ctx.shapes = (weight.shape, bias.shape, weight.dtype)
        if positions is not None and not dense:
            ctx.mark_non_differentiable(positions)
        ctx.set_materialize_grads(False)
        return values, (None if dense else positions)

    @staticmethod
    def backward(
        ctx: Any, grad: Tensor | None, _grad_positions: Tensor | None
    ) -> tuple[Tensor | None, ...]:
        x, values, ids, positions = ctx.saved_tensors
        none = (None,) * 8
        if grad is None:
            return none
        weight_shape, bias_shape, dtype = ctx.shapes
        kept: Tensor = grad * (values > 0) if ctx.relu else grad
        grad = kept.to(values.dtype)
        if ctx.dense:
            grad_cols = (x.to(values.dtype).t() @ grad).to(dtype)  # [d, n_dead]
            grad_bias = grad.to(dtype).sum(0)
        else:
            assert positions is not None
            grad_cols = encoder_weight_grad(x.to(dtype), grad, positions, ids.numel()).t()
            grad_bias = torch.zeros(ids.numel(), dtype=dtype, device=grad.device)
            grad_bias.index_add_(0, positions.reshape(-1), grad.reshape(-1))
        return (
            None,
            _sparse_columns(grad_cols.contiguous(), ids, weight_shape),
            _sparse_rows(grad_bias, ids, bias_shape),
            *none[3:],
        )


def aux_reconstruction(
    transcoder: Transcoder,
    mlp_in: Tensor,
    pre_activations: Sequence[Tensor],
    dead: Sequence[Tensor],
    aux_k: int,
) -> dict[int, Tensor] | None:
    """AuxK's reconstruction from dead features (Gao et al. 2024, A.2).

    mlp_in: [batch, n_layers, d_model]; pre_activations: the training pass's on it, per
    layer [batch, n_features] (reused); dead[l]: the sorted, distinct indices (int64, on
    mlp_in's device) of layer l's features counted dead. For each token and layer, the
    min(aux_k, n_dead) largest pre-activations among that layer's dead features only
    (ReLU'd, unless the activation keeps negative values) are decoded by their decoder
    rows to each of the layer's output layers (a CLT's: every later layer), without b_dec.
    Returns {output layer: [batch, d_model]} for the output layers some dead feature
    decodes to (bf16 under autocast), or None when no feature is dead.

    Only the dead features' columns of W_enc and rows of W_dec are read, and their
    gradients are sparse (added in place into the main loss's dense ones): about
    4 · batch · d_model · n_dead multiply-adds per layer and output layer (when at most
    AUX_DENSE_RATIO · aux_k are dead; else ~ aux_k in place of n_dead), and nothing for a
    layer without dead features.
    """
    config = transcoder.config
    batch, n_layers, d = mlp_in.shape
    parts: list[Tensor] = []
    starts: list[int] = []
    covered: set[int] = set()
    for layer in range(n_layers):
        ids = dead[layer]
        n_dead = int(ids.numel())
        if n_dead == 0:
            continue
        block = transcoder.layer(layer)
        k = min(aux_k, n_dead)
        dense = k == n_dead or n_dead <= AUX_DENSE_RATIO * k
        relu = bool(getattr(block.activation, "relu", True))
        x = mlp_in[:, layer].to(block.W_enc.dtype)
        h = pre_activations[layer].detach()
        values, positions = _AuxEncode.apply(  # type: ignore[misc]
            x, block.W_enc, block.b_enc, h, ids, k, relu, dense
        )
        decoder = _SelectRows.apply(block.W_dec, ids).reshape(n_dead, -1)  # type: ignore[union-attr]
        flat = values @ decoder if dense else sparse_decode(values, positions, decoder)
        parts.append(flat.view(batch, config.n_outputs(layer), d))
        outputs = config.output_layers(layer)
        starts.append(outputs.start)
        covered.update(outputs)
    if not parts:
        return None
    if config.kind == "plt":
        return {start: part[:, 0] for start, part in zip(starts, parts, strict=True)}
    summed = sum_layer_outputs(parts, tuple(starts), n_layers)
    return {layer: summed[:, layer] for layer in sorted(covered)}


class _SumLayerOutputs(torch.autograd.Function):
    """Σ of [batch, n_l, d] parts into [batch, L, d] rows start_l..; backward: slices (views)."""

    @staticmethod
    def forward(ctx: Any, starts: tuple[int, ...], n_layers: int, *parts: Tensor) -> Tensor:
        batch, _, d = parts[0].shape
        total = torch.zeros(batch, n_layers, d, dtype=torch.float32, device=parts[0].device)
        for start, part in zip(starts, parts, strict=True):
            total[:, start : start + part.shape[1]] += part
        ctx.spans = [
            (start, part.shape[1], part.dtype) for start, part in zip(starts, parts, strict=True)
        ]
        return total

    @staticmethod
    def backward(ctx: Any, *grad_outputs: Tensor) -> tuple[Tensor | None, ...]:
        (grad,) = grad_outputs
        parts = [grad[:, start : start + n].to(dtype) for start, n, dtype in ctx.spans]
        return (None, None, *parts)


def sum_layer_outputs(parts: list[Tensor], starts: tuple[int, ...], n_layers: int) -> Tensor:
    """parts[i]: [batch, n_i, d], the contributions to layers starts[i] .. starts[i] + n_i - 1
    -> [batch, n_layers, d] float32, their sum per layer.

    One accumulation in fp32 (also under bf16 autocast); the backward hands each part
    a slice of the output's gradient, with no per-layer zero-filled tensors (per-slot
    indexing made autograd zero-fill and add a [batch, n_i, d] tensor for every slot:
    a third of a CLT step's time at 30 layers).
    """
    return _SumLayerOutputs.apply(starts, n_layers, *parts)  # type: ignore[no-any-return]


def decoder_norms(transcoder: Transcoder) -> list[Tensor]:
    """Per layer [n_features]: each feature's decoder norm over all its output layers."""
    out = []
    for layer in range(transcoder.config.n_layers):
        block = transcoder.layer(layer)
        out.append(block.W_dec.reshape(block.n_features, -1).norm(dim=1))
    return out


def thresholds(transcoder: Transcoder) -> list[Tensor] | None:
    """Per layer [n_features] JumpReLU thresholds, or None for other activations."""
    out = []
    for layer in range(transcoder.config.n_layers):
        activation = transcoder.layer(layer).activation
        if not isinstance(activation, JumpReLU):
            return None
        out.append(activation.threshold)
    return out


def parameter_list(transcoder: Transcoder) -> list[tuple[str, torch.nn.Parameter]]:
    """(name, parameter) in a fixed order: the optimizer's and the checkpoint's."""
    return [
        (name, param)
        for layer in range(transcoder.config.n_layers)
        for name, param in sorted(
            (f"{layer}.{n}", p) for n, p in transcoder.layer(layer).named_parameters()
        )
    ]


@torch.no_grad()
def clamp_thresholds(transcoder: Transcoder, minimum: float = 1e-4) -> None:
    """Keep JumpReLU thresholds positive after an optimizer step."""
    for theta in thresholds(transcoder) or []:
        theta.clamp_(min=minimum)
