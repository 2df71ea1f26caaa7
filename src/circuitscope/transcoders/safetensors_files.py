"""Reading and writing safetensors files, with errors that name the file.

Every read of a transcoder's safetensors goes through `safe_open` in this module,
so tests can record which files are opened and how many bytes are materialised.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from circuitscope.errors import CircuitscopeError

HEADER_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
}


@contextmanager
def open_safetensors(path: Path) -> Iterator[Any]:
    """An open safetensors file; a missing, truncated or corrupt file is a CircuitscopeError."""
    if not path.is_file():
        raise CircuitscopeError(f"missing file {path}")
    try:
        handle = safe_open(str(path), framework="pt", device="cpu")
    except Exception as error:  # safetensors raises its own SafetensorError
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CircuitscopeError(
            f"{path}: truncated or corrupt safetensors file ({detail})"
        ) from None
    with handle as f:
        yield f


def header(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """Name -> (shape, dtype name) of every tensor, read from the header only."""
    out: dict[str, tuple[tuple[int, ...], str]] = {}
    with open_safetensors(path) as f:
        names = f.keys()
        for name in names:
            view = f.get_slice(name)
            dtype = str(view.get_dtype())
            out[name] = (tuple(view.get_shape()), HEADER_DTYPES.get(dtype, dtype))
    return out


def read_tensors(path: Path, names: list[str] | None = None) -> dict[str, Tensor]:
    """The named tensors (all when None), read on CPU."""
    with open_safetensors(path) as f:
        available = list(f.keys())
        wanted = available if names is None else names
        missing = [name for name in wanted if name not in available]
        if missing:
            raise CircuitscopeError(f"{path}: no tensor named {', '.join(missing)}")
        return {name: f.get_tensor(name) for name in wanted}


ROW_GAP = 8
"""Rows between two wanted ones that `read_rows` reads through rather than slicing twice:
each slice costs microseconds, so scattered rows (thousands per layer on a long prompt)
read faster as fewer, slightly longer slices."""


def read_rows(path: Path, name: str, rows: Tensor, gap: int = ROW_GAP) -> Tensor:
    """Rows `rows` (sorted, unique, 1-D long) of tensor `name`, read without the rest.

    Wanted rows at most `gap` rows apart are read as one slice, so besides them only
    the rows in such gaps are touched.
    """
    rows = rows.to(torch.long).cpu()
    runs = _runs(rows.tolist(), gap)
    with open_safetensors(path) as f:
        view = f.get_slice(name)
        parts = [view[start:stop] for start, stop in runs]
    if not parts:
        shape = tuple(header(path)[name][0])
        return torch.zeros((0, *shape[1:]))
    read = torch.cat(parts)
    if len(read) == len(rows):
        return read
    starts = torch.tensor([start for start, _ in runs])
    lengths = torch.tensor([stop - start for start, stop in runs])
    first_in_read = torch.cumsum(lengths, 0) - lengths  # where each run begins in `read`
    run_of = torch.searchsorted(starts, rows, right=True) - 1
    return read.index_select(0, rows - starts[run_of] + first_in_read[run_of])


def _runs(rows: list[int], gap: int = 0) -> list[tuple[int, int]]:
    """[(start, stop)] covering the sorted `rows`, joining rows at most `gap` apart."""
    runs: list[tuple[int, int]] = []
    for row in rows:
        if runs and row - runs[-1][1] <= gap:
            runs[-1] = (runs[-1][0], row + 1)
        else:
            runs.append((row, row + 1))
    return runs


def write_tensors(
    path: Path, tensors: Mapping[str, Tensor], metadata: dict[str, str] | None = None
) -> None:
    """Write `tensors` to `path` atomically (a partial file never has the final name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    contiguous = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    save_file(contiguous, str(partial), metadata=metadata)
    os.replace(partial, path)
