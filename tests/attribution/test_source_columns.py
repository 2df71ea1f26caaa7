"""Columns by forward passes against rows by backward passes: the same edges."""

import pytest
import torch

from circuitscope.attribution.columns import all_columns
from circuitscope.attribution.replacement import LocalReplacement, build_replacement
from circuitscope.attribution.rows import Injection, RowComputer
from circuitscope.attribution.source_columns import source_columns
from circuitscope.attribution.targets import top_logit_targets
from circuitscope.attribution.visit import _feature_injection
from circuitscope.models import causal_mix, sites
from circuitscope.testing.tiny_models import tiny_tokenizer
from circuitscope.testing.tiny_transcoders import VARIANTS, Variant, tiny_exact_pair

PROMPT = "The capital of France is Paris, and two plus two is"


def _replacement(arch: str, variant: Variant) -> tuple[LocalReplacement, list[Injection]]:
    adapter, transcoder = tiny_exact_pair(arch, variant)
    tokenizer = tiny_tokenizer()
    ids = torch.tensor([[tokenizer.bos_token_id, *tokenizer(PROMPT).input_ids]])
    rep = build_replacement(adapter, transcoder, ids)
    targets = top_logit_targets(adapter, tokenizer, rep.recording.logits[0, -1], 2)
    layout = all_columns(len(rep.features), rep.n_layers, rep.seq_len)
    injections = [Injection(sites.FINAL_NORM, rep.seq_len - 1, t.vector) for t in targets]
    injections += [_feature_injection(rep, layout, c) for c in range(0, len(rep.features), 9)]
    return rep, injections


def _rows(rep: LocalReplacement, injections: list[Injection]) -> torch.Tensor:
    layout = all_columns(len(rep.features), rep.n_layers, rep.seq_len)
    computer = RowComputer(rep, layout, 8, 2**30)
    return torch.cat(
        [computer.rows(injections[i : i + 8]).values for i in range(0, len(injections), 8)]
    )


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_columns_equal_the_rows_entries(arch: str, variant: Variant):
    rep, injections = _replacement(arch, variant)
    sources = torch.arange(0, len(rep.features), 4)
    columns = source_columns(rep, sources, injections, batch_size=24)
    reference = _rows(rep, injections)[:, sources]
    largest = float(reference.abs().max())
    assert columns.shape == (len(injections), len(sources)) and largest > 0.1
    assert int((reference != 0).sum()) > reference.numel() // 10  # edges, not zeros
    torch.testing.assert_close(columns, reference, rtol=0, atol=1e-13 * largest)


def test_columns_through_the_blockwise_causal_mix(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(causal_mix, "BLOCK", 4)
    calls = []
    mix = causal_mix._mix

    def counted(*args):  # noqa: ANN002, ANN202
        calls.append(1)
        return mix(*args)

    monkeypatch.setattr(causal_mix, "_mix", counted)
    rep, injections = _replacement("llama", VARIANTS[0])
    sources = torch.arange(len(rep.features))
    columns = source_columns(rep, sources, injections, batch_size=32)
    assert calls  # the batched pass went through the blockwise product
    monkeypatch.setattr(causal_mix, "BLOCK", 10**6)
    reference = _rows(rep, injections)[:, sources]
    torch.testing.assert_close(
        columns, reference, rtol=0, atol=1e-13 * float(reference.abs().max())
    )


def test_sources_late_in_the_prompt_run_on_the_suffix(monkeypatch: pytest.MonkeyPatch):
    """A batch of late sources runs the model on the positions from its earliest one
    on, and targets before it get no edge."""
    rep, injections = _replacement("llama", VARIANTS[0])
    late = torch.nonzero(rep.features.position >= rep.seq_len - 3).flatten()
    lengths = []
    run = rep.adapter.run

    def measured(ids, **kwargs):  # noqa: ANN001, ANN003, ANN202
        lengths.append(int(ids.shape[1]))
        return run(ids, **kwargs)

    monkeypatch.setattr(rep.adapter, "run", measured)
    columns = source_columns(rep, late, injections, batch_size=len(late))
    monkeypatch.setattr(rep.adapter, "run", run)
    first = int(rep.features.position[late].min())
    assert len(late) > 3 and lengths == [rep.seq_len - first] * 2
    reference = _rows(rep, injections)[:, late]
    early = [i for i, injection in enumerate(injections) if injection.position < first]
    assert early and (columns[early] == 0).all() and (reference[early] == 0).all()
    torch.testing.assert_close(
        columns, reference, rtol=0, atol=1e-13 * float(reference.abs().max())
    )


def test_targets_all_before_the_sources_get_no_edges_and_no_pass(
    monkeypatch: pytest.MonkeyPatch,
):
    rep, injections = _replacement("llama", VARIANTS[0])
    early = [i for i in injections if i.position < rep.seq_len - 1]
    late = torch.nonzero(rep.features.position == rep.seq_len - 1).flatten()
    assert early and len(late)
    monkeypatch.setattr(rep.adapter, "run", lambda *a, **k: pytest.fail("no pass needed"))
    columns = source_columns(rep, late, early, batch_size=8)
    assert columns.shape == (len(early), len(late)) and (columns == 0).all()
