"""`load_model`: a hub id, a local folder, a GGUF file, or the bundled model."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from circuitscope.errors import CircuitscopeError
from circuitscope.models.adapter import ModelAdapter
from circuitscope.models.architectures import spec_for_config
from circuitscope.models.gguf_cache import BUNDLED_NAME, bundled_gguf, dequantized

BUNDLED_ALIASES = {BUNDLED_NAME, "smollm2", "smollm2-135m-instruct"}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    adapter: ModelAdapter
    source: str
    """Where the weights came from, as a user would write it."""


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise CircuitscopeError(f"unknown dtype {dtype!r}; choose from {', '.join(DTYPES)}")
    return DTYPES[dtype]


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CircuitscopeError("device 'cuda' asked for, but torch sees no CUDA device")
    return device


def resolved_source(spec: str) -> str:
    """A model or transcoder spec that works from any working directory: local paths made
    absolute, hub ids and the bundled name as given."""
    path = Path(spec).expanduser()
    return str(path.resolve()) if path.exists() else spec


def resolve_source(spec: str) -> tuple[str, str]:
    """(folder or hub id, kind) for a model spec."""
    if not spec.strip():
        raise CircuitscopeError("empty model name")
    if spec.lower() in BUNDLED_ALIASES:
        return str(dequantized(bundled_gguf())), "bundled"
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise CircuitscopeError(f"no such GGUF file: {spec}")
        return str(dequantized(path)), "gguf"
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise CircuitscopeError(f"folder {spec} has no config.json: not a model folder")
        return str(path), "folder"
    if path.exists():
        raise CircuitscopeError(f"{spec} is a file but not a .gguf: cannot load it as a model")
    if HUB_ID.match(spec) and not spec.startswith((".", "/", "~")):
        return spec, "hub"
    if "/" in spec or "\\" in spec or spec.startswith((".", "~")):
        raise CircuitscopeError(f"no such file or folder: {spec}")
    raise CircuitscopeError(
        f"unknown model {spec!r}: give a hub id (org/name), a model folder, a .gguf file, "
        f"or the bundled model {BUNDLED_NAME!r}"
    )


def load_model(
    spec: str,
    device: str = "cpu",
    dtype: str | torch.dtype = "float32",
    check: Callable[[Any], None] | None = None,
) -> LoadedModel:
    """Load a supported causal LM with its tokenizer and adapter, in eval mode.

    spec: a hub id, a local HF folder, a .gguf file, or "smollm2-135m".
    device: "cpu", "cuda", "cuda:N" or "auto". dtype: float32, bfloat16 or float16.
    check: called with the model's transformers config before the weights load (e.g.
    `partial(check_against_model, transcoder)`), so a mismatch fails fast.
    """
    torch_dtype = resolve_dtype(dtype)
    target_device = resolve_device(device)
    location, kind = resolve_source(spec)
    config = _load_pretrained("AutoConfig", location, kind)
    spec_for_config(config)  # unsupported architectures fail before any weights load
    if check is not None:
        check(config)
    model = _load_pretrained("AutoModelForCausalLM", location, kind, dtype=torch_dtype)
    tokenizer = _load_pretrained("AutoTokenizer", location, kind)
    model = model.to(target_device).eval()
    return LoadedModel(model, tokenizer, ModelAdapter(model), source=spec)


def _load_pretrained(factory: str, location: str, kind: str, **kwargs: Any) -> Any:
    import transformers

    cls = getattr(transformers, factory)
    transformers.utils.logging.disable_progress_bar()  # loads of a ready folder are quick
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cls.from_pretrained(location, **kwargs)
    except (OSError, ValueError) as error:
        if kind == "hub":
            raise CircuitscopeError(
                f"cannot load {location!r} from the Hugging Face hub (offline, or no such "
                f"repository?): {str(error).strip().splitlines()[0]}"
            ) from error
        raise CircuitscopeError(
            f"cannot load {location}: {str(error).strip().splitlines()[0]}"
        ) from error
    finally:
        transformers.utils.logging.enable_progress_bar()
