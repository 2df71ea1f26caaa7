"""AuxK (Gao et al. 2024, A.2): dead features learn to reconstruct the residual error.

The loss by hand and against a plain autograd reference (PLT and CLT; TopK on the sparse
and dense paths, BatchTopK, JumpReLU; bf16 autocast); dead features get gradients only
with it; it is zero and free when nothing is dead; aux_k = 0 trains exactly as before;
a run with it resumes exactly.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Literal

import pytest
import torch
from ddp_runs import run_one_and_two
from training_fixtures import (  # noqa: F401
    TOPK_PLT_RUN,
    rewind_to_checkpoint,
    tiny_store_fixture,
    transcoder_weights,
)

from circuitscope.cli import build_parser, main
from circuitscope.cli_args import config_from_namespace, read_settings_file
from circuitscope.commands.training_commands import TrainConfig, with_preset
from circuitscope.data.store_reader import ActivationStore
from circuitscope.errors import CircuitscopeError
from circuitscope.training import forward
from circuitscope.training.forward import aux_reconstruction, training_forward
from circuitscope.training.losses import aux_k_loss
from circuitscope.training.settings import TrainSettings
from circuitscope.training.sources import StoreSource
from circuitscope.training.trainer import LossModule, resume_conflicts, train
from circuitscope.transcoders.config import TranscoderConfig
from circuitscope.transcoders.initialize import random_transcoder
from circuitscope.transcoders.transcoder import Transcoder


def _hand_transcoder() -> Transcoder:
    """2 layers of the same 3 features over d_model 2: a PLT with TopK k=1."""
    config = TranscoderConfig(
        kind="plt",
        n_layers=2,
        d_model=2,
        n_features=[3, 3],
        activation="topk",
        activation_params={"k": 1, "relu": True},
    )
    transcoder = random_transcoder(config, seed=0)
    with torch.no_grad():
        for layer in range(2):
            block = transcoder.layer(layer)
            block.W_enc.copy_(torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 1.0]]))
            block.b_enc.zero_()
            block.W_dec.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
            block.b_dec.zero_()
    return transcoder


# Two tokens, the same input and target at both layers:
#   x = [1, 0] -> h = [2, 1, 0];  x = [1, 2] -> h = [2, 3, 2]
#   TopK k=1 keeps feature 0 (2) and feature 1 (3): ŷ = [2, 0] and [0, 3]
#   y = [2, 2] and [1, 5]: e = y - ŷ = [0, 2] and [1, 2]; mean_b ‖e‖² = (4 + 5) / 2 = 4.5
HAND_X = torch.tensor([[[1.0, 0.0]] * 2, [[1.0, 2.0]] * 2])
HAND_Y = torch.tensor([[[2.0, 2.0]] * 2, [[1.0, 5.0]] * 2])


def _hand_loss(dead: list[list[int]], aux_k: int, sparse_regime: bool, monkeypatch) -> tuple:
    if sparse_regime:
        monkeypatch.setattr(forward, "AUX_DENSE_RATIO", 0)
    transcoder = _hand_transcoder()
    settings = TrainSettings(kind="plt", activation="topk", k=1, aux_k=aux_k, aux_coefficient=0.5)
    module = LossModule(transcoder, settings)
    ids = [torch.tensor(d, dtype=torch.int64) for d in dead]
    loss, terms, out = module(HAND_X, HAND_Y, 0.0, ids)
    assert torch.equal(out.reconstruction[:, 0], torch.tensor([[2.0, 0.0], [0.0, 3.0]]))
    return loss, terms


@pytest.mark.parametrize("sparse_regime", [False, True])
def test_aux_loss_by_hand(sparse_regime: bool, monkeypatch):
    # layer 0, dead {1, 2}, aux_k = 1: h_dead = [1, 0] and [3, 2] keep feature 1 (1 and 3):
    #   ê = [0, 1] and [0, 3]; e - ê = [0, 1] and [1, -1]: mean 1.5; 2 · 1.5 / 4.5 = 2/3
    # layer 1, dead {2}: h_dead = [0] and [2]: ê = 0 and 2 · [1, 1] = [2, 2];
    #   e - ê = [0, 2] and [-1, 0]: mean 2.5; 2 · 2.5 / 4.5 = 10/9
    loss, terms = _hand_loss([[1, 2], [2]], 1, sparse_regime, monkeypatch)
    assert terms["aux"].item() == pytest.approx(2 / 3 + 10 / 9, rel=1e-6)
    # main loss: Σ_l mean_b ‖ŷ_l − y_l‖² = 2 · 4.5; plus 0.5 · aux
    assert terms["reconstruction"].item() == pytest.approx(9.0)
    assert loss.item() == pytest.approx(9.0 + 0.5 * (2 / 3 + 10 / 9), rel=1e-6)


@pytest.mark.parametrize("aux_k", [2, 512])
def test_aux_k_is_capped_at_the_dead_features_and_a_layer_without_any_adds_nothing(
    aux_k: int, monkeypatch
):
    # layer 0, dead {1, 2}, both kept: ê = 1·[0, 1] + 0·[1, 1] = [0, 1] and
    #   3·[0, 1] + 2·[1, 1] = [2, 5]; e - ê = [0, 1] and [-1, -3]: mean 5.5; 2·5.5/4.5 = 22/9
    # layer 1: none dead, no term (not 2 · 4.5 / 4.5 for ê = 0)
    _, terms = _hand_loss([[1, 2], []], aux_k, False, monkeypatch)
    assert terms["aux"].item() == pytest.approx(22 / 9, rel=1e-6)


def _config(kind: Literal["clt", "plt"], activation: str, n: int = 24) -> TranscoderConfig:
    params: dict[str, object] = {"bandwidth": 0.1} if activation == "jumprelu" else {"k": 3}
    return TranscoderConfig(
        kind=kind,
        n_layers=3,
        d_model=8,
        n_features=[n] * 3,
        activation=activation,
        activation_params=params,
    )


def _reference_aux(transcoder: Transcoder, x, y, reconstruction, dead, aux_k: int):
    """AuxK by plain autograd: top aux_k of the dead features' pre-activations (others
    at -inf), ReLU, a dense decode to every output layer, the loss summed over layers."""
    config = transcoder.config
    d = config.d_model
    estimates: dict[int, torch.Tensor] = {}
    for layer in range(config.n_layers):
        if dead[layer].numel() == 0:
            continue
        block = transcoder.layer(layer)
        h = x[:, layer] @ block.W_enc + block.b_enc
        mask = torch.zeros(h.shape[1], dtype=torch.bool)
        mask[dead[layer]] = True
        k = min(aux_k, int(mask.sum()))
        top = h.detach().masked_fill(~mask, float("-inf")).topk(k, dim=-1).indices
        a = torch.zeros_like(h).scatter(1, top, torch.relu(h.gather(1, top)))
        decoded = a @ block.W_dec.reshape(block.n_features, -1)
        decoded = decoded.view(x.shape[0], config.n_outputs(layer), d)
        for slot, out_layer in enumerate(config.output_layers(layer)):
            estimates[out_layer] = estimates.get(out_layer, 0) + decoded[:, slot]
    total = torch.zeros((), dtype=x.dtype)
    for layer, estimate in estimates.items():
        e = y[:, layer] - reconstruction[:, layer].detach()
        total = total + d * (e - estimate).pow(2).sum() / e.pow(2).sum()
    return total


CASES = [
    ("plt", "topk", True),
    ("clt", "topk", True),
    ("clt", "topk", False),  # TopK on the dense path
    ("clt", "batchtopk", False),
    ("plt", "jumprelu", False),
    ("clt", "jumprelu", False),
]


@pytest.mark.parametrize(("kind", "activation", "sparse"), CASES)
@pytest.mark.parametrize("sparse_regime", [False, True])
def test_aux_loss_and_gradients_equal_a_plain_reference(
    kind, activation: str, sparse: bool, sparse_regime: bool, monkeypatch
):
    if sparse_regime:
        monkeypatch.setattr(forward, "AUX_DENSE_RATIO", 0)
    transcoder = random_transcoder(_config(kind, activation), seed=4, threshold=0.5).double()
    g = torch.Generator().manual_seed(5)
    x = torch.randn(10, 3, 8, generator=g, dtype=torch.float64)
    y = torch.randn(10, 3, 8, generator=g, dtype=torch.float64)
    dead = [
        torch.tensor([1, 4, 5, 9, 17, 23]),
        torch.tensor([], dtype=torch.int64),
        torch.arange(8),
    ]
    grads = []
    for use_reference in (False, True):
        for p in transcoder.parameters():
            p.grad = None
        out = training_forward(transcoder, x, sparse=sparse)
        if use_reference:
            value = _reference_aux(transcoder, x, y, out.reconstruction, dead, 5)
        else:
            found = aux_reconstruction(transcoder, x, out.pre_activations, dead, 5)
            assert found is not None
            assert sorted(found) == ([0, 2] if kind == "plt" else [0, 1, 2])
            value = aux_k_loss(found, y, out.reconstruction)
        (out.reconstruction.pow(2).sum() * 1e-3 + value).backward()
        grads.append({n: p.grad.clone() for n, p in transcoder.named_parameters()})  # type: ignore[union-attr]
        assert all(not p.grad.is_sparse for p in transcoder.parameters())  # type: ignore[union-attr]
        grads[-1]["value"] = value.detach()
    got, want = grads
    assert float(want["value"]) > 0
    assert got.keys() == want.keys()
    # a CLT's contributions to a layer are summed in fp32 (`sum_layer_outputs`, as in the
    # main pass); a PLT's are float64 throughout
    tolerance = 1e-10 if kind == "plt" else 1e-6
    for name, value in want.items():
        scale = float(value.abs().max())
        torch.testing.assert_close(got[name], value, rtol=tolerance, atol=tolerance * scale)


@pytest.mark.parametrize("kind", ["plt", "clt"])
def test_bf16_autocast_matches_float32(kind):
    transcoder = random_transcoder(_config(kind, "topk", n=64), seed=6)
    g = torch.Generator().manual_seed(7)
    x, y = torch.randn(32, 3, 8, generator=g), torch.randn(32, 3, 8, generator=g)
    dead = [torch.arange(0, 64, 3), torch.arange(10), torch.tensor([5, 6])]
    values = []
    for enabled in (False, True):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
            out = training_forward(transcoder, x)
            found = aux_reconstruction(transcoder, x, out.pre_activations, dead, 4)
            assert found is not None
            values.append(aux_k_loss(found, y, out.reconstruction))
        values[-1].backward()
    assert values[1].dtype == torch.float32 and torch.isfinite(values[1])
    assert values[1].item() == pytest.approx(values[0].item(), rel=2e-2)


def _module_grads(aux_k: int, dead: list[torch.Tensor] | None, x, y):
    transcoder = random_transcoder(_config("plt", "topk", n=48), seed=8)
    settings = TrainSettings(kind="plt", activation="topk", k=3, aux_k=aux_k)
    loss, terms, out = LossModule(transcoder, settings)(x, y, 0.0, dead)
    loss.backward()
    grads: dict[str, torch.Tensor] = {}
    for name, param in transcoder.named_parameters():
        assert param.grad is not None and not param.grad.is_sparse, name
        grads[name] = param.grad
    return loss, terms, out, grads


def test_dead_features_get_encoder_gradient_only_with_aux_k():
    g = torch.Generator().manual_seed(9)
    x, y = torch.randn(16, 3, 8, generator=g), torch.randn(16, 3, 8, generator=g)
    _, _, out, _ = _module_grads(0, None, x, y)
    # dead: the features that did not fire on this batch (so the main loss leaves them be)
    dead = [(fires == 0).nonzero().flatten() for fires in out.fire_counts()]
    assert all(len(ids) > 10 for ids in dead)
    _, _, _, without = _module_grads(0, dead, x, y)
    _, terms, _, with_aux = _module_grads(16, dead, x, y)
    assert terms["aux"].item() > 0
    for layer, ids in enumerate(dead):
        for name, cols in (("W_enc", (slice(None), ids)), ("b_enc", (ids,))):
            key = f"blocks.{layer}.{name}"
            assert torch.count_nonzero(without[key][cols]) == 0, key
            assert torch.count_nonzero(with_aux[key][cols]) > 0.8 * without[key][cols].numel()
        assert torch.count_nonzero(without[f"blocks.{layer}.W_dec"][ids]) == 0
        assert torch.count_nonzero(with_aux[f"blocks.{layer}.W_dec"][ids]) > 0
        # every other entry's gradient is the main loss's alone, bit for bit
        alive = torch.ones(48, dtype=torch.bool)
        alive[ids] = False
        for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
            key = f"blocks.{layer}.{name}"
            a, b = without[key], with_aux[key]
            if name == "W_enc":
                a, b = a[:, alive], b[:, alive]
            elif name != "b_dec":
                a, b = a[alive], b[alive]
            assert torch.equal(a, b), key


def test_nothing_dead_gives_zero_and_the_same_step():
    g = torch.Generator().manual_seed(10)
    x, y = torch.randn(16, 3, 8, generator=g), torch.randn(16, 3, 8, generator=g)
    none_dead = [torch.tensor([], dtype=torch.int64)] * 3
    loss0, terms0, _, grads0 = _module_grads(0, None, x, y)
    loss1, terms1, _, grads1 = _module_grads(512, none_dead, x, y)
    assert "aux" not in terms0 and float(terms1["aux"]) == 0.0
    assert torch.equal(loss0, loss1)
    for name, grad in grads0.items():
        assert torch.equal(grad, grads1[name]), name


FAST = dict(
    **TOPK_PLT_RUN,
    dead_after_tokens=512,
    log_every=2,
    checkpoint_every=0,
    steps=12,
)


def _run(store: Path, out: Path, **changes) -> list[dict]:
    settings = TrainSettings(**{**FAST, **changes})  # type: ignore[arg-type]
    source = StoreSource(ActivationStore(store), settings.batch_size, settings.seed)
    train(source, settings, out, progress=False)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    for record in log:
        record.pop("elapsed_s")
        record.pop("cpu_s")
    return log


def test_aux_k_zero_trains_bit_identically_to_the_default(tiny_store: Path, tmp_path: Path):
    assert TrainSettings().aux_k == 0  # off unless asked for: old configs train as before
    default = _run(tiny_store, tmp_path / "default")
    zero = _run(tiny_store, tmp_path / "zero", aux_k=0, aux_coefficient=5.0)
    on = _run(tiny_store, tmp_path / "on", aux_k=16)
    assert default[-1]["dead"] > 0.05  # AuxK would have had features to train
    assert all("aux" not in record for record in default)
    assert zero == default
    a = transcoder_weights(tmp_path / "default" / "transcoder")
    b = transcoder_weights(tmp_path / "zero" / "transcoder")
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)
    c = transcoder_weights(tmp_path / "on" / "transcoder")
    assert not all(torch.equal(a[key], c[key]) for key in a)
    assert on[0]["aux"] == 0.0 and on[-1]["aux"] > 0  # logged; 0 until a feature is dead
    # nothing dead (dead_after_tokens past the run): on costs nothing, changes nothing
    never = dict(dead_after_tokens=10**9)
    quiet = _run(tiny_store, tmp_path / "quiet", aux_k=16, **never)
    plain = _run(tiny_store, tmp_path / "plain", **never)
    assert all(record.pop("aux") == 0.0 for record in quiet) and quiet == plain


def test_the_dead_set_is_the_one_the_log_counts(tiny_store: Path, tmp_path: Path, monkeypatch):
    from circuitscope.training import trainer

    seen: list[list[torch.Tensor]] = []

    def spy(transcoder, mlp_in, pre_activations, dead, aux_k):
        seen.append([ids.clone() for ids in dead])
        return aux_reconstruction(transcoder, mlp_in, pre_activations, dead, aux_k)

    monkeypatch.setattr(trainer, "aux_reconstruction", spy)
    log = _run(tiny_store, tmp_path / "run", aux_k=16, log_every=1)
    assert len(seen) == 12 and all(len(ids) == 0 for ids in seen[0])
    # the features counted dead after step s (the log's fraction) are AuxK's at step s + 1
    for before, dead in zip(log, seen[1:], strict=False):
        assert all(torch.equal(ids, ids.unique()) for ids in dead)  # sorted, distinct
        counted = sum(len(ids) for ids in dead) / (3 * 64)
        assert counted == pytest.approx(before["dead"]), before["step"]
    assert max(record["dead"] for record in log) > 0.05


def test_old_settings_without_aux_fields_load_and_resume(tmp_path: Path):
    saved = dataclasses.asdict(TrainConfig(source="store", out="run"))
    for key in ("aux_k", "aux_coefficient"):
        del saved[key]
    (tmp_path / "train_config.json").write_text(json.dumps(saved))
    values = read_settings_file(TrainConfig, str(tmp_path / "train_config.json"))
    loaded = TrainConfig(**values)
    assert loaded.aux_k == 0 and loaded.aux_coefficient == TrainSettings().aux_coefficient
    old = {k: v for k, v in dataclasses.asdict(TrainSettings()).items() if not k.startswith("aux")}
    assert resume_conflicts(old, TrainSettings()) == []
    assert resume_conflicts(old, TrainSettings(aux_coefficient=0.5)) == []  # unused at aux_k 0
    assert resume_conflicts(old, TrainSettings(aux_k=512)) == ["aux_k"]
    now = dataclasses.asdict(TrainSettings(aux_k=512))
    assert resume_conflicts(now, TrainSettings(aux_k=512, aux_coefficient=0.5)) == [
        "aux_coefficient"
    ]
    assert resume_conflicts(now, TrainSettings(aux_k=512, dead_after_tokens=5)) == [
        "dead_after_tokens"
    ]


def test_no_preset_sets_aux_k_and_the_command_line_does():
    for preset in ("demo", "quality"):
        assert with_preset(TrainConfig(source="m", out="o", preset=preset)).aux_k == 0  # type: ignore[arg-type]
    args = build_parser().parse_args(["train", "m", "o", "--preset", "quality", "--aux-k", "512"])
    config = with_preset(config_from_namespace(TrainConfig, args))
    assert config.aux_k == 512 and config.aux_coefficient == 1 / 32
    assert config.n_features == 4096 and config.k == 32 and config.activation == "topk"


def test_unsupported_settings_are_refused(tiny_store: Path, tmp_path: Path):
    with pytest.raises(CircuitscopeError, match="--aux-k needs --activation topk"):
        _run(tiny_store, tmp_path / "relu", activation="relu", aux_k=8)
    with pytest.raises(CircuitscopeError, match="must be >= 0"):
        _run(tiny_store, tmp_path / "negative", aux_k=-1)


def test_a_run_with_aux_k_resumes_exactly(tiny_store: Path, tmp_path: Path):
    flags = ["--kind", "plt", "--activation", "topk", "--k", "4", "--n-features", "64"]
    flags += ["--batch-size", "256", "--steps", "12", "--autocast", "off", "--no-progress"]
    flags += ["--dead-after-tokens", "512", "--aux-k", "8", "--log-every", "1"]
    flags += ["--checkpoint-every", "6", "--keep-checkpoints", "4"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(["train", str(tiny_store), str(whole), *flags]) == 0
    assert json.loads((whole / "train_config.json").read_text())["aux_k"] == 8
    shutil.copytree(whole, cut)
    rewind_to_checkpoint(cut, 6, 12)
    assert main(["train", str(cut), "--resume", "--no-progress"]) == 0
    log = [json.loads(line) for line in (cut / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 13))
    assert log[4]["aux"] > 0 and log[-1]["aux"] > 0  # on before and after the cut
    a, b = transcoder_weights(whole / "transcoder"), transcoder_weights(cut / "transcoder")
    assert a.keys() == b.keys() and len(a) > 0
    assert all(torch.equal(a[key], b[key]) for key in a)


DDP_SCRIPT = """
import sys
from pathlib import Path
from circuitscope.data.store_reader import ActivationStore
from circuitscope.training.settings import TrainSettings
from circuitscope.training.sources import StoreSource
from circuitscope.training.trainer import train
settings = TrainSettings(kind="plt", activation="topk", k=4, n_features=64, batch_size=256,
                         autocast="off", steps=20, checkpoint_every=0, log_every=20,
                         dead_after_tokens=512, aux_k=16)
source = StoreSource(ActivationStore(sys.argv[1]), 256, 0)
train(source, settings, Path(sys.argv[2]), progress=False)
"""


@pytest.mark.slow
def test_two_process_ddp_with_aux_k_matches_one_process(tiny_store: Path, tmp_path: Path):
    script = tmp_path / "run.py"
    script.write_text(DDP_SCRIPT)
    store = str(tiny_store)
    run_one_and_two([str(script)], [store, str(tmp_path / "one")], [store, str(tmp_path / "two")])
    log = json.loads((tmp_path / "one" / "train_log.jsonl").read_text().splitlines()[-1])
    assert log["aux"] > 0 and log["dead"] > 0
    one = transcoder_weights(tmp_path / "one" / "transcoder")
    two = transcoder_weights(tmp_path / "two" / "transcoder")
    assert one.keys() == two.keys()
    for name in one:  # the denominator ‖e‖² is the whole batch's on both processes
        torch.testing.assert_close(one[name], two[name], atol=2e-5, rtol=1e-4, msg=name)
