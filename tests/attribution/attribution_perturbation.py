"""Measure a graph's edges directly: perturb one source at a time in the frozen model.

Every MLP output is held at its constant (features fixed, error nodes fixed),
attention and norm scales are frozen; a source's output vector is added where it
writes (a feature: each layer it decodes to, at its position; an error node: its
layer and position; a token: the embedding at its position), and the change of
every target's input is read off: a feature's pre-activation W_enc·m_in, a logit
target's direction · final-norm output. Linear, so the change is the edge weight.
"""

from __future__ import annotations

import torch
from torch import Tensor

from circuitscope.attribution.replacement import LocalReplacement
from circuitscope.graph.graph import ERROR, FEATURE, LOGIT, TOKEN, Graph
from circuitscope.models import sites


def source_perturbations(
    rep: LocalReplacement, graph: Graph, column: int
) -> tuple[dict[int, Tensor], Tensor]:
    """(per-layer additions to the MLP outputs [seq, d], addition to the embedding [seq, d])."""
    seq, d = rep.seq_len, rep.adapter.d_model
    kind = int(graph.node_kind[column])
    layer, pos = int(graph.node_layer[column]), int(graph.node_position[column])
    mlp: dict[int, Tensor] = {}
    embed = torch.zeros(seq, d, dtype=rep.dtype)
    if kind == FEATURE:
        index = torch.tensor([int(graph.node_feature[column])])
        decoders = rep.transcoder.active_decoders(layer, index)[0].to(rep.dtype)
        value = graph.node_value[column].to(rep.dtype)
        outputs = rep.transcoder.config.output_layers(layer)
        for slot, out_layer in enumerate(outputs):
            mlp[out_layer] = _at(seq, d, pos, value * decoders[slot], rep.dtype)
    elif kind == ERROR:
        vector = rep.errors[layer, pos] if pos > 0 else torch.zeros(d, dtype=rep.dtype)
        mlp[layer] = _at(seq, d, pos, vector, rep.dtype)  # BOS: no error node (a constant)
    elif kind == TOKEN:
        embed[pos] = rep.recording.cache[sites.EMBED][0, pos].to(rep.dtype)
    return mlp, embed


def _at(seq: int, d: int, pos: int, vector: Tensor, dtype: torch.dtype) -> Tensor:
    out = torch.zeros(seq, d, dtype=dtype)
    out[pos] = vector
    return out


def target_inputs(
    rep: LocalReplacement, graph: Graph, cache: dict[str, Tensor], directions: Tensor
) -> Tensor:
    """[batch, n_targets] each feature target's pre-activation, each logit direction's value."""
    values = []
    for node in range(graph.n_nodes):
        kind = int(graph.node_kind[node])
        if kind == FEATURE:
            layer, pos = int(graph.node_layer[node]), int(graph.node_position[node])
            encoder = rep.transcoder.layer(layer).W_enc[:, int(graph.node_feature[node])]
            x = cache[rep.input_site(layer)][:, pos].to(rep.dtype)
            values.append(x @ encoder.to(rep.dtype))
    normed = cache[sites.FINAL_NORM][:, -1].to(rep.dtype)
    for direction in directions:
        values.append(normed @ direction.to(rep.dtype))
    return torch.stack(values, dim=1)


def measured_columns(
    rep: LocalReplacement, graph: Graph, columns: list[int], directions: Tensor
) -> Tensor:
    """[n_targets, len(columns)]: the measured effect of each source column on every target."""
    constants = rep.constant_outputs(with_errors=True)
    base_embed = rep.recording.cache[sites.EMBED].to(rep.adapter.dtype)
    batch = len(columns) + 1
    mlp_out = {layer: c.to(rep.adapter.dtype).repeat(batch, 1, 1) for layer, c in constants.items()}
    embed = base_embed.repeat(batch, 1, 1)
    for row, column in enumerate(columns, start=1):
        mlp_add, embed_add = source_perturbations(rep, graph, column)
        for layer, addition in mlp_add.items():
            mlp_out[layer][row] += addition.to(mlp_out[layer].dtype)
        embed[row] += embed_add.to(embed.dtype)
    replacements = {layer: rep.with_skip(layer, value) for layer, value in mlp_out.items()}
    capture = [rep.input_site(layer) for layer in range(rep.n_layers)] + [sites.FINAL_NORM]
    with torch.no_grad():
        result = rep.adapter.run(
            rep.input_ids.expand(batch, -1),
            frozen=rep.recording.frozen,
            mlp_out=replacements,
            embed=embed,
            capture=capture,
            live_input=rep.live_input,
        )
    values = target_inputs(rep, graph, result.cache, directions)
    return (values[1:] - values[:1]).T


def target_rows(graph: Graph) -> Tensor:
    """Indices of the nodes that are targets (features and logits)."""
    return torch.nonzero((graph.node_kind == FEATURE) | (graph.node_kind == LOGIT)).flatten()


def source_columns(graph: Graph) -> Tensor:
    """Indices of the nodes that are sources (features, errors, tokens)."""
    return torch.nonzero(graph.node_kind != LOGIT).flatten()
