"""The peer side of benchmarks/attribution.py: circuit-tracer 0.5.0 on the same inputs.

Runs under the peer's own virtualenv (default /work/peer-venv, see
benchmarks/README.md), never under circuitscope's: it imports circuit_tracer,
transformer_lens and transformers 4.x, and nothing from circuitscope.

    /work/peer-venv/bin/python benchmarks/peer_circuit_tracer.py \
        --model HF_FOLDER --transcoder CT_FOLDER --ids 1,504,... --out DIR

It builds circuit-tracer's TransformerLens ReplacementModel from a local HF
folder and a local circuit-tracer transcoder folder, calls its `attribute(...)`
on the given token ids (the caller includes the BOS) and writes DIR/peer.safetensors
(adjacency, node tables) and DIR/peer.json (timings, sizes, versions). No pickle.

Shims, needed only because the model folder was written by transformers 5 and
TransformerLens's local-folder path is incomplete; none changes the model:
- transformers 5 writes `rope_parameters.rope_theta` in config.json, which transformers
  4.57 ignores (it would fall back to rope_theta 10000), and names the tokenizer class
  `TokenizersBackend`, which 4.57 lacks: a copy of the folder (weights linked) with
  `rope_theta` spelled out and `PreTrainedTokenizerFast` is used.
- `HookedTransformer.from_pretrained` only accepts names from its official list, so
  this script repeats its body (config, state dict, load_and_process_state_dict with
  circuit-tracer's fold_ln/center_* = False) for the local folder;
- TransformerLens's converter for a local LlamaForCausalLM folder drops rope_theta
  (rotary_base stays 10000): rotary_base is set from the HF config.
`--check` measures that the TL model's logits equal the HF model's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import torch
import yaml
from safetensors.torch import save_file

COMPAT_LINKS = ("model.safetensors", "tokenizer.json", "generation_config.json")


def main() -> int:
    args = _parser().parse_args()
    ids = [int(i) for i in args.ids.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    model_folder = compat_folder(Path(args.model), Path(args.compat_folder))
    model, tl_vs_hf = load_model(model_folder, args.device, ids if args.check else None)
    transcoders = load_transcoders(Path(args.transcoder), args.device)
    model._configure_replacement_model(transcoders)
    load_seconds = time.perf_counter() - start
    load_peak = peak_rss_mb()
    info = {
        "versions": versions(),
        "backend": "transformerlens",
        "device": args.device,
        "load_seconds": round(load_seconds, 3),
        "load_peak_memory_mb": load_peak,
        "transcoder_kind": type(transcoders).__name__,
        "d_transcoder": int(transcoders.d_transcoder),
        "n_layers": int(model.cfg.n_layers),
        "rotary_base": float(model.cfg.rotary_base),
    }
    if args.check:
        info["tl_vs_hf_max_logit_diff"] = tl_vs_hf
        info.update(check_encoding(model, ids))
        (out / "peer-check.json").write_text(json.dumps(info, indent=1))
        print(json.dumps(info, indent=1))
        return 0
    if args.heap_policy:
        info["heap_policy"] = heap_policy(args.batch_size * len(ids) * model.cfg.d_model * 4)
    graph, seconds = run_attribution(model, ids, args)
    info.update(
        attribute_seconds=round(seconds, 3),
        n_active=int(graph.active_features.shape[0]),
        rows_computed=int(len(graph.selected_features) + len(graph.logit_targets)),
        n_selected=int(len(graph.selected_features)),
        logit_labels=[target.token_str for target in graph.logit_targets],
        peak_rss_mb=peak_rss_mb(),
        **graph_scores(graph),
    )
    write_graph(graph, out)
    (out / "peer.json").write_text(json.dumps(info, indent=1))
    print(json.dumps({k: v for k, v in info.items() if k != "versions"}))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", required=True, help="local HF model folder")
    parser.add_argument("--transcoder", required=True, help="circuit-tracer transcoder folder")
    parser.add_argument("--ids", required=True, help="comma-separated token ids, BOS included")
    parser.add_argument("--out", required=True, help="folder for peer.safetensors / peer.json")
    parser.add_argument(
        "--compat-folder", required=True, help="where to write the transformers-4 copy of --model"
    )
    parser.add_argument("--max-feature-nodes", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-n-logits", type=int, default=10)
    parser.add_argument("--desired-logit-prob", type=float, default=0.95)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--heap-policy",
        action="store_true",
        help="the heap policy `circuitscope trace` sets itself (circuitscope.allocator)",
    )
    parser.add_argument(
        "--check", action="store_true", help="load everything, compare TL with HF logits, exit"
    )
    return parser


def compat_folder(source: Path, target: Path) -> Path:
    """A copy of `source` that transformers 4.x reads as the same model (see module doc)."""
    config = json.loads((source / "config.json").read_text())
    rope = config.get("rope_parameters") or {}
    if "rope_theta" not in config and "rope_theta" in rope:
        config["rope_theta"] = rope["rope_theta"]
        if rope.get("rope_type", "default") != "default":
            config["rope_scaling"] = rope
    if "torch_dtype" not in config and "dtype" in config:
        config["torch_dtype"] = config["dtype"]
    tokenizer = json.loads((source / "tokenizer_config.json").read_text())
    if tokenizer.get("tokenizer_class") == "TokenizersBackend":  # transformers 5's name
        tokenizer["tokenizer_class"] = "PreTrainedTokenizerFast"
    target.mkdir(parents=True, exist_ok=True)
    for name in COMPAT_LINKS:
        link = target / name
        if (source / name).is_file() and not link.exists():
            link.symlink_to((source / name).resolve())
    _write_if_changed(target / "config.json", json.dumps(config, indent=1))
    _write_if_changed(target / "tokenizer_config.json", json.dumps(tokenizer, indent=1))
    return target


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def load_model(folder: Path, device: str, check_ids: list[int] | None):
    """circuit-tracer's TransformerLens ReplacementModel (no transcoders yet), fp32.

    Returns (model, max |TL logits − HF logits| on check_ids, or None).
    """
    from circuit_tracer.replacement_model.replacement_model_transformerlens import (  # pyright: ignore[reportMissingImports]
        TransformerLensReplacementModel,
    )
    from transformer_lens import loading_from_pretrained as loading  # pyright: ignore[reportMissingImports]
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf_model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    hf_model.eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    cfg = loading.get_pretrained_model_config(
        str(folder),
        hf_cfg=hf_model.config.to_dict(),
        fold_ln=False,
        device=device,
        dtype=torch.float32,
    )
    rope_theta = getattr(hf_model.config, "rope_theta", None)
    if rope_theta is not None:
        cfg.rotary_base = float(rope_theta)
    state_dict = loading.get_pretrained_state_dict(str(folder), cfg, hf_model, dtype=torch.float32)
    # As HookedTransformer.from_pretrained with circuit-tracer's arguments.
    model = TransformerLensReplacementModel(
        cfg, tokenizer, move_to_device=False, default_padding_side="right"
    )
    model.load_and_process_state_dict(
        state_dict,
        fold_ln=False,
        center_writing_weights=False,
        center_unembed=False,
        fold_value_biases=True,
        refactor_factored_attn_matrices=False,
    )
    model.move_model_modules_to_device()
    diff = None
    if check_ids is not None:
        tokens = torch.tensor([check_ids], device=device)
        with torch.no_grad():
            hf_logits = hf_model.to(device)(tokens).logits  # pyright: ignore[reportArgumentType]
            tl_logits = model(tokens)
        diff = float((hf_logits - tl_logits).abs().max())
    del hf_model, state_dict
    return model, diff


def load_transcoders(folder: Path, device: str):
    """The folder's transcoders with ReplacementModel.from_pretrained's defaults.

    (fp32, lazy_encoder=False, lazy_decoder=True; circuit-tracer's own loader
    `load_transcoders` fetches from the hub, so its local loaders are called.)
    """
    config = yaml.safe_load((folder / "config.yaml").read_text())
    common = {
        "scan": f"local:{folder.name}",
        "feature_input_hook": config["feature_input_hook"],
        "feature_output_hook": config["feature_output_hook"],
        "device": torch.device(device),
        "dtype": torch.float32,
        "lazy_encoder": False,
        "lazy_decoder": True,
    }
    if config["model_kind"] == "transcoder_set":
        from circuit_tracer.transcoder.single_layer_transcoder import load_transcoder_set  # pyright: ignore[reportMissingImports]

        n_layers = len(list(folder.glob("layer_*.safetensors")))
        paths = {i: str(folder / f"layer_{i}.safetensors") for i in range(n_layers)}
        return load_transcoder_set(paths, **common)
    if config["model_kind"] == "cross_layer_transcoder":
        from circuit_tracer.transcoder.cross_layer_transcoder import load_clt  # pyright: ignore[reportMissingImports]

        return load_clt(str(folder), **common)
    raise SystemExit(f"{folder}/config.yaml: unknown model_kind {config['model_kind']!r}")


def check_encoding(model, ids: list[int]) -> dict:
    """Active features of the prompt as circuit-tracer sees them (BOS zeroed)."""
    tokens = torch.tensor(ids, device=model.cfg.device)
    context = model.setup_attribution(tokens)
    per_layer = torch.bincount(context.activation_matrix.indices()[0], minlength=model.cfg.n_layers)
    return {
        "n_active": int(context.activation_matrix._nnz()),
        "active_per_layer": per_layer.tolist(),
    }


def heap_policy(pass_bytes: int) -> str:
    """Apply the heap policy `circuitscope trace` gives itself (its allocator module has
    no dependencies, so the peer's interpreter imports it from this checkout)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from circuitscope.allocator import set_policy_for_passes

    return set_policy_for_passes(pass_bytes)


def run_attribution(model, ids: list[int], args: argparse.Namespace):
    from circuit_tracer import attribute  # pyright: ignore[reportMissingImports]

    tokens = torch.tensor(ids, device=model.cfg.device)
    assert model.ensure_tokenized(tokens).tolist() == ids, "circuit-tracer changed the ids"
    start = time.perf_counter()
    graph = attribute(
        tokens,
        model,
        max_n_logits=args.max_n_logits,
        desired_logit_prob=args.desired_logit_prob,
        batch_size=args.batch_size,
        max_feature_nodes=args.max_feature_nodes,
        verbose=False,
    )
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return graph, time.perf_counter() - start


def graph_scores(graph) -> dict[str, float]:
    """circuit-tracer's own replacement and completeness scores of its unpruned graph."""
    from circuit_tracer.graph import compute_graph_scores  # pyright: ignore[reportMissingImports]

    replacement, completeness = compute_graph_scores(graph)
    return {"replacement_score": float(replacement), "completeness_score": float(completeness)}


def write_graph(graph, out: Path) -> None:
    tensors = {
        "adjacency": graph.adjacency_matrix.float().contiguous().cpu(),
        "active_features": graph.active_features.long().contiguous().cpu(),
        "activation_values": graph.activation_values.float().contiguous().cpu(),
        "selected_features": graph.selected_features.long().contiguous().cpu(),
        "logit_token_ids": graph.logit_token_ids.long().contiguous().cpu(),
        "logit_probabilities": graph.logit_probabilities.float().contiguous().cpu(),
        "input_ids": torch.as_tensor(graph.input_tokens).long().contiguous().cpu(),
    }
    save_file(tensors, str(out / "peer.safetensors"))


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if torch.cuda.is_available():
        peak += torch.cuda.max_memory_allocated() / 2**20
    return round(peak, 1)


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    names = ("circuit-tracer", "transformer-lens", "transformers", "torch", "nnsight")
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "absent"
    found["python"] = sys.version.split()[0]
    found["torch_threads"] = str(torch.get_num_threads())
    return found


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
