"""Build `firings.c` with the system C compiler once, and load it with ctypes.

The shared library is cached under `cache_root()/kernels`, named by a hash of the
source, the compiler and its flags, so a changed source is rebuilt. Nothing is
required: with no compiler (or `CIRCUITSCOPE_KERNELS=0`) `library()` returns None
and the feature pass runs its torch reference, with the same results. ctypes drops
the GIL during a call, so layers updated side by side run their loops in parallel.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import warnings
from functools import cache
from importlib import resources
from pathlib import Path

from circuitscope.models.gguf_cache import cache_root

FLAGS = ["-O3", "-std=c11", "-ffp-contract=off", "-fno-fast-math", "-shared", "-fPIC"]
SWITCH = "CIRCUITSCOPE_KERNELS"
"""Environment variable: 0 turns the kernel off (the torch reference runs)."""

_P, _I = ctypes.c_void_p, ctypes.c_int64
_SIGNATURES = {
    "firing_totals": (_I, [_P, _I, _I, _I, _P, _P]),
    "firing_select": (ctypes.c_int, [_P, _I, _I, _I, _I, _P] + [_I] * 6 + [_P] * 13),
    "table_offer": (_I, [_I, _P, _P, _P, _P, _I, _I, _I] + [_P] * 7 + [_I] * 4),
}


@cache
def library() -> ctypes.CDLL | None:
    """The loaded kernel, or None (switched off, no compiler, or the build or load failed)."""
    if os.environ.get(SWITCH, "1") == "0":
        return None
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    source = resources.files("circuitscope.features").joinpath("firings.c").read_bytes()
    try:
        loaded = ctypes.CDLL(str(_built(source, compiler)))
    except (OSError, subprocess.CalledProcessError) as error:
        warnings.warn(
            f"could not build or load the feature pass's C kernel ({error}); using torch",
            stacklevel=2,
        )
        return None
    for name, (result, arguments) in _SIGNATURES.items():
        function = getattr(loaded, name)
        function.restype, function.argtypes = result, arguments
    return loaded


def cached_path(source: bytes, compiler: str) -> Path:
    """Where the library built from `source` by `compiler` is cached."""
    digest = hashlib.sha256(source + " ".join([compiler, *FLAGS]).encode()).hexdigest()[:16]
    return cache_root() / "kernels" / f"firings-{digest}.so"


def _built(source: bytes, compiler: str) -> Path:
    """The cached shared library of `source`, compiled first if missing."""
    target = cached_path(source, compiler)
    folder = target.parent
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        c_file, so_file = Path(scratch) / "firings.c", Path(scratch) / "firings.so"
        c_file.write_bytes(source)
        subprocess.run(
            [compiler, *FLAGS, str(c_file), "-o", str(so_file)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        os.replace(so_file, target)  # atomic: a concurrent process sees all or nothing
    return target
