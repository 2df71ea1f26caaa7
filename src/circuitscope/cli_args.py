"""Build argparse options from a config dataclass, and the config back from them.

Each field becomes `--field-name` (or a positional when its metadata says
`positional=True`), typed from its annotation, with its docstring as help.
Supported annotations: str, int, float, bool, Literal[...], X | None, list[X].
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from circuitscope.configs import field_docs

C = TypeVar("C")


def positional(default: Any = dataclasses.MISSING, **kwargs: Any) -> Any:
    """A dataclass field that the CLI takes as a positional argument."""
    metadata = {"positional": True, **kwargs.pop("metadata", {})}
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one argument per field of dataclass `cls` to `parser`."""
    hints = get_type_hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        kind, choices, many = _parse_annotation(hints[f.name])
        has_default = f.default is not dataclasses.MISSING or (
            f.default_factory is not dataclasses.MISSING
        )
        default = _default_of(f)
        help_text = docs.get(f.name, "")
        if has_default and default not in (None, [], ()) and kind is not bool:
            help_text += f" (default: {default})"
        kwargs: dict[str, Any] = {"help": help_text, "dest": f.name}
        if choices:
            kwargs["choices"] = choices
        if f.metadata.get("positional"):
            kwargs.pop("dest")
            kwargs["metavar"] = f.name.upper()
            if many:
                kwargs["nargs"] = "*" if has_default else "+"
            elif has_default:
                kwargs["nargs"] = "?"
            parser.add_argument(f.name, type=kind, default=default, **kwargs)
            continue
        flags = ["--" + f.name.replace("_", "-")]
        if "short" in f.metadata:
            flags.insert(0, f.metadata["short"])
        if kind is bool:
            parser.add_argument(
                *flags, action=argparse.BooleanOptionalAction, default=default, **kwargs
            )
        else:
            if many:
                kwargs["nargs"] = "*"
            parser.add_argument(
                *flags, type=kind, default=default, required=not has_default, **kwargs
            )


def config_from_namespace(cls: type[C], namespace: argparse.Namespace) -> C:
    """Instantiate dataclass `cls` from the parsed arguments."""
    assert dataclasses.is_dataclass(cls)
    values = {f.name: getattr(namespace, f.name) for f in dataclasses.fields(cls)}
    return cls(**values)


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _parse_annotation(annotation: Any) -> tuple[type, list[Any] | None, bool]:
    """(element type, choices, takes many values) for a field annotation."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"unsupported union annotation {annotation}")
        return _parse_annotation(inner[0])
    if origin in (list, tuple, typing.Sequence):
        element, choices, _ = _parse_annotation(get_args(annotation)[0])
        return element, choices, True
    if origin is Literal:
        choices = list(get_args(annotation))
        return type(choices[0]), choices, False
    if annotation in (str, int, float, bool):
        return annotation, None, False
    raise TypeError(f"unsupported config annotation {annotation}")
