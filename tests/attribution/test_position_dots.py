"""`position_dots`: each position's gradient dotted with that position's vector."""

import pytest
import torch

from circuitscope.attribution import rows
from circuitscope.attribution.rows import position_dots


def test_one_product_matches_the_sum_over_d() -> None:
    grad = torch.tensor([[[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]]])  # [1, 3, 2]
    vectors = torch.tensor([[2.0, 1.0], [1.0, 4.0], [-2.0, 6.0]])
    assert position_dots(grad, vectors).tolist() == [[4.0, -1.0, 2.0]]


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 21])
def test_chunks_give_the_einsum_values(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    """Chunked by positions (as long prompts are) or whole, the same numbers."""
    monkeypatch.setattr(rows, "POSITION_DOTS_CHUNK", chunk)
    generator = torch.Generator().manual_seed(0)
    grad = torch.randn(3, 11, 5, generator=generator, dtype=torch.float64)
    vectors = torch.randn(11, 5, generator=generator, dtype=torch.float64)
    expected = torch.einsum("btd,td->bt", grad, vectors)
    result = position_dots(grad, vectors)
    assert result.shape == (3, 11)
    torch.testing.assert_close(result, expected, rtol=0, atol=1e-12)
