"""Reading some rows of a safetensors tensor: the right rows, and few others read."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transcoder_fixtures import ReadRecorder

from circuitscope.transcoders.safetensors_files import read_rows

ROWS = [0, 2, 3, 9, 10, 11, 30, 63]


@pytest.mark.parametrize("gap", [0, 1, 8, 100])
def test_the_rows_asked_for_whatever_the_gap(tmp_path: Path, gap: int) -> None:
    table = torch.arange(64 * 3, dtype=torch.float32).reshape(64, 3)
    save_file({"W": table, "V": table.to(torch.bfloat16)}, str(tmp_path / "t.safetensors"))
    rows = torch.tensor(ROWS)
    for name in ("W", "V"):
        got = read_rows(tmp_path / "t.safetensors", name, rows, gap=gap)
        assert got.dtype == (torch.float32 if name == "W" else torch.bfloat16)
        assert torch.equal(got.float(), table[rows])
    assert read_rows(tmp_path / "t.safetensors", "W", torch.zeros(0, dtype=torch.long)).shape == (
        0,
        3,
    )


@pytest.mark.parametrize(("gap", "rows_read"), [(0, 8), (1, 9), (8, 14), (100, 64)])
def test_only_the_gaps_up_to_gap_are_read(
    tmp_path: Path, reads: ReadRecorder, gap: int, rows_read: int
) -> None:
    # gaps between the wanted rows: 1, 0, 5, 0, 0, 18, 32 rows
    save_file({"W": torch.zeros(64, 3)}, str(tmp_path / "t.safetensors"))
    reads.reset()
    read_rows(tmp_path / "t.safetensors", "W", torch.tensor(ROWS), gap=gap)
    assert reads.bytes_read == rows_read * 3 * 4
