"""Rank correlation and sign agreement against values computed by hand."""

import math

import pytest
import torch

from circuitscope.interventions.statistics import pearson, ranks, sign_agreement, spearman


def test_ranks_average_ties():
    assert ranks(torch.tensor([10.0, 30.0, 20.0, 20.0])).tolist() == [1.0, 4.0, 2.5, 2.5]


def test_spearman_known_values():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    assert spearman(x, x**3) == pytest.approx(1.0)
    assert spearman(x, -x) == pytest.approx(-1.0)
    # d = rank differences (0, 0, 1, -1, 0): rho = 1 − 6·2 / (5·24) = 0.9
    assert spearman(x, torch.tensor([1.0, 2.0, 4.0, 3.0, 5.0])) == pytest.approx(0.9)
    # With a tie, rho is Pearson's r of the average ranks: [1, 2.5, 2.5, 4] vs [1, 2, 3, 4].
    tied = spearman(torch.tensor([1.0, 2.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert tied == pytest.approx(4.5 / math.sqrt(4.5 * 5.0))


def test_degenerate_inputs():
    assert math.isnan(pearson(torch.ones(4), torch.arange(4.0)))
    with pytest.raises(ValueError, match="lengths differ"):
        spearman(torch.ones(3), torch.ones(4))
    assert (
        sign_agreement(torch.tensor([1.0, -2.0, 0.0, 3.0]), torch.tensor([2.0, 1.0, 0.0, -1.0]))
        == 0.5
    )
