"""The one way the rest of circuitscope touches a model.

`ModelAdapter` wraps a transformers causal LM of a supported architecture. A run
can record every site (see `sites`), replace MLP outputs, replace the residual
stream entering layer 0, and replay a recorded run's attention probabilities
and norm scales ("frozen mode"), so that gradients flow linearly through the
residual path. Hooks live only for the duration of a run; the wrapped model is
left as transformers built it, except that its attention implementation is
`circuitscope` (which computes the same function).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from transformers import PreTrainedModel

from circuitscope.errors import CircuitscopeError
from circuitscope.models import sites
from circuitscope.models.architectures import (
    ArchitectureSpec,
    NormKind,
    d_mlp_of,
    spec_for_config,
)
from circuitscope.models.attention import (
    ATTENTION_NAME,
    PROBE_ATTRIBUTE,
    AttentionProbe,
    register_attention,
)
from circuitscope.models.frozen import FrozenState
from circuitscope.models.norms import frozen_norm, norm_scale


@dataclass
class ForwardResult:
    logits: Tensor
    """What the HF model returns: [batch, seq, vocab] (after any soft-cap)."""
    cache: dict[str, Tensor] = field(default_factory=dict)
    """Recorded sites by name (see `circuitscope.models.sites`), [batch, seq, d]."""
    frozen: FrozenState | None = None
    """The attention probabilities and norm scales of this run, when recorded."""


@dataclass
class Recording:
    """A run recorded in full: every site, and the state that frozen mode replays."""

    input_ids: Tensor
    """[batch, seq] token ids."""
    logits: Tensor
    """[batch, seq, vocab], as the HF model returns them."""
    cache: dict[str, Tensor]
    """Every site (see `circuitscope.models.sites`), detached, [batch, seq, d_model]."""
    frozen: FrozenState
    """Attention probabilities and norm scales, for frozen mode."""

    def mlp_outputs(self) -> dict[int, Tensor]:
        """Every layer's recorded MLP output, keyed by layer."""
        return {layer: self.cache[sites.mlp_out(layer)] for layer in self.frozen.attention}


MlpOutput = Tensor | Callable[[Tensor], Tensor]
"""An MLP output: a tensor [batch or 1, seq, d_model], or a function of the layer's
live input [batch, seq, d_model] returning one (e.g. constants + a linear skip). The
live input is the run's `live_input` site: the MLP input, or `resid_mid`."""

MlpEdit = Callable[[Tensor, Tensor], Tensor]
"""A change to an MLP that still runs: (live input, its output), both
[batch, seq, d_model] -> the output to use instead. The live input as for `MlpOutput`."""


@dataclass
class _RunPlan:
    record: bool
    keep_graph: bool
    frozen: FrozenState | None
    mlp_out: Mapping[int, MlpOutput]
    embed: Tensor | None
    capture: frozenset[str] = frozenset()
    mlp_edit: Mapping[int, MlpEdit] = field(default_factory=dict)
    live_input: str = "mlp_in"
    live: dict[int, Tensor] = field(default_factory=dict)
    """Per layer, the live input handed to functional replacements and edits."""
    cache: dict[str, Tensor] = field(default_factory=dict)
    scales: dict[str, Tensor] = field(default_factory=dict)
    capture_as: Callable[[str, Tensor], Tensor] | None = None

    def keep_live(self, kind: str, index: int, value: Tensor) -> None:
        """Hold `value` for this layer's replacement or edit if it is the live input."""
        if kind == self.live_input and (
            callable(self.mlp_out.get(index)) or index in self.mlp_edit
        ):
            self.live[index] = value

    def keep(self, name: str, value: Tensor) -> None:
        if self.record or name in self.capture:
            value = value if self.keep_graph else value.detach()
            self.cache[name] = value if self.capture_as is None else self.capture_as(name, value)


class ModelAdapter:
    """Sites, replacement and frozen mode for one supported causal LM."""

    def __init__(self, model: PreTrainedModel) -> None:
        self.model = model
        self.spec: ArchitectureSpec = spec_for_config(model.config)
        register_attention()
        model.set_attn_implementation(ATTENTION_NAME)
        layers = model.get_submodule(self.spec.layers)
        assert isinstance(layers, nn.ModuleList)
        self.layers: list[nn.Module] = list(layers)
        self.embedding = model.get_submodule(self.spec.embed)
        self.final_norm = model.get_submodule(self.spec.final_norm)
        self.unembedding = model.get_submodule(self.spec.unembed)
        self.probes: list[AttentionProbe] = []
        for index, layer in enumerate(self.layers):
            probe = AttentionProbe(layer=index)
            setattr(layer.get_submodule(self.spec.attention), PROBE_ATTRIBUTE, probe)
            self.probes.append(probe)

    # --- shapes -----------------------------------------------------------------
    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def d_model(self) -> int:
        return int(self.config.hidden_size)

    @property
    def d_mlp(self) -> int:
        return d_mlp_of(self.config)

    @property
    def vocab_size(self) -> int:
        weight = self.unembedding.weight
        assert isinstance(weight, Tensor)
        return int(weight.shape[0])

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def accumulation_dtype(self) -> torch.dtype:
        """fp64 for an fp64 model (exact checks), else fp32 (bf16 models accumulate in fp32)."""
        return torch.float64 if self.dtype == torch.float64 else torch.float32

    @property
    def softcap(self) -> float | None:
        """The final logit soft-cap (Gemma-2/3), or None."""
        if self.spec.final_softcap is None:
            return None
        value = getattr(self.config, self.spec.final_softcap, None)
        return float(value) if value else None

    @property
    def max_positions(self) -> int | None:
        for name in ("max_position_embeddings", "n_positions"):
            value = getattr(self.config, name, None)
            if value:
                return int(value)
        return None

    def norm_paths(self) -> list[str]:
        """Every frozen norm: per-layer ones as `layers.{l}.{name}`, then `final_norm`."""
        paths = [f"layers.{i}.{name}" for i in range(self.n_layers) for name in self.spec.norms]
        return [*paths, sites.FINAL_NORM]

    def hook_points(self) -> dict[str, str]:
        """Each site of layer 0 and the model ends, with the module path that provides it."""
        layer0 = f"{self.spec.layers}.0"
        return {
            sites.EMBED: f"input of {layer0}",
            sites.resid_pre(0): f"input of {layer0}",
            sites.resid_mid(0): f"input of {layer0}.{self.spec.mlp_norm}",
            sites.mlp_in(0): f"input of {layer0}.{self.spec.mlp}",
            sites.mlp_out(0): f"output of {layer0}.{self.spec.mlp_out}",
            sites.resid_post(0): f"output of {layer0}",
            sites.FINAL_NORM: f"output of {self.spec.final_norm}",
            "logits": f"output of {self.spec.unembed}",
        }

    # --- the unembedding ----------------------------------------------------------
    @property
    def unembed_weight(self) -> Tensor:
        """W_U as stored: [vocab, d_model]."""
        weight = self.unembedding.weight
        assert isinstance(weight, Tensor)
        return weight

    def logits_from_normed(self, normed: Tensor) -> Tensor:
        """Logits before any soft-cap. normed: [..., d_model] -> [..., vocab]."""
        return self.unembedding(normed)

    # --- runs -------------------------------------------------------------------
    def run(
        self,
        input_ids: Tensor,
        *,
        record: bool = False,
        keep_graph: bool = False,
        frozen: FrozenState | None = None,
        mlp_out: Mapping[int, MlpOutput] | None = None,
        embed: Tensor | None = None,
        capture: Collection[str] = (),
        unembed: bool = True,
        mlp_edit: Mapping[int, MlpEdit] | None = None,
        capture_as: Callable[[str, Tensor], Tensor] | None = None,
        live_input: str = "mlp_in",
    ) -> ForwardResult:
        """One forward pass. input_ids: [batch, seq].

        record: keep every site in `result.cache` (detached unless `keep_graph`), and
            the attention probabilities and norm scales in `result.frozen`.
        capture: keep just these sites (names from `sites`), without the cost of
            recording attention: the fast path for collecting training activations.
        unembed: False stops at the final norm (capture `sites.FINAL_NORM`); the
            result's logits are then an empty tensor.
        frozen: replay these attention probabilities and norm scales (norms run live
            when the state has no scales: `FrozenState.attention_only`).
        mlp_out: per layer, the MLP output to use: a tensor [batch or 1, seq, d_model],
            or a function of that layer's MLP input returning one.
        embed: the residual stream entering layer 0, [batch or 1, seq, d_model].
        mlp_edit: per layer, a function (live input, MLP output) -> new output,
            applied after any `mlp_out` replacement; the MLP itself still runs unless
            replaced. Interventions use it.
        live_input: which live value `mlp_out` functions and `mlp_edit` receive: "mlp_in"
            (the MLP's input) or "resid_mid" (the residual before the MLP's norm): the
            input site of the transcoder they apply.
        capture_as: turns each captured site (name, value) into what the cache keeps,
            as soon as it is computed (a small handle for a later backward, say), so
            the site's activations need not live until the pass ends.
        """
        input_ids = self._checked_ids(input_ids)
        if frozen is not None:
            frozen.check_covers(self.n_layers, self.norm_paths(), int(input_ids.shape[1]))
        unknown = set(capture) - set(sites.all_sites(self.n_layers))
        if unknown:
            raise CircuitscopeError(
                f"unknown sites {sorted(unknown)}; see circuitscope.models.sites"
            )
        if live_input not in sites.TRANSCODER_INPUTS:
            raise CircuitscopeError(
                f"live_input must be one of {sites.TRANSCODER_INPUTS}, got {live_input!r}"
            )
        plan = _RunPlan(
            record, keep_graph, frozen, mlp_out or {}, embed, frozenset(capture), mlp_edit or {}
        )
        plan.capture_as, plan.live_input = capture_as, live_input
        self._check_replacements(plan, input_ids)
        with self._hooks(plan):
            if unembed:
                logits = self.model(input_ids=input_ids, use_cache=False).logits
            else:
                self.model.base_model(input_ids=input_ids, use_cache=False)
                logits = torch.empty(0, device=input_ids.device)
        captured = None
        if record:
            attention = {p.layer: p.recorded for p in self.probes if p.recorded is not None}
            captured = FrozenState(attention, dict(plan.scales))
        for probe in self.probes:
            probe.recorded = None
        return ForwardResult(logits=logits, cache=plan.cache, frozen=captured)

    def record(self, input_ids: Tensor) -> Recording:
        """Run once without gradients and keep every site and the frozen state."""
        with torch.no_grad():
            result = self.run(input_ids, record=True)
        assert result.frozen is not None
        return Recording(input_ids, result.logits, result.cache, result.frozen)

    def _checked_ids(self, input_ids: Tensor) -> Tensor:
        if input_ids.ndim == 1:
            input_ids = input_ids.unsqueeze(0)
        if input_ids.ndim != 2 or input_ids.shape[1] == 0:
            raise CircuitscopeError(
                f"expected token ids of shape [batch, seq>0], got {tuple(input_ids.shape)}"
            )
        limit = self.max_positions
        if limit is not None and input_ids.shape[1] > limit:
            raise CircuitscopeError(
                f"prompt has {input_ids.shape[1]} tokens; this model's context is {limit}"
            )
        return input_ids.to(self.device)

    def _check_replacements(self, plan: _RunPlan, input_ids: Tensor) -> None:
        batch, seq = int(input_ids.shape[0]), int(input_ids.shape[1])
        for layer in plan.mlp_edit:
            if not 0 <= layer < self.n_layers:
                raise CircuitscopeError(f"no layer {layer}: the model has {self.n_layers}")
        for layer, value in plan.mlp_out.items():
            if not 0 <= layer < self.n_layers:
                raise CircuitscopeError(f"no layer {layer}: the model has {self.n_layers}")
            if isinstance(value, Tensor):
                _check_site_shape(f"mlp_out[{layer}]", value, batch, seq, self.d_model)
        if plan.embed is not None:
            _check_site_shape("embed", plan.embed, batch, seq, self.d_model)

    @contextmanager
    def _hooks(self, plan: _RunPlan) -> Iterator[None]:
        mode = "frozen" if plan.frozen is not None else "record" if plan.record else "normal"
        with ExitStack() as stack:
            for probe in self.probes:
                probe.mode = mode
                probe.frozen = plan.frozen.attention[probe.layer] if plan.frozen else None
            stack.callback(self._reset_probes)
            for layer_index, layer in enumerate(self.layers):
                if plan.frozen is not None:
                    attention = layer.get_submodule(self.spec.attention)
                    for name in self.spec.query_key:
                        width = _out_features(attention.get_submodule(name))
                        stack.callback(_swap_submodule(attention, name, _Unused(width)))
                if layer_index in plan.mlp_out:
                    stack.callback(_swap_submodule(layer, self.spec.mlp, _SkippedMLP()))
                for name in self.spec.norms:  # before the hooks: some sit on norms
                    path = f"layers.{layer_index}.{name}"
                    self._install_norm(plan, path, layer, name, stack)
                for handle in self._layer_hooks(plan, layer_index, layer):
                    stack.callback(handle.remove)
            parent, name = _parent_and_name(self.model, self.spec.final_norm)
            final = self._install_norm(plan, sites.FINAL_NORM, parent, name, stack)
            keep = final.register_forward_hook(_keep_output(plan, sites.FINAL_NORM))
            stack.callback(keep.remove)
            yield

    def _reset_probes(self) -> None:
        for probe in self.probes:
            probe.mode = "normal"
            probe.frozen = None

    def _layer_hooks(self, plan: _RunPlan, index: int, layer: nn.Module) -> list[Any]:
        spec = self.spec
        handles = [
            layer.register_forward_pre_hook(_resid_pre_hook(plan, index), with_kwargs=True),
            layer.register_forward_hook(_keep_output(plan, sites.resid_post(index))),
            layer.get_submodule(spec.mlp).register_forward_pre_hook(_mlp_in_hook(plan, index)),
            layer.get_submodule(spec.mlp_norm).register_forward_pre_hook(
                _resid_mid_hook(plan, index)
            ),
        ]
        handles.append(
            layer.get_submodule(spec.mlp_out).register_forward_hook(_mlp_out_hook(plan, index))
        )
        return handles

    def _install_norm(
        self, plan: _RunPlan, path: str, parent: nn.Module, name: str, stack: ExitStack
    ) -> nn.Module:
        """Make `parent.<name>` frozen or recording for this run; returns the module that runs.

        Frozen mode puts a stand-in there that applies the recorded scale: the live
        statistics are never computed, so autograd keeps no activations for them."""
        module = parent.get_submodule(name)
        if plan.frozen is not None and plan.frozen.norm_scales:
            scale = plan.frozen.norm_scales[path]
            frozen = _FrozenNorm(self.spec.norm_kind, module, scale)
            stack.callback(_swap_submodule(parent, name, frozen))
            return frozen
        if plan.record:
            kind = self.spec.norm_kind

            def hook(mod: nn.Module, args: tuple[Any, ...], _output: Tensor) -> None:
                plan.scales[path] = norm_scale(kind, mod, args[0]).detach()

            stack.callback(module.register_forward_hook(hook).remove)
        return module


class _FrozenNorm(nn.Module):
    """Stands in for a norm in frozen mode: the recorded scale, applied to the live input."""

    kind: NormKind
    original: nn.Module
    scale: Tensor

    def __init__(self, kind: NormKind, original: nn.Module, scale: Tensor) -> None:
        super().__init__()
        self.kind = kind
        self.scale = scale
        object.__setattr__(self, "original", original)  # not registered as a child

    def forward(self, hidden_states: Tensor, *_args: Any, **_kwargs: Any) -> Tensor:
        return frozen_norm(self.kind, self.original, hidden_states, self.scale)


def _parent_and_name(root: nn.Module, path: str) -> tuple[nn.Module, str]:
    """`a.b.c` -> (root.a.b, "c")."""
    parent, _, name = path.rpartition(".")
    return (root.get_submodule(parent) if parent else root), name


class _SkippedMLP(nn.Module):
    """Stands in for an MLP whose output is replaced: nothing to compute."""

    def forward(self, hidden_states: Tensor) -> Tensor:
        return torch.zeros_like(hidden_states)


class _Unused(nn.Module):
    """Stands in for a projection whose output frozen mode never reads (queries, keys):
    zeros of the right shape, without computing or allocating anything."""

    def __init__(self, out_features: int) -> None:
        super().__init__()
        self.out_features = out_features

    def forward(self, hidden_states: Tensor) -> Tensor:
        shape = (*hidden_states.shape[:-1], self.out_features)
        return hidden_states.new_zeros(()).expand(shape)


def _out_features(module: nn.Module) -> int:
    weight = getattr(module, "weight", None)
    if not isinstance(weight, Tensor):
        raise CircuitscopeError(f"cannot read the output width of {type(module).__name__}")
    return int(weight.shape[0])


def _swap_submodule(parent: nn.Module, name: str, new: nn.Module) -> Callable[[], None]:
    """Put `new` in place of `parent.<name>`; returns the function that puts it back."""
    old = parent.get_submodule(name)
    setattr(parent, name, new)
    return lambda: setattr(parent, name, old)


def _keep_output(plan: _RunPlan, name: str) -> Any:
    def hook(_module: nn.Module, _args: tuple[Any, ...], output: Any) -> None:
        plan.keep(name, output[0] if isinstance(output, tuple) else output)

    return hook


def _check_site_shape(name: str, value: Tensor, batch: int, seq: int, d_model: int) -> None:
    ok = (
        value.ndim == 3
        and value.shape[0] in (1, batch)
        and tuple(value.shape[1:])
        == (
            seq,
            d_model,
        )
    )
    if not ok:
        raise CircuitscopeError(
            f"{name} must have shape [{batch} or 1, {seq}, {d_model}], got {tuple(value.shape)}"
        )


def _resid_pre_hook(plan: _RunPlan, index: int) -> Any:
    def hook(
        _module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        from_kwargs = "hidden_states" in kwargs
        hidden = kwargs["hidden_states"] if from_kwargs else args[0]
        changed = False
        if index == 0 and plan.embed is not None:
            hidden = plan.embed.to(hidden.dtype).expand_as(hidden)
            changed = True
        if index == 0:
            plan.keep(sites.EMBED, hidden)
        plan.keep(sites.resid_pre(index), hidden)
        if not changed:
            return None
        if from_kwargs:
            return args, {**kwargs, "hidden_states": hidden}
        return (hidden, *args[1:]), kwargs

    return hook


def _mlp_in_hook(plan: _RunPlan, index: int) -> Any:
    def hook(_module: nn.Module, args: tuple[Any, ...]) -> None:
        plan.keep(sites.mlp_in(index), args[0])
        plan.keep_live("mlp_in", index, args[0])

    return hook


def _resid_mid_hook(plan: _RunPlan, index: int) -> Any:
    def hook(_module: nn.Module, args: tuple[Any, ...]) -> None:
        plan.keep(sites.resid_mid(index), args[0])
        plan.keep_live("resid_mid", index, args[0])

    return hook


def _mlp_out_hook(plan: _RunPlan, index: int) -> Any:
    def hook(_module: nn.Module, _args: tuple[Any, ...], output: Tensor) -> Tensor | None:
        replacement = plan.mlp_out.get(index)
        if replacement is not None and not isinstance(replacement, Tensor):
            replacement = replacement(plan.live[index])
        value = output if replacement is None else replacement.to(output.dtype).expand_as(output)
        edit = plan.mlp_edit.get(index)
        if edit is not None:
            value = edit(plan.live[index], value).to(output.dtype)
        plan.live.pop(index, None)
        plan.keep(sites.mlp_out(index), value)
        return None if replacement is None and edit is None else value

    return hook
