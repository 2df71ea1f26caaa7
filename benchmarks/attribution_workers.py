"""The torch side of benchmarks/attribution.py, one step per fresh process.

    python benchmarks/attribution_workers.py prepare SPEC.json
    python benchmarks/attribution_workers.py ours SPEC.json
    python benchmarks/attribution_workers.py compare SPEC.json

Each step reads a JSON spec written by attribution.py and writes its result as
JSON (and graphs as safetensors) into the folders the spec names. The parent
imports nothing heavy, so each child's peak RSS is its own.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

MODEL = "smollm2-135m"

# Real English, public domain: the opening of the Declaration of Independence (1776).
PARAGRAPH = (
    "When in the Course of human events, it becomes necessary for one people to dissolve "
    "the political bands which have connected them with another, and to assume among the "
    "powers of the earth, the separate and equal station to which the Laws of Nature and of "
    "Nature's God entitle them, a decent respect to the opinions of mankind requires that "
    "they should declare the causes which impel them to the separation. We hold these truths "
    "to be self-evident, that all men are created equal, that they are endowed by their "
    "Creator with certain unalienable Rights, that among these are Life, Liberty and the "
    "pursuit of Happiness. That to secure these rights, Governments are instituted among Men, "
    "deriving their just powers from the consent of the governed, That whenever any Form of "
    "Government becomes destructive of these ends, it is the Right of the People to alter or "
    "to abolish it, and to institute new Government, laying its foundation on such principles "
    "and organizing its powers in such form, as to them shall seem most likely to effect their "
    "Safety and Happiness. Prudence, indeed, will dictate that Governments long established "
    "should not be changed for light and transient causes; and accordingly all experience hath "
    "shewn, that mankind are more disposed to suffer, while evils are sufferable, than to "
    "right themselves by abolishing the forms to which they are accustomed. But when a long "
    "train of abuses and usurpations, pursuing invariably the same Object evinces a design to "
    "reduce them under absolute Despotism, it is their right, it is their duty, to throw off "
    "such Government, and to provide new Guards for their future security. Such has been the "
    "patient sufferance of these Colonies; and such is now the necessity which constrains "
    "them to alter their former Systems of Government. The history of the present King of "
    "Great Britain is a history of repeated injuries and usurpations, all having in direct "
    "object the establishment of an absolute Tyranny over these States. To prove this, let "
    "Facts be submitted to a candid world. He has refused his Assent to Laws, the most "
    "wholesome and necessary for the public good. He has forbidden his Governors to pass Laws "
    "of immediate and pressing importance, unless suspended in their operation till his "
    "Assent should be obtained; and when so suspended, he has utterly neglected to attend to "
    "them. He has refused to pass other Laws for the accommodation of large districts of "
    "people, unless those people would relinquish the right of Representation in the "
    "Legislature, a right inestimable to them and formidable to tyrants only. He has called "
    "together legislative bodies at places unusual, uncomfortable, and distant from the "
    "depository of their public Records, for the sole purpose of fatiguing them into "
    "compliance with his measures. He has dissolved Representative Houses repeatedly, for "
    "opposing with manly firmness his invasions on the rights of the people. He has refused "
    "for a long time, after such dissolutions, to cause others to be elected; whereby the "
    "Legislative powers, incapable of Annihilation, have returned to the People at large for "
    "their exercise; the State remaining in the mean time exposed to all the dangers of "
    "invasion from without, and convulsions within. He has endeavoured to prevent the "
    "population of these States; for that purpose obstructing the Laws for Naturalization of "
    "Foreigners; refusing to pass others to encourage their migrations hither, and raising "
    "the conditions of new Appropriations of Lands. He has obstructed the Administration of "
    "Justice, by refusing his Assent to Laws for establishing Judiciary powers. He has made "
    "Judges dependent on his Will alone, for the tenure of their offices, and the amount and "
    "payment of their salaries. He has erected a multitude of New Offices, and sent hither "
    "swarms of Officers to harrass our people, and eat out their substance. He has kept among "
    "us, in times of peace, Standing Armies without the Consent of our legislatures. He has "
    "affected to render the Military independent of and superior to the Civil power. He has "
    "combined with others to subject us to a jurisdiction foreign to our constitution, and "
    "unacknowledged by our laws; giving his Assent to their Acts of pretended Legislation: "
    "For Quartering large bodies of armed troops among us: For protecting them, by a mock "
    "Trial, from punishment for any Murders which they should commit on the Inhabitants of "
    "these States: For cutting off our Trade with all parts of the world: For imposing Taxes "
    "on us without our Consent: For depriving us in many cases, of the benefits of Trial by "
    "Jury: For transporting us beyond Seas to be tried for pretended offences: For abolishing "
    "the free System of English Laws in a neighbouring Province, establishing therein an "
    "Arbitrary government, and enlarging its Boundaries so as to render it at once an example "
    "and fit instrument for introducing the same absolute rule into these Colonies: For "
    "taking away our Charters, abolishing our most valuable Laws, and altering fundamentally "
    "the Forms of our Governments: For suspending our own Legislatures, and declaring "
    "themselves invested with power to legislate for us in all cases whatsoever. He has "
    "abdicated Government here, by declaring us out of his Protection and waging War against "
    "us. He has plundered our seas, ravaged our Coasts, burnt our towns, and destroyed the "
    "lives of our people. He is at this time transporting large Armies of foreign "
    "Mercenaries to compleat the works of death, desolation and tyranny, already begun with "
    "circumstances of Cruelty and perfidy scarcely paralleled in the most barbarous ages, and "
    "totally unworthy the Head of a civilized nation. He has constrained our fellow Citizens "
    "taken Captive on the high Seas to bear Arms against their Country, to become the "
    "executioners of their friends and Brethren, or to fall themselves by their Hands. He "
    "has excited domestic insurrections amongst us, and has endeavoured to bring on the "
    "inhabitants of our frontiers, the merciless Indian Savages, whose known rule of warfare, "
    "is an undistinguished destruction of all ages, sexes and conditions. In every stage of "
    "these Oppressions We have Petitioned for Redress in the most humble terms: Our repeated "
    "Petitions have been answered only by repeated injury. A Prince whose character is thus "
    "marked by every act which may define a Tyrant, is unfit to be the ruler of a free people."
)


def main(argv: list[str]) -> int:
    step, spec_path = argv[1], Path(argv[2])
    spec = json.loads(spec_path.read_text())
    steps = {"prepare": prepare, "ours": ours, "compare": compare}
    result = steps[step](spec)
    Path(spec["result"]).write_text(json.dumps(result, indent=1))
    return 0


# --- prepare: transcoders (native) and prompts ------------------------------------------


def prepare(spec: dict[str, Any]) -> dict[str, Any]:
    """Make the random transcoders that are missing; cut the prompts; report versions."""
    import platform

    import torch
    import transformers

    from circuitscope.models.loading import load_model
    from circuitscope.testing.sparse_random import sparse_random_transcoder

    loaded = load_model(MODEL)
    made = {}
    for item in spec["transcoders"]:
        folder = Path(item["native"])
        if (folder / "bench-complete.json").is_file():
            made[item["kind"]] = "reused"
            continue
        start = time.perf_counter()
        transcoder = sparse_random_transcoder(
            loaded.adapter,
            loaded.tokenizer,
            item["kind"],
            n_features=item["n_features"],
            l0=item["l0"],
            seed=item["seed"],
        )
        transcoder.save(folder)
        (folder / "bench-complete.json").write_text(json.dumps(item))
        made[item["kind"]] = f"made in {time.perf_counter() - start:.0f} s"
        del transcoder
    return {
        "transcoders": made,
        "prompts": [prompt_of_length(loaded.tokenizer, n) for n in spec["lengths"]],
        "model_folder": str(Path(loaded.model.config._name_or_path)),
        "bos_token_id": loaded.tokenizer.bos_token_id,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "circuitscope": _version("circuitscope"),
            "python": platform.python_version(),
            "torch_threads": torch.get_num_threads(),
        },
    }


def prompt_of_length(tokenizer: Any, n_positions: int) -> dict[str, Any]:
    """A prefix of PARAGRAPH that is n_positions tokens with the BOS (or a few fewer).

    The text must tokenize back to the same ids, so that circuitscope (given the
    text) and circuit-tracer (given the ids) see the same tokens.
    """
    all_ids = tokenizer(PARAGRAPH).input_ids
    if n_positions - 1 > len(all_ids):
        raise SystemExit(f"the paragraph has {len(all_ids)} tokens, fewer than {n_positions - 1}")
    for count in range(n_positions - 1, 0, -1):
        text = tokenizer.decode(all_ids[:count])
        if tokenizer(text).input_ids == all_ids[:count]:
            ids = [int(tokenizer.bos_token_id), *all_ids[:count]]
            return {"length": n_positions, "text": text, "ids": ids, "n_positions": len(ids)}
    raise SystemExit(f"no prefix of the paragraph round-trips at {n_positions} tokens")


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


# --- ours: one trace ------------------------------------------------------------------


def ours(spec: dict[str, Any]) -> dict[str, Any]:
    """One `trace` of the prompt; the full graph saved with save_graph."""
    import torch

    from circuitscope.allocator import set_policy_for_passes
    from circuitscope.attribution.limits import AttributionLimits
    from circuitscope.attribution.target_choice import TargetChoice
    from circuitscope.attribution.trace import peak_memory_mb, trace
    from circuitscope.graph.files import save_graph
    from circuitscope.graph.scores import circuit_tracer_scores
    from circuitscope.models.loading import load_model
    from circuitscope.transcoders.transcoder import Transcoder

    start = time.perf_counter()
    loaded = load_model(MODEL, device=spec["device"])
    if loaded.adapter.device.type == "cpu":  # the heap policy `circuitscope trace` sets
        pass_bytes = spec["batch_size"] * len(spec["prompt"]["ids"]) * loaded.adapter.d_model * 4
        set_policy_for_passes(pass_bytes)
    transcoder = Transcoder.load(spec["transcoder"], device=str(loaded.adapter.device))
    load_seconds = time.perf_counter() - start
    load_peak = peak_memory_mb()
    targets = TargetChoice(
        max_n_logits=spec["max_n_logits"], desired_logit_prob=spec["desired_logit_prob"]
    )
    limits = AttributionLimits(
        max_feature_nodes=spec["max_feature_nodes"],
        batch_size=spec["batch_size"],
        update_interval=spec.get("update_interval", 4),
    )
    start = time.perf_counter()
    result = trace(
        loaded.adapter,
        loaded.tokenizer,
        transcoder,
        spec["prompt"]["text"],
        targets=targets,
        limits=limits,
    )
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    ids = result.graph.input_ids.tolist()
    if ids != spec["prompt"]["ids"]:
        raise SystemExit(f"circuitscope tokenized the prompt as {ids}, not {spec['prompt']['ids']}")
    save_graph(result.graph, spec["out"], "graph")
    graph = result.graph
    return {
        "trace_seconds": round(seconds, 3),
        "graph_seconds": result.info.phase_seconds["graph"],
        "load_seconds": round(load_seconds, 3),
        "n_active": result.info.n_active_features,
        "rows_computed": result.info.rows_computed,
        "n_nodes": graph.n_nodes,
        "n_layers": graph.n_layers,
        "n_features": graph.n_features,
        "logit_labels": graph.logit_labels,
        "replacement_score": result.scores.replacement,
        "completeness_score": result.scores.completeness,
        "completeness_circuit_tracer": circuit_tracer_scores(graph).completeness,
        "peak_memory_mb_in_process": round(peak_memory_mb(), 1),
        "load_peak_memory_mb": round(load_peak, 1),
        "torch_threads": torch.get_num_threads(),
        "selection": graph.metadata.get("selection", {}),
        "backward": result.info.backward,
        "batch_size": spec["batch_size"],
        "dims": model_dims(loaded.model.config),
    }


def model_dims(config: Any) -> dict[str, int]:
    """The shape a FLOP count needs, from a Hugging Face config."""
    heads = config.num_attention_heads
    return {
        "d_model": config.hidden_size,
        "n_heads": heads,
        "n_kv_heads": getattr(config, "num_key_value_heads", None) or heads,
        "d_head": getattr(config, "head_dim", None) or config.hidden_size // heads,
        "n_layers": config.num_hidden_layers,
    }


# --- compare: the two adjacency matrices on shared nodes -----------------------------


def compare(spec: dict[str, Any]) -> dict[str, Any]:
    """Match nodes by identity, then compare edges per (target kind, source kind) block.

    Node identity: feature (layer, position, index), error (layer, position),
    token (position), logit (token id). Both tools order nodes the same way
    (features by layer, position, index; errors layer-major; tokens; logits).
    Two sets of error columns are compared apart:
    - error@BOS, position 0: circuit-tracer zeroes those error vectors, circuitscope
      keeps them (a convention difference, see benchmarks/README.md);
    - error@flip: where a feature is active in one tool only (its pre-activation sits
      on the JumpReLU threshold, and the two model implementations differ in the last
      bits), the reconstruction, hence the error vector, differs by that feature's
      output: at its (layer, position), and for a CLT at every later layer there.
    """
    import torch
    from safetensors.torch import load_file

    from circuitscope.graph.files import load_graph
    from circuitscope.graph.graph import LOGIT

    ours_graph = load_graph(spec["ours"], "graph")
    peer = load_file(str(Path(spec["peer"]) / "peer.safetensors"))
    n_layers, seq = ours_graph.n_layers, len(ours_graph.input_ids)
    if peer["input_ids"].tolist() != ours_graph.input_ids.tolist():
        raise SystemExit("the two tools saw different token ids")
    flips = threshold_flips(spec, peer)
    clt = spec["kind"] == "clt"
    flip_sites = {
        (layer, f["position"])
        for f in flips
        for layer in (range(f["layer"], n_layers) if clt else [f["layer"]])
    }

    ours_keys = _our_keys(ours_graph)
    peer_index = {key: i for i, key in enumerate(_peer_keys(peer, n_layers, seq))}
    shared = [(i, peer_index[key]) for i, key in enumerate(ours_keys) if key in peer_index]
    io = torch.tensor([i for i, _ in shared])
    ip = torch.tensor([j for _, j in shared])
    a = ours_graph.adjacency.double()[io][:, io]
    b = peer["adjacency"].double()[ip][:, ip]
    keys = [ours_keys[i] for i in io.tolist()]

    def mask(test: Any) -> Any:
        return torch.tensor([bool(test(key)) for key in keys])

    is_kind = {name: mask(lambda k, n=name: k[0] == n) for name in ("feature", "error", "token")}
    is_kind["logit"] = mask(lambda k: k[0] == "logit")
    bos = mask(lambda k: k[0] == "error" and k[2] == 0)
    flip = mask(lambda k: k[0] == "error" and (k[1], k[2]) in flip_sites) & ~bos
    agree = ~bos & ~flip
    blocks = {}
    for target in ("feature", "logit"):
        rows = is_kind[target]
        for source in ("feature", "error", "token"):
            cols = is_kind[source] & agree
            blocks[f"{target}<-{source}"] = _block(a[rows][:, cols], b[rows][:, cols])
        blocks[f"{target}<-error@BOS"] = _block(a[rows][:, bos], b[rows][:, bos])
        blocks[f"{target}<-error@flip"] = _block(a[rows][:, flip], b[rows][:, flip])
    return {
        "n_shared_nodes": len(shared),
        "n_nodes_ours": len(ours_keys),
        "n_nodes_peer": len(peer_index),
        "overall_excluding_bos_errors": _block(a[:, ~bos], b[:, ~bos]),
        "overall_agreeing": _block(a[:, agree], b[:, agree]),
        "blocks": blocks,
        "threshold_flips": flips,
        "features": _feature_agreement(ours_graph, peer, ours_keys, set(peer_index)),
        "logits_ours": ours_graph.node_feature[ours_graph.node_kind == LOGIT].tolist(),
        "logits_peer": peer["logit_token_ids"].tolist(),
        "logit_prob_max_diff": _logit_prob_diff(ours_graph, peer),
    }


def threshold_flips(spec: dict[str, Any], peer: dict[str, Any]) -> list[dict[str, Any]]:
    """Features active in one tool only, with circuitscope's pre-activation and threshold.

    circuitscope's graph holds only the features it visited, so its active set is
    recomputed here (one forward pass; this process is not timed).
    """
    import torch

    from circuitscope.attribution.replacement import build_replacement
    from circuitscope.models.loading import load_model
    from circuitscope.transcoders.transcoder import Transcoder

    loaded = load_model(MODEL, device=spec["device"])
    transcoder = Transcoder.load(spec["transcoder"], device=str(loaded.adapter.device))
    ids = torch.tensor([spec["ids"]], device=loaded.adapter.device)
    with torch.no_grad():
        replacement = build_replacement(loaded.adapter, transcoder, ids)
    found = replacement.features
    ours = dict(
        zip(
            zip(found.layer.tolist(), found.position.tolist(), found.index.tolist(), strict=True),
            found.activation.tolist(),
            strict=True,
        )
    )
    theirs = dict(
        zip(
            map(tuple, peer["active_features"].tolist()),
            peer["activation_values"].tolist(),
            strict=True,
        )
    )
    flips = []
    for key in sorted(set(ours) ^ set(theirs)):
        layer, position, index = key
        block = transcoder.layer(layer)
        x = replacement.recording.cache[replacement.input_site(layer)][0, position]
        with torch.no_grad():
            pre = float(block.pre_activations(x.float())[index])
        threshold = getattr(block.activation, "threshold", None)
        threshold = None if threshold is None else float(threshold.detach()[index])
        flips.append(
            {
                "layer": layer,
                "position": position,
                "index": index,
                "active_in": "circuitscope" if key in ours else "circuit-tracer",
                "activation": ours.get(key, theirs.get(key)),
                "pre_activation_ours": pre,
                "threshold": threshold,
            }
        )
    return flips


def _our_keys(graph: Any) -> list[tuple]:
    from circuitscope.graph.graph import KIND_NAMES

    keys: list[tuple] = []
    for kind, layer, pos, feature in zip(
        graph.node_kind.tolist(),
        graph.node_layer.tolist(),
        graph.node_position.tolist(),
        graph.node_feature.tolist(),
        strict=True,
    ):
        name = KIND_NAMES[kind]
        if name == "feature":
            keys.append((name, layer, pos, feature))
        elif name == "error":
            keys.append((name, layer, pos))
        elif name == "token":
            keys.append((name, pos))
        else:
            keys.append((name, feature))
    return keys


def _peer_keys(peer: dict[str, Any], n_layers: int, seq: int) -> list[tuple]:
    """circuit-tracer's node order: selected features, errors (layer-major), tokens, logits."""
    selected = peer["active_features"][peer["selected_features"]]
    keys: list[tuple] = [("feature", *row) for row in selected.tolist()]
    keys += [("error", layer, pos) for layer in range(n_layers) for pos in range(seq)]
    keys += [("token", pos) for pos in range(seq)]
    keys += [("logit", token) for token in peer["logit_token_ids"].tolist()]
    return keys


def _block(a: Any, b: Any) -> dict[str, Any]:
    """Max |a − b|, the scale max(|a|, |b|), their ratio, and the entry count."""
    if a.numel() == 0:
        return {"entries": 0, "max_abs_diff": 0.0, "scale": 0.0, "relative": 0.0}
    diff = float((a - b).abs().max())
    scale = float(max(a.abs().max(), b.abs().max()))
    return {
        "entries": int(a.numel()),
        "max_abs_diff": diff,
        "scale": scale,
        "relative": diff / scale if scale > 0 else 0.0,
        "max_abs_ours": float(a.abs().max()),
        "max_abs_peer": float(b.abs().max()),
    }


def _feature_agreement(
    graph: Any, peer: dict[str, Any], ours_keys: list[tuple], peer_keys: set[tuple]
) -> dict[str, Any]:
    """Features each tool put in its graph, and their activations where both did."""
    active_peer = {tuple(row): i for i, row in enumerate(peer["active_features"].tolist())}
    ours_features = {k: i for i, k in enumerate(ours_keys) if k[0] == "feature"}
    shared = [k for k in ours_features if k in peer_keys]
    diffs = [
        abs(float(graph.node_value[ours_features[k]]) - float(peer["activation_values"][j]))
        for k in shared
        if (j := active_peer.get(k[1:])) is not None
    ]
    return {
        "in_graph_ours": len(ours_features),
        "in_graph_peer": sum(1 for k in peer_keys if k[0] == "feature"),
        "in_graph_shared": len(shared),
        "active_peer": len(active_peer),
        "activation_max_abs_diff": max(diffs) if diffs else 0.0,
    }


def _logit_prob_diff(graph: Any, peer: dict[str, Any]) -> float | None:
    from circuitscope.graph.graph import LOGIT

    is_logit = graph.node_kind == LOGIT
    ours = zip(
        graph.node_feature[is_logit].tolist(), graph.node_value[is_logit].tolist(), strict=True
    )
    theirs = dict(
        zip(peer["logit_token_ids"].tolist(), peer["logit_probabilities"].tolist(), strict=True)
    )
    diffs = [abs(p - theirs[t]) for t, p in ours if t in theirs]
    return max(diffs) if diffs else None


if __name__ == "__main__":
    sys.exit(main(sys.argv))
