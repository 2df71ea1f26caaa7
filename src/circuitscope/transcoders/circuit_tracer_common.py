"""circuit-tracer's config.yaml and its TransformerLens hook names.

config.yaml (circuit-tracer 0.4/0.5) holds `model_name`, `model_kind`
(`transcoder_set` or `cross_layer_transcoder`), `feature_input_hook`,
`feature_output_hook`, and for a set optionally `activation` (relu, topk), `k`
and `transcoders` (a list of per-layer file paths or hf:// URIs).
Dimensions are not declared: they come from the tensors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from circuitscope.errors import CircuitscopeError
from circuitscope.transcoders.config import (
    MLP_IN_SITE,
    MLP_OUT_SITE,
    RESID_MID_SITE,
    TranscoderConfig,
)

CONFIG_YAML = "config.yaml"

HOOK_TO_SITE = {
    "hook_resid_mid": RESID_MID_SITE,
    "ln2.hook_normalized": MLP_IN_SITE,
    "mlp.hook_in": MLP_IN_SITE,
    "hook_mlp_out": MLP_OUT_SITE,
    "mlp.hook_out": MLP_OUT_SITE,
}


def read_yaml(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG_YAML
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise CircuitscopeError(f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise CircuitscopeError(f"{path}: invalid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(data, dict) or "model_kind" not in data:
        raise CircuitscopeError(f"{path}: not a circuit-tracer config (no model_kind)")
    return data


def site_of_hook(hook: str) -> str:
    """Our site template for a circuit-tracer hook name."""
    return HOOK_TO_SITE.get(hook, "layers.{layer}." + hook)


def hooks_for(config: TranscoderConfig) -> tuple[str, str]:
    """(feature_input_hook, feature_output_hook) for our sites, as circuit-tracer names them.

    circuit-tracer maps mlp.hook_in for Llama/Qwen3/Gemma-3 but only
    ln2.hook_normalized for Gemma-2, and hook_mlp_out for all but Qwen3.
    """
    if config.input_site == MLP_IN_SITE:
        hook_in = "ln2.hook_normalized" if config.architecture == "gemma2" else "mlp.hook_in"
    elif config.input_site == RESID_MID_SITE:
        hook_in = "hook_resid_mid"
    else:
        raise CircuitscopeError(f"circuit-tracer has no hook for input site {config.input_site}")
    if config.output_site != MLP_OUT_SITE:
        raise CircuitscopeError(f"circuit-tracer has no hook for output site {config.output_site}")
    hook_out = "mlp.hook_out" if config.architecture in ("qwen2", "qwen3") else "hook_mlp_out"
    return hook_in, hook_out


def write_yaml(folder: Path, config: TranscoderConfig, model_kind: str, **extra: Any) -> None:
    hook_in, hook_out = hooks_for(config)
    data = {
        "model_name": config.model_id,
        "model_kind": model_kind,
        "feature_input_hook": hook_in,
        "feature_output_hook": hook_out,
        **extra,
    }
    (folder / CONFIG_YAML).write_text(yaml.safe_dump(data, sort_keys=False))
