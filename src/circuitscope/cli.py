"""The `circuitscope` command: one entry point, one subcommand per job.

Each subcommand is a config dataclass (its fields become the options) and a
function that takes that config. Errors a user can fix are `CircuitscopeError`s:
printed as one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from circuitscope import __version__
from circuitscope.allocator import return_freed_memory
from circuitscope.cli_args import (
    add_config_arguments,
    config_from_namespace,
    given_options,
    read_settings_file,
)
from circuitscope.commands import Command, all_commands
from circuitscope.errors import CircuitscopeError

EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="circuitscope",
        description="Transcoders, attribution graphs and interventions for causal LMs.",
    )
    parser.add_argument("--version", action="version", version=f"circuitscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in all_commands():
        doc = (command.run.__doc__ or "").strip()
        summary = doc.splitlines()[0] if doc else ""
        child = sub.add_parser(command.name, help=summary, description=doc)
        add_config_arguments(child, command.config)
        child.add_argument(
            "--config",
            dest="_settings_file",
            metavar="FILE",
            help="a JSON or YAML file of settings (a config saved beside an output is one); "
            "options given on the command line win",
        )
        child.set_defaults(_command=command)
    return parser


def command_config(command: Command, args: argparse.Namespace) -> Any:
    """The config of `command`: the options given on the command line, then those in the
    `--config` file, then (where the command resolves them, as `train` a preset's) values
    that depend on what was given, then the defaults."""
    settings = args._settings_file
    file_values = read_settings_file(command.config, settings) if settings else {}
    config = config_from_namespace(command.config, args, file_values)
    if command.resolve is None:
        return config
    return command.resolve(config, given_options(args) | set(file_values))


def parse_command(argv: Sequence[str]) -> tuple[Command, Any]:
    """The subcommand that `argv` names, and its config (as `main` would run it)."""
    args = build_parser().parse_args(argv)
    command = args._command
    return command, command_config(command, args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = getattr(args, "_command", None)
    if command is None:
        parser.print_help()
        return EXIT_USER_ERROR
    return_freed_memory()
    try:
        return command.run(command_config(command, args)) or 0
    except CircuitscopeError as error:
        print(f"circuitscope {command.name}: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
