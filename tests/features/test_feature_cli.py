"""`circuitscope features` and `feature` on a tiny model, transcoder and text corpus."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from format_reader import independent_read

from circuitscope.cli import main
from circuitscope.features.build import token_decoder
from circuitscope.features.card import load_card
from circuitscope.features.files import card_ids, read_feature, read_labels, read_manifest
from circuitscope.graph.files import save_graph
from circuitscope.models.loading import load_model
from circuitscope.testing.tiny_graphs import tiny_graph, write_tiny_corpus, write_tiny_folders
from circuitscope.transcoders.transcoder import Transcoder

COMMON = ["--tokens", "900", "--context-length", "16", "--batch-size", "4", "--no-progress"]
COMMON += [
    "--top-k",
    "4",
    "--intervals",
    "4",
    "--per-interval",
    "2",
    "--before",
    "4",
    "--after",
    "2",
    "--input-tokens",
    "3",
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("features")
    model, transcoder = write_tiny_folders(root)
    corpus = write_tiny_corpus(root)
    trace = root / "trace"
    save_graph(tiny_graph(), trace, "pruned")
    full = root / "full"
    args = ["features", str(model), str(transcoder), "-o", str(full), "--corpus", str(corpus)]
    assert main(args + COMMON) == 0
    return {
        "model": model,
        "transcoder": transcoder,
        "corpus": corpus,
        "trace": trace,
        "full": full,
    }


def test_every_feature_gets_a_consistent_card(setup: dict[str, Path]) -> None:
    full = setup["full"]
    ids = card_ids(full)
    assert len(ids) == 3 * 24  # tiny llama: 3 layers of 24 features
    manifest = read_manifest(full)
    tokens = manifest["tokens_seen"]
    assert tokens == 60 * 15  # ceil(900 / 15) contexts of 15 counted tokens
    fired = 0
    for layer, index in ids:
        card = read_feature(full, layer, index)
        assert independent_read(full, layer, index) == card
        top = card["examples_quantiles"][0]["examples"]
        peaks = [e["tokens_acts_list"][e["train_token_ind"]] for e in top]
        assert peaks == sorted(peaks, reverse=True)
        if peaks:
            fired += 1
            assert card["act_max"] == pytest.approx(peaks[0], abs=1e-5)
            assert card["quantile_values"][-1] == card["act_max"]
            assert sum(card["histogram"]) == pytest.approx(card["activation_frequency"] * tokens)
        for group in card["examples_quantiles"][1:]:
            low, high = (float(x) for x in group["quantile_name"].split(": ")[1].split(" to "))
            for e in group["examples"]:
                value = e["tokens_acts_list"][e["train_token_ind"]]
                assert low * 0.999 <= value < high * 1.001
        assert len(card["top_logits"]) == 10 and len(card["bottom_logits"]) == 10
        assert card["top_logit_values"][0] >= card["bottom_logit_values"][0]
    assert fired > 10
    assert len(read_labels(full)) == 72


@torch.no_grad()
def test_cards_hold_the_top_input_tokens(setup: dict[str, Path]) -> None:
    """The tiny CLT reads mlp_in: tokens ranked by (g ⊙ E) · W_enc[:, i] (g the MLP norm's
    weight); scores are those times 1 / (the norm's mean divisor), one factor per layer."""
    loaded = load_model(str(setup["model"]))
    transcoder = Transcoder.load(setup["transcoder"])
    decode = token_decoder(loaded.tokenizer)
    embedding_weight = loaded.adapter.embedding.weight
    assert isinstance(embedding_weight, torch.Tensor)
    embeddings = embedding_weight.double()
    for layer in range(3):
        norm = loaded.adapter.layers[layer].get_submodule(loaded.adapter.spec.mlp_norm)
        weight = norm.weight
        assert isinstance(weight, torch.Tensor)
        scores = (embeddings * weight.double()) @ transcoder.layer(layer).W_enc.double()
        ratios = []
        for index in range(24):
            card = read_feature(setup["full"], layer, index)
            top = scores[:, index].topk(3)
            assert card["top_input_tokens"] == decode(top.indices.tolist())
            ratios.append(torch.tensor(card["top_input_token_values"]) / top.values)
        ratio = torch.cat(ratios)  # 1 / divisor: the same for every token and feature
        assert float(ratio.min()) > 0
        assert float(ratio.max()) == pytest.approx(float(ratio.min()), rel=1e-4)


def assert_same_card(got: object, want: object, where: str = "card") -> None:
    """Equal cards: the same structure, strings, ints and order; floats within float32
    rounding (--features-of encodes only the graph's columns: a narrower matmul)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), where
        for key in want:
            assert_same_card(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same_card(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6), where
    else:
        assert got == want, where


def test_features_of_gives_the_same_cards_and_a_second_run_adds(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "graph-features"
    base = ["features", str(setup["model"]), str(setup["transcoder"]), "-o", str(out)]
    base += ["--corpus", str(setup["corpus"]), *COMMON]
    assert main([*base, "--features-of", str(setup["trace"])]) == 0
    some = card_ids(out)
    assert 0 < len(some) < 72
    for layer, index in some:
        assert_same_card(read_feature(out, layer, index), read_feature(setup["full"], layer, index))
    assert main(base) == 0  # adds the rest, keeps the first ones
    assert card_ids(out) == card_ids(setup["full"])
    for layer, index in card_ids(out):
        assert_same_card(read_feature(out, layer, index), read_feature(setup["full"], layer, index))


def test_a_folder_from_before_the_intervals_rename_is_still_added_to(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """features.json once said `n_intervals`; the same settings must still match it."""
    old = tmp_path / "old"
    shutil.copytree(setup["full"], old)
    manifest = json.loads((old / "features.json").read_text())
    manifest["settings"]["n_intervals"] = manifest["settings"].pop("intervals")
    (old / "features.json").write_text(json.dumps(manifest))
    args = ["features", str(setup["model"]), str(setup["transcoder"]), "-o", str(old)]
    assert main([*args, "--corpus", str(setup["corpus"]), *COMMON]) == 0
    assert "all 72 cards asked for are already there" in capsys.readouterr().out
    assert main([*args, "--corpus", str(setup["corpus"]), *COMMON, "--intervals", "8"]) == 2
    assert "another settings" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "value"), [("--logits", "5"), ("--input-tokens", "4"), ("--input-tokens", "0")]
)
def test_a_second_run_with_other_card_contents_is_refused(
    setup: dict[str, Path], option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Cards keep --logits and --input-tokens entries each: a folder holds one shape."""
    assert read_manifest(setup["full"])["card_contents"] == {"logits": 10, "input_tokens": 3}
    args = ["features", str(setup["model"]), str(setup["transcoder"]), "-o", str(setup["full"])]
    assert main([*args, "--corpus", str(setup["corpus"]), *COMMON, option, value]) == 2
    err = capsys.readouterr().err.strip()
    assert "another card_contents" in err and "\n" not in err
    assert "'input_tokens': 3" in err


def test_a_folder_from_before_card_contents_and_bos_were_recorded_is_added_to(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """features.json once had no card_contents (counts unknown: not checked) and no corpus
    bos (contexts were packed as --bos auto packs them); a run must still add to it."""
    old = tmp_path / "old"
    base = ["features", str(setup["model"]), str(setup["transcoder"]), "-o", str(old)]
    base += ["--corpus", str(setup["corpus"]), *COMMON]
    assert main([*base, "--features-of", str(setup["trace"])]) == 0
    some = card_ids(old)
    manifest = json.loads((old / "features.json").read_text())
    del manifest["card_contents"], manifest["corpus"]["bos"]
    (old / "features.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(base) == 0
    out = capsys.readouterr().out
    assert f"wrote {72 - len(some)} cards ({len(some)} kept)" in out
    assert "contexts start with" in out and "(--bos auto)" in out
    assert card_ids(old) == card_ids(setup["full"])
    for layer, index in card_ids(old):
        assert_same_card(read_feature(old, layer, index), read_feature(setup["full"], layer, index))
    manifest = read_manifest(old)  # rewritten by the run that added: now complete
    assert manifest["card_contents"] == {"logits": 10, "input_tokens": 3}
    assert manifest["corpus"]["bos"] == "auto"
    assert main([*base, "--bos", "never"]) == 2
    assert "another corpus" in capsys.readouterr().err
    # always packs the same contexts as auto (both start with the sink): accepted
    assert main([*base, "--bos", "always"]) == 0
    assert "all 72 cards asked for are already there" in capsys.readouterr().out


def test_bos_never_packs_other_contexts_and_does_not_mix_with_auto(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--bos never: contexts start with a text token (still position 0, still skipped, as
    eval skips it); its cards differ from auto's, and the two never share a folder."""
    never = tmp_path / "never"
    base = ["features", str(setup["model"]), str(setup["transcoder"]), "-o", str(never)]
    base += ["--corpus", str(setup["corpus"]), *COMMON]
    assert main([*base, "--bos", "never"]) == 0
    assert "contexts start with no BOS (--bos never)" in capsys.readouterr().out
    manifest, auto = read_manifest(never), read_manifest(setup["full"])
    assert manifest["corpus"]["bos"] == "never" and auto["corpus"]["bos"] == "auto"
    assert "--bos never" in manifest["position_0"] and "skipped" in manifest["position_0"]
    assert "BOS / attention sink" in auto["position_0"]
    assert manifest["tokens_seen"] == auto["tokens_seen"] == 60 * 15
    assert card_ids(never) == card_ids(setup["full"])
    differs = [
        k for k in card_ids(never) if read_feature(never, *k) != read_feature(setup["full"], *k)
    ]
    assert differs
    assert main(base) == 2  # --bos auto into the never folder
    err = capsys.readouterr().err.strip()
    assert "another corpus" in err and "'bos': 'never'" in err and "\n" not in err
    assert main([*base, "--bos", "never"]) == 0
    assert "all 72 cards asked for are already there" in capsys.readouterr().out


def test_feature_prints_a_card_and_sets_a_label(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full = setup["full"]
    layer, index = max(card_ids(full), key=lambda k: read_feature(full, *k)["act_max"])
    export = tmp_path / "np.json"
    assert main(["feature", str(full), str(layer), str(index), "--neuronpedia", str(export)]) == 0
    out = capsys.readouterr().out
    card = load_card(full, layer, index)
    assert f"L{layer}/F{index}" in out and "«" in out and "density" in out
    assert f"{card.top_examples[0].value:8.3f}" in out
    assert len(card.top_input_tokens) == 3
    assert "input tokens   " + repr(card.top_input_tokens[0][0]) in out
    document = json.loads(export.read_text())
    assert document["index"] == str(index) and document["maxActApprox"] == card.act_max
    assert document["pos_str"] == [s for s, _ in card.top_logits]
    assert document["activations"][0]["maxValue"] == pytest.approx(card.act_max)
    assert main(["feature", str(full), str(layer), str(index), "--label", "my label"]) == 0
    assert load_card(full, layer, index).label == "my label"
    assert main(["feature", str(full), str(layer), str(index), "--label", ""]) == 0
    assert load_card(full, layer, index).label == card.record["label"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["feature", "{full}", "5", "0"], "no layer 5"),
        (["feature", "{full}", "0", "99"], "no feature 99 in layer 0"),
        (["feature", "{root}/nowhere", "0", "0"], "not a finished features folder"),
    ],
)
def test_bad_feature_requests_are_one_line_errors(
    setup: dict[str, Path], args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    values = {"full": str(setup["full"]), "root": str(setup["full"].parent)}
    assert main([a.format(**values) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_bad_inputs_to_features(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("tiny")
    base = ["features", str(setup["model"]), str(setup["transcoder"])]
    assert main([*base, "-o", str(tmp_path / "a"), "--corpus", str(empty), *COMMON]) == 2
    assert "no complete context" in capsys.readouterr().err
    assert not (tmp_path / "a" / "index.json.gz").exists()
    other_model, _ = write_tiny_folders(tmp_path / "other", "gpt2")
    args = ["features", str(other_model), str(setup["transcoder"]), "-o", str(tmp_path / "b")]
    assert main([*args, "--corpus", str(setup["corpus"]), *COMMON]) == 2
    assert "does not fit" in capsys.readouterr().err
    args = [*base, "-o", str(setup["full"]), "--corpus", str(setup["corpus"]), *COMMON]
    assert main([*args, "--top-k", "5"]) == 2
    assert "another settings" in capsys.readouterr().err
    assert main([*args, "--intervals", "3"]) == 2
    assert "power of two" in capsys.readouterr().err
