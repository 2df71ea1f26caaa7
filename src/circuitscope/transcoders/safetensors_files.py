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


def read_rows(path: Path, name: str, rows: Tensor) -> Tensor:
    """Rows `rows` (sorted, unique, 1-D long) of tensor `name`, read without the rest.

    Consecutive rows are read as one slice, so only their bytes are touched.
    """
    rows = rows.to(torch.long).cpu()
    runs = _runs(rows.tolist())
    with open_safetensors(path) as f:
        view = f.get_slice(name)
        parts = [view[start:stop] for start, stop in runs]
    if not parts:
        shape = tuple(header(path)[name][0])
        return torch.zeros((0, *shape[1:]))
    return torch.cat(parts)


def _runs(rows: list[int]) -> list[tuple[int, int]]:
    """[(start, stop)] covering the sorted `rows` with as few ranges as possible."""
    runs: list[tuple[int, int]] = []
    for row in rows:
        if runs and runs[-1][1] == row:
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
