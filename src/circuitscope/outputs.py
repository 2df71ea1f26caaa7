"""Writing outputs safely: whole files or none, and never over what is not ours.

A command checks where it will write before it computes anything (`check_output_file`,
`check_output_folder`), then writes each file with `write_atomically`: a temporary file
beside it, renamed over the target, so an interrupted command leaves the old file or
none, never half a file that reads as finished.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

from circuitscope.errors import CircuitscopeError


def write_atomically(path: Path, text: str | bytes) -> None:
    """Write a file whole or not at all; creates missing parent folders."""
    data = text.encode() if isinstance(text, str) else text
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json(path: Path, value: Any, indent: int | None = 1) -> None:
    write_atomically(path, json.dumps(value, indent=indent) + "\n")


def check_output_file(path: str | Path, flag: str = "-o") -> Path:
    """A file to (over)write: not a folder, and not inside a file."""
    file = Path(path).expanduser()
    if file.is_dir():
        raise CircuitscopeError(f"{flag} {file} is a folder; give a file name")
    for parent in file.parents:
        if parent.exists():
            if not parent.is_dir():
                raise CircuitscopeError(f"{flag} {file}: {parent} is a file, not a folder")
            break
    return file


def new_output_folder(path: str | Path, force: bool) -> Path:
    """A folder to write into: new or empty, or anything but a file with `force`."""
    folder = Path(path).expanduser()
    if folder.is_file():
        raise CircuitscopeError(f"{folder} is a file; give a folder to write")
    if folder.is_dir() and any(folder.iterdir()) and not force:
        raise CircuitscopeError(f"{folder} exists and is not empty (pass --force to write into it)")
    return folder


def check_output_folder(path: str | Path, own_files: Collection[str], flag: str = "-o") -> Path:
    """A folder to write `own_files` into: new, empty, or holding a previous output of the
    same kind (one of `own_files`); never a file or someone else's folder."""
    folder = Path(path).expanduser()
    if folder.is_file():
        raise CircuitscopeError(f"{flag} {folder} is a file; give a folder")
    ours = any((folder / name).exists() for name in own_files)
    if folder.is_dir() and any(folder.iterdir()) and not ours:
        raise CircuitscopeError(
            f"{flag} {folder} holds other files; give a new folder or a previous output "
            f"folder (one with {', '.join(sorted(own_files))})"
        )
    return folder
