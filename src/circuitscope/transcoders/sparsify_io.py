"""EleutherAI sparsify folders: one subfolder per hook point, each cfg.json + sae.safetensors.

sae.safetensors holds encoder.weight [n, d_in], encoder.bias [n], W_dec [n, d_in],
b_dec [d_in] and, with skip_connection, W_skip [d_in, d_in] (applied as x W_skipᵀ).
cfg.json holds activation (topk or groupmax), expansion_factor, normalize_decoder,
num_latents, k, multi_topk, skip_connection, transcode and d_in. Activations are
topk(relu(x W_encᵀ + b)), which equals our TopK with relu. A transcoder of the MLP
of layer l is trained on hook point `layers.{l}.mlp` (`h.{l}.mlp` for GPT-2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from circuitscope.errors import CircuitscopeError
from circuitscope.transcoders import safetensors_files as st
from circuitscope.transcoders.config import MLP_IN_SITE, MLP_OUT_SITE, TranscoderConfig
from circuitscope.transcoders.foreign import (
    check_contiguous,
    float_dtype,
    layer_index,
    merge_side_config,
    write_side_config,
)
from circuitscope.transcoders.layer import B_DEC, B_ENC, W_DEC, W_ENC, W_SKIP
from circuitscope.transcoders.native_io import read_json
from circuitscope.transcoders.source import LayerSource, LayerTensors

CFG, WEIGHTS = "cfg.json", "sae.safetensors"


def is_sparsify(folder: Path) -> bool:
    if (folder / CFG).is_file():
        return True
    return any((sub / CFG).is_file() for sub in folder.iterdir() if sub.is_dir())


def hookpoint_folders(folder: Path) -> list[Path]:
    """The hook point folders of layers 0..n-1 (a folder with cfg.json is layer 0)."""
    if (folder / CFG).is_file():
        return [folder]
    found: dict[int, Path] = {}
    for sub in sorted(folder.iterdir()):
        if (sub / CFG).is_file():
            index = layer_index(sub.name)
            if index is None:
                raise CircuitscopeError(f"{sub}: cannot tell which layer hook point {sub.name} is")
            found[index] = sub
    return check_contiguous(found, CFG, folder)


def _read_cfg(folder: Path) -> dict[str, Any]:
    cfg = read_json(folder / CFG)
    where = folder / CFG
    if not cfg.get("transcode", False):
        raise CircuitscopeError(
            f"{where}: a sparse autoencoder (transcode false), not a transcoder"
        )
    if cfg.get("activation", "topk") != "topk":
        raise CircuitscopeError(f"{where}: activation {cfg.get('activation')!r} is not supported")
    if "d_in" not in cfg or "k" not in cfg:
        raise CircuitscopeError(f"{where}: missing d_in or k")
    return cfg


class SparsifySource(LayerSource):
    """Layers of a sparsify transcoder folder."""

    def __init__(self, folder: Path) -> None:
        self.location = folder
        self.folders = hookpoint_folders(folder)
        cfgs = [_read_cfg(sub) for sub in self.folders]
        heads = [st.header(sub / WEIGHTS) for sub in self.folders]
        for sub, head in zip(self.folders, heads, strict=True):
            if "encoder.weight" not in head:
                raise CircuitscopeError(f"{sub / WEIGHTS}: no tensor encoder.weight")
        ks = {int(cfg["k"]) for cfg in cfgs}
        if len(ks) != 1:
            raise CircuitscopeError(f"{folder}: hook points use different k ({sorted(ks)})")
        mlp = all(sub.name.endswith(".mlp") for sub in self.folders)
        inferred = TranscoderConfig(
            kind="plt",
            n_layers=len(cfgs),
            d_model=int(cfgs[0]["d_in"]),
            n_features=[head["encoder.weight"][0][0] for head in heads],
            activation="topk",
            activation_params={"k": ks.pop(), "relu": True},
            input_site=MLP_IN_SITE if mlp else "layers.{layer}.sparsify_input",
            output_site=MLP_OUT_SITE if mlp else "layers.{layer}.sparsify_output",
            skip_connection=bool(cfgs[0].get("skip_connection", False)),
            dtype=float_dtype(heads[0]["encoder.weight"][1], self.folders[0], "encoder.weight"),
            source_format="sparsify",
        )
        self.config = merge_side_config(folder, inferred)

    def describe(self) -> str:
        return "sparsify"

    def layer_files(self, layer: int) -> dict[str, Path]:
        path = self.folders[layer] / WEIGHTS
        return {name: path for name in (W_ENC, B_ENC, W_DEC, B_DEC, W_SKIP)}

    def check_files(self) -> None:
        for sub in self.folders:
            st.header(sub / WEIGHTS)

    def read_layer(self, layer: int) -> dict[str, Tensor]:
        raw = st.read_tensors(self.folders[layer] / WEIGHTS)
        tensors = {
            W_ENC: raw["encoder.weight"].T.contiguous(),
            B_ENC: raw["encoder.bias"],
            W_DEC: raw["W_dec"],
            B_DEC: raw["b_dec"],
        }
        if "W_skip" in raw:
            tensors[W_SKIP] = raw["W_skip"].T.contiguous()
        return tensors

    def read_rows(self, layer: int, name: str, rows: Tensor) -> Tensor:
        if name == W_DEC:
            return st.read_rows(self.folders[layer] / WEIGHTS, "W_dec", rows)
        return super().read_rows(layer, name, rows)


def write_sparsify(transcoder: LayerTensors, folder: Path) -> Path:
    """Write one `layers.{l}.mlp` folder (`h.{l}.mlp` for GPT-2) per layer."""
    config = transcoder.config
    _check_writable(config)
    prefix = "h" if config.architecture == "gpt2" else "layers"
    for layer in range(config.n_layers):
        sub = folder / f"{prefix}.{layer}.mlp"
        tensors = transcoder.read_layer_tensors(layer)
        out = {
            "encoder.weight": tensors[W_ENC].T,
            "encoder.bias": tensors[B_ENC],
            "W_dec": tensors[W_DEC],
            "b_dec": tensors[B_DEC],
        }
        if W_SKIP in tensors:
            out["W_skip"] = tensors[W_SKIP].T
        st.write_tensors(sub / WEIGHTS, out)
        (sub / CFG).write_text(_cfg_json(config, layer))
    write_side_config(folder, config)
    return folder


def _cfg_json(config: TranscoderConfig, layer: int) -> str:
    import json

    n, d = config.n_features[layer], config.d_model
    cfg = {
        "activation": "topk",
        "expansion_factor": max(n // d, 1),
        "normalize_decoder": False,
        "num_latents": n,
        "k": int(config.activation_params["k"]),
        "multi_topk": False,
        "skip_connection": config.skip_connection,
        "transcode": True,
        "d_in": d,
    }
    return json.dumps(cfg)


def _check_writable(config: TranscoderConfig) -> None:
    if config.kind != "plt":
        raise CircuitscopeError("sparsify holds per-layer transcoders; this is a CLT")
    if config.activation != "topk" or not config.activation_params.get("relu", True):
        raise CircuitscopeError(
            f"sparsify transcoders use TopK after a ReLU; this one uses {config.activation} "
            f"with {config.activation_params}"
        )
    if config.input_site != MLP_IN_SITE or config.output_site != MLP_OUT_SITE:
        raise CircuitscopeError("sparsify folders are written for MLP transcoders only")
