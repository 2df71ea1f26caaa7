"""Interventions on the original model: features and error nodes set, scaled or added.

The original model runs; at each layer the transcoder reads its live input (the MLP
input, or the residual stream before the MLP's norm for a `resid_mid` transcoder),
the intervened features get their new activations, and the difference between
new and old activation times the feature's decoder vectors is added to the MLP
output of every layer the feature decodes to. An error node's change adds a
multiple of its error vector (m_out − ŷ) to its layer's MLP output.

Two switches say how far an intervention's effect travels:

- `freeze_attention`: replay the clean run's attention probabilities, or let
  them respond; `freeze_norms` also replays the norm scales (together: the
  frozen linear residual path of the local replacement model).
- `constrained_layers`: in these layers the MLP output is held at its clean
  value (every feature and error node fixed) plus the intervention's own
  decoded changes: effects reach later nodes only directly ("constrained
  patching"). In other layers the real MLP recomputes, so effects propagate
  through it ("iterative patching", the default).
- `mlp="replacement"`: outside constrained layers the local replacement model
  recomputes instead of the real MLP: features from the live input, error
  nodes held. Comparing it with the real MLP separates what the graph's
  linearisation misses from what the transcoder misses.

With every layer constrained and attention and norms frozen, the change of a downstream
feature's pre-activation is exactly the graph's edge weight times the change
of the source's activation. Position 0 (the BOS attention sink) has no
features or error nodes, as in the graph.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from circuitscope.attribution.replacement import encode_prompt
from circuitscope.attribution.sink import NODE_POSITIONS, clear_sink
from circuitscope.errors import CircuitscopeError
from circuitscope.interventions.spec import Intervention, check_interventions
from circuitscope.models import sites
from circuitscope.models.adapter import ModelAdapter, Recording
from circuitscope.models.frozen import FrozenState
from circuitscope.transcoders.checks import check_against_model
from circuitscope.transcoders.transcoder import Transcoder


@dataclass(frozen=True)
class PatchSettings:
    freeze_attention: bool = True
    """Replay the clean run's attention probabilities."""
    freeze_norms: bool = False
    """Also replay its norm scales: the graph's fully linear residual path. Exact for
    constrained patching; with live MLPs an unnormalised residual can blow up."""
    constrained_layers: range | None = None
    """Layers whose MLP outputs stay clean apart from the intervention's own writes."""
    mlp: Literal["model", "replacement"] = "model"
    """Outside constrained layers: the real MLP recomputes ("model"), or the local
    replacement model does: live transcoder features plus the clean error nodes."""
    keep_activations: bool = True
    """Return every feature's activation and pre-activation (memory: batch·seq·features)."""


@dataclass
class CleanRun:
    """The unintervened run: recorded sites and the transcoder's view of it."""

    recording: Recording
    activations: dict[int, Tensor]
    """Per layer [seq, n_features] (position 0 zero)."""
    input_kind: str = "mlp_in"
    """The transcoder's input site kind (see `TranscoderConfig.input_kind`)."""

    @property
    def logits(self) -> Tensor:
        return self.recording.logits

    def mlp_out(self, layer: int) -> Tensor:
        return self.recording.cache[sites.mlp_out(layer)][0]

    def inputs(self, layer: int) -> Tensor:
        """The transcoder's input at `layer` in this run: [seq, d_model]."""
        return self.recording.cache[sites.transcoder_input(self.input_kind, layer)][0]


@dataclass
class InterventionResult:
    """A batch of intervened runs: element b is the b-th intervention set."""

    logits: Tensor
    """[batch, seq, vocab] as the model returns them."""
    final_normed: Tensor
    """[batch, seq, d_model] the final norm's output (logit directions read from it)."""
    clean: CleanRun | None
    """The unintervened run, when one was needed or asked for."""
    activations: dict[int, Tensor] = field(default_factory=dict)
    """Per layer [batch, seq, n_features]: the activations the run used (kept only on request)."""
    pre_activations: dict[int, Tensor] = field(default_factory=dict)
    """Per layer [batch, seq, n_features]: W_enc·x + b_enc of the transcoder's live input."""

    def top_tokens(
        self, batch: int = 0, k: int = 10, position: int = -1
    ) -> list[tuple[int, float]]:
        """The k most likely next tokens at `position` of run `batch`: (token id, probability)."""
        probs = torch.softmax(self.logits[batch, position].float(), dim=-1)
        top = probs.topk(k)
        return list(zip(top.indices.tolist(), top.values.tolist(), strict=True))

    def changed_features(
        self, batch: int = 0, count: int = 20, tolerance: float = 1e-6
    ) -> list[FeatureChange]:
        """The `count` features of run `batch` whose activation moved most from the clean run."""
        if self.clean is None or not self.activations:
            raise CircuitscopeError("changed features need keep_activations=True")
        changes: list[FeatureChange] = []
        for layer, acts in self.activations.items():
            before = self.clean.activations[layer].to(acts.dtype)
            delta = (acts[batch] - before).abs().flatten()
            k = min(count, int((delta > tolerance).sum()))
            for index in delta.topk(k).indices.tolist() if k else []:
                pos, feature = divmod(index, acts.shape[-1])
                old, new = float(before[pos, feature]), float(acts[batch, pos, feature])
                changes.append(FeatureChange(layer, pos, feature, old, new))
        changes.sort(key=lambda change: abs(change.after - change.before), reverse=True)
        return changes[:count]


@dataclass(frozen=True)
class FeatureChange:
    layer: int
    position: int
    feature: int
    before: float
    """The activation in the clean run."""
    after: float
    """The activation in the intervened run."""


def clean_run(adapter: ModelAdapter, transcoder: Transcoder, input_ids: Tensor) -> CleanRun:
    """Record the prompt once and encode every layer. input_ids: [1, seq]."""
    encoded = encode_prompt(adapter, transcoder, input_ids)
    return CleanRun(encoded.recording, encoded.activations, transcoder.config.input_kind)


def intervene(
    adapter: ModelAdapter,
    transcoder: Transcoder,
    input_ids: Tensor,
    batches: Sequence[Sequence[Intervention]],
    settings: PatchSettings = PatchSettings(),
    clean: CleanRun | None = None,
) -> InterventionResult:
    """Run the prompt once per intervention set, all in one batch. input_ids: [1, seq].

    batches: one list of interventions per batch element (an empty list is the
    clean run). `clean` may be passed to reuse an earlier recording of the prompt.
    """
    if input_ids.ndim != 2 or input_ids.shape[0] != 1:
        raise CircuitscopeError(f"expected one prompt [1, seq], got {tuple(input_ids.shape)}")
    check_against_model(transcoder, adapter)
    if not batches:
        raise CircuitscopeError("no intervention sets given")
    seq = int(input_ids.shape[1])
    layers = settings.constrained_layers
    if layers is not None and (len(layers) == 0 or layers[0] < 0 or layers[-1] >= adapter.n_layers):
        raise CircuitscopeError(
            f"constrained layers {layers.start}-{layers.stop - 1} are not within the model's "
            f"layers 0-{adapter.n_layers - 1}"
        )
    for items in batches:
        check_interventions(items, adapter.n_layers, transcoder.config.n_features, seq)
    if clean is None and _needs_clean(settings):
        clean = clean_run(adapter, transcoder, input_ids)
    patcher = _Patcher(adapter, transcoder, batches, settings, clean, seq)
    frozen = _frozen_state(settings, clean)
    with torch.no_grad():
        result = adapter.run(
            input_ids.expand(len(batches), -1),
            frozen=frozen,
            mlp_edit={layer: patcher.edit(layer) for layer in range(adapter.n_layers)},
            capture=[sites.FINAL_NORM],
            live_input=transcoder.config.input_kind,
        )
    return InterventionResult(
        logits=result.logits,
        final_normed=result.cache[sites.FINAL_NORM],
        clean=clean,
        activations=patcher.kept_activations,
        pre_activations=patcher.kept_pre_activations,
    )


def _frozen_state(settings: PatchSettings, clean: CleanRun | None) -> FrozenState | None:
    if settings.freeze_norms and not settings.freeze_attention:
        raise CircuitscopeError("freezing norm scales needs attention frozen too")
    if not settings.freeze_attention or clean is None:
        return None
    frozen = clean.recording.frozen
    return frozen if settings.freeze_norms else frozen.attention_only()


def _needs_clean(settings: PatchSettings) -> bool:
    held = settings.constrained_layers is not None or settings.mlp == "replacement"
    return settings.freeze_attention or held or settings.keep_activations


class _Patcher:
    """The per-layer MLP edits of one batched intervened run (layers run in order)."""

    def __init__(
        self,
        adapter: ModelAdapter,
        transcoder: Transcoder,
        batches: Sequence[Sequence[Intervention]],
        settings: PatchSettings,
        clean: CleanRun | None,
        seq: int,
    ) -> None:
        self.transcoder, self.settings, self.clean = transcoder, settings, clean
        self.batch, self.seq, self.d_model = len(batches), seq, adapter.d_model
        self.dtype = adapter.accumulation_dtype
        self.ops: dict[int, list[tuple[int, Intervention]]] = defaultdict(list)
        for b, items in enumerate(batches):
            for item in items:
                self.ops[item.layer].append((b, item))
        self.track_base = any(item.is_error for items in batches for item in items)
        self.base: dict[int, Tensor] = {}
        self.pending: dict[int, Tensor] = {}
        self.kept_activations: dict[int, Tensor] = {}
        self.kept_pre_activations: dict[int, Tensor] = {}

    def constrained(self, layer: int) -> bool:
        layers = self.settings.constrained_layers
        return layers is not None and layer in layers

    def edit(self, layer: int):
        def apply(x: Tensor, m_out: Tensor) -> Tensor:
            return self._layer(layer, x, m_out)

        return apply

    def held(self, layer: int) -> bool:
        """Whether this layer's MLP output is the clean one plus decoded feature changes."""
        return self.constrained(layer) or self.settings.mlp == "replacement"

    def _layer(self, layer: int, x: Tensor, m_out: Tensor) -> Tensor:
        feature_ops = [(b, i) for b, i in self.ops.get(layer, []) if not i.is_error]
        error_ops = [(b, i) for b, i in self.ops.get(layer, []) if i.is_error]
        live_needed = bool(feature_ops) or self.settings.mlp == "replacement"
        base = self._base_activations(layer, x, need_live=live_needed)
        if base is not None:
            new = _apply_feature_ops(base, feature_ops)
            reference = self._clean_activations(layer) if self.held(layer) else base
            self._write_decoded(layer, new - reference)
            if self.settings.keep_activations:
                self.kept_activations[layer] = new
            if self.track_base:
                self.base[layer] = base
        out = self._clean_out(layer, x) if self.held(layer) else m_out.to(self.dtype)
        out = out + self.pending.pop(layer, 0.0)
        if error_ops:
            errors = self._errors(layer, x, m_out)
            out = out + _error_changes(errors, error_ops)
        return out

    def _clean_activations(self, layer: int) -> Tensor:
        assert self.clean is not None
        return self.clean.activations[layer].to(self.dtype).expand(self.batch, -1, -1)

    def _base_activations(self, layer: int, x: Tensor, need_live: bool) -> Tensor | None:
        """The activations before this layer's interventions: [batch, seq, n_f], or None."""
        keep = self.settings.keep_activations
        constrained = self.constrained(layer)
        if keep or self.track_base or (need_live and not constrained):
            pre = self.transcoder.pre_activations(layer, x).to(self.dtype)
            if keep:
                self.kept_pre_activations[layer] = pre
            if not constrained:
                live = self.transcoder.encoder(layer).activation(pre).to(self.dtype)
                return clear_sink(live)
        if constrained or need_live:
            return self._clean_activations(layer)
        return None

    def _clean_out(self, layer: int, x: Tensor) -> Tensor:
        """The clean MLP output, with the (linear, live) skip term recomputed: [b, seq, d]."""
        assert self.clean is not None
        out = self.clean.mlp_out(layer).to(self.dtype).expand(self.batch, -1, -1)
        if self.transcoder.config.skip_connection:
            clean_x = self.clean.inputs(layer).to(self.dtype)
            skip = self.transcoder.skip
            out = out + skip(layer, x.to(self.dtype)) - skip(layer, clean_x)
        return out

    def _write_decoded(self, layer: int, delta: Tensor) -> None:
        """Add delta [batch, seq, n_f] (sparse) times the decoders to every output layer."""
        b, p, f = torch.nonzero(delta, as_tuple=True)
        if len(f) == 0:
            return
        writes = self.transcoder.feature_writes(layer, f, delta[b, p, f].to(self.dtype))
        for out_layer, vectors in writes.items():
            target = self.pending.get(out_layer)
            if target is None:
                shape = (self.batch, self.seq, self.d_model)
                target = torch.zeros(shape, dtype=self.dtype, device=delta.device)
                self.pending[out_layer] = target
            target.index_put_((b, p), vectors, accumulate=True)

    def _errors(self, layer: int, x: Tensor, m_out: Tensor) -> Tensor:
        """The error vectors m_out − ŷ of this layer before intervention: [batch, seq, d]."""
        if self.held(layer):
            acts = {source: self._clean_activations(source) for source in range(layer + 1)}
            assert self.clean is not None
            x = self.clean.inputs(layer).expand_as(x)
            m_out = self.clean.mlp_out(layer).expand_as(m_out)
        else:
            acts = {source: self.base[source] for source in range(layer + 1)}
        recon = _reconstruction(self.transcoder, layer, acts, x.to(self.dtype))
        return m_out.to(self.dtype) - recon


def _reconstruction(
    transcoder: Transcoder, layer: int, acts: dict[int, Tensor], x: Tensor
) -> Tensor:
    """ŷ of `layer` from the activations of every layer that decodes to it: [batch, seq, d].
    x: the transcoder's input at `layer` (for the skip term)."""
    total = transcoder.fixed_output(layer, x).to(x.dtype)
    for source, source_acts in acts.items():
        slot = transcoder.config.output_slot(source, layer)
        if slot is not None:
            decoders = transcoder.layer(source).decoders()[:, slot]
            total = total + source_acts @ decoders.to(x.dtype)
    return total


def _positions(item: Intervention) -> slice | int:
    """Where an intervention applies; every position means every one but the sink."""
    return NODE_POSITIONS if item.position is None else item.position


def _apply_feature_ops(base: Tensor, ops: list[tuple[int, Intervention]]) -> Tensor:
    """base [batch, seq, n_f] with each (batch element, intervention) applied in order."""
    if not ops:
        return base
    new = base.clone()
    for b, item in ops:
        where = (b, _positions(item), item.feature)
        old = new[where]
        if item.operation == "set":
            new[where] = torch.full_like(old, item.value)
        elif item.operation == "scale":
            new[where] = old * item.value
        else:
            new[where] = old + item.value
    return new


def _error_changes(errors: Tensor, ops: list[tuple[int, Intervention]]) -> Tensor:
    """What the error interventions add to the MLP output: [batch, seq, d].

    An error node's activation is 1, so its new activation is a factor on its vector.
    """
    factor = torch.ones(errors.shape[:2], dtype=errors.dtype, device=errors.device)
    for b, item in ops:
        where = (b, _positions(item))
        if item.operation == "set":
            factor[where] = item.value
        elif item.operation == "scale":
            factor[where] = factor[where] * item.value
        else:
            factor[where] = factor[where] + item.value
    return (factor - 1.0).unsqueeze(-1) * errors
