"""The subcommands of `circuitscope`, one module per group.

To add one: write a config dataclass and a `run(config) -> int` function in a
module here, and list a `Command` for it in `all_commands`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Command:
    name: str
    config: type
    run: Callable[[Any], int | None]
    resolve: Callable[[Any, frozenset[str]], Any] | None = None
    """Settings that depend on which options were given (a training preset fills the
    others): (config, the names of the options given) -> the config to run."""


def all_commands() -> list[Command]:
    """Every subcommand, in the order `--help` lists them."""
    from circuitscope.commands import (
        attribution_commands,
        compare_commands,
        demo_commands,
        export_commands,
        feature_commands,
        intervention_commands,
        model_commands,
        supernode_commands,
        training_commands,
        transcoder_commands,
        viewer_commands,
    )

    return [
        *demo_commands.COMMANDS,
        *model_commands.COMMANDS,
        *transcoder_commands.COMMANDS,
        *attribution_commands.COMMANDS,
        *intervention_commands.COMMANDS,
        *supernode_commands.COMMANDS,
        *compare_commands.COMMANDS,
        *training_commands.COMMANDS,
        *export_commands.COMMANDS,
        *feature_commands.COMMANDS,
        *viewer_commands.COMMANDS,
    ]
