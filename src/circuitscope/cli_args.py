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
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from circuitscope.configs import field_docs

C = TypeVar("C")


def positional(default: Any = dataclasses.MISSING, **kwargs: Any) -> Any:
    """A dataclass field that the CLI takes as a positional argument."""
    metadata = {"positional": True, **kwargs.pop("metadata", {})}
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


GIVEN = "_given_options"
"""The namespace attribute that lists the options given on the command line."""


def _mark_given(namespace: argparse.Namespace, dest: str) -> None:
    setattr(namespace, GIVEN, getattr(namespace, GIVEN, frozenset()) | {dest})


class _Store(argparse.Action):
    """Store the value, and note that the option was given (even at its default)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, values)
        _mark_given(namespace, self.dest)


class _Switch(argparse.BooleanOptionalAction):
    """`--flag` / `--no-flag`, noting that the option was given."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        super().__call__(parser, namespace, values, option_string)
        _mark_given(namespace, self.dest)


def given_options(namespace: argparse.Namespace) -> frozenset[str]:
    """The options given on the command line (by field name), whatever their values."""
    return getattr(namespace, GIVEN, frozenset())


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
            parser.add_argument(*flags, action=_Switch, default=default, **kwargs)
        else:
            if many:
                kwargs["nargs"] = "*"
            parser.add_argument(
                *flags,
                action=_Store,
                type=kind,
                default=default,
                required=not has_default,
                **kwargs,
            )


def config_from_namespace(
    cls: type[C], namespace: argparse.Namespace, file_values: dict[str, Any] | None = None
) -> C:
    """Instantiate dataclass `cls` from the parsed arguments; `file_values` (a settings
    file, see `read_settings_file`) fill the options not given on the command line."""
    assert dataclasses.is_dataclass(cls)
    fields = dataclasses.fields(cls)
    values = {f.name: getattr(namespace, f.name) for f in fields}
    # a positional absent from the command line is stored at its default by argparse
    positionals = {
        f.name for f in fields if f.metadata.get("positional") and values[f.name] != _default_of(f)
    }
    given = given_options(namespace) | positionals
    for name, value in (file_values or {}).items():
        if name not in given:
            values[name] = value
    return cls(**values)


def read_settings_file(cls: type, path: str) -> dict[str, Any]:
    """The settings in a JSON or YAML file (a config saved beside an artifact is one), each
    converted to its field's type: YAML reads `1e-3` as a string, the field says float.
    Keys that are not options of `cls` are refused, but for `_config` (the class tag)."""
    import yaml

    from circuitscope.errors import CircuitscopeError

    file = Path(path).expanduser()
    try:
        data = yaml.safe_load(file.read_text())
    except (OSError, yaml.YAMLError) as error:
        reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
        raise CircuitscopeError(f"cannot read settings file {file}: {reason}") from None
    if not isinstance(data, dict):
        raise CircuitscopeError(f"{file}: expected a mapping of settings")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    ignored = {"_config", "config"}  # the class tag; the settings file itself (older saves)
    unknown = sorted(set(data) - names - ignored)
    if unknown:
        raise CircuitscopeError(f"{file}: unknown settings {', '.join(unknown)}")
    converted = {}
    for name, value in data.items():
        if name not in ignored:
            converted[name] = _converted(hints[name], value, f"{file}: {name}")
    return converted


def _converted(annotation: Any, value: Any, where: str) -> Any:
    from circuitscope.errors import CircuitscopeError

    kind, choices, many = _parse_annotation(annotation)
    if value is None:
        return None
    if many:
        items = value if isinstance(value, list) else [value]
        return [_converted(kind, item, where) for item in items]
    try:
        if kind is bool:
            if not isinstance(value, bool):
                raise ValueError
            result: Any = value
        elif kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        else:
            result = kind(value) if not isinstance(value, bool) else None
            if result is None:
                raise ValueError
    except (TypeError, ValueError):
        raise CircuitscopeError(f"{where}: expected {kind.__name__}, got {value!r}") from None
    if choices and result not in choices:
        raise CircuitscopeError(f"{where}: {result!r} is not one of {choices}")
    return result


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
