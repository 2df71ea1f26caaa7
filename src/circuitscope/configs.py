"""Configs are dataclasses whose fields carry docstrings.

A field's docstring is the string literal written on the line after it, as in::

    @dataclass
    class RunConfig:
        top_k: int = 10
        \"\"\"How many next tokens to print.\"\"\"

`field_docs` reads them from the source, so the same text documents the code,
feeds `--help`, and is saved beside every artifact with `config_to_dict`.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
from functools import cache
from typing import Any, TypeVar


@cache
def field_docs(cls: type) -> dict[str, str]:
    """Map each field of dataclass `cls` (and its bases) to its docstring."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0]
        assert isinstance(body, ast.ClassDef)
        docs.update(_docstrings_after_assignments(body.body))
    return docs


def _docstrings_after_assignments(statements: list[ast.stmt]) -> dict[str, str]:
    docs: dict[str, str] = {}
    for stmt, following in zip(statements, statements[1:], strict=False):
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        if (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[stmt.target.id] = inspect.cleandoc(following.value.value)
    return docs


def missing_field_docs(cls: type) -> list[str]:
    """Names of the fields of `cls` that have no docstring (tests keep this empty)."""
    docs = field_docs(cls)
    return [f.name for f in dataclasses.fields(cls) if f.name not in docs]


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass, tagged with its class name."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"expected a dataclass instance, got {type(config).__name__}")
    return {"_config": type(config).__name__, **dataclasses.asdict(config)}


T = TypeVar("T")


def config_part(config: Any, cls: type[T]) -> T:
    """The `cls` dataclass made of `config`'s fields of the same names (a command's config
    is composed of the option groups its library calls take)."""
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    return cls(**{name: getattr(config, name) for name in names})
