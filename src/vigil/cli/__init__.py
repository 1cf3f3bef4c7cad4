"""The ``vigil`` command line: a thin shell over the library."""

from __future__ import annotations

import argparse
import importlib
import sys

from vigil import __version__
from vigil.eql.errors import EqlError
from vigil.errors import VigilError

# Each command lives in its own module with a ``register(subparsers)`` function.
COMMANDS = ("demo", "query", "scan", "rules", "alerts", "watch", "serve")


def build_parser(commands: tuple[str, ...] = COMMANDS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vigil",
        description="Run Elastic Security detection rules over event files, live on a Linux host, "
        "or as a scheduled service.",
    )
    parser.add_argument("--version", action="version", version=f"vigil {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in commands:
        try:
            module = importlib.import_module(f"vigil.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"vigil.cli.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Options may follow the inputs (``vigil scan logs/ --format ndjson``), as users type them."""
    args, extra = parser.parse_known_args(argv)
    if not extra:
        return args
    command = _subparsers(parser).get(getattr(args, "command", None) or "")
    if command is None or any(isinstance(a, argparse._SubParsersAction) for a in command._actions):
        return parser.parse_args(argv)  # reports the unknown arguments as argparse does
    return command.parse_intermixed_args(argv[argv.index(args.command) + 1 :])


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # A named command needs only its own module: starting up stays quick.
    named = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser((named,) if named in COMMANDS else COMMANDS)
    args = _parse(parser, argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (VigilError, EqlError) as exc:
        from vigil.sinks.terminal import visible

        print(f"vigil: {visible(exc.render(), lines=True)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``vigil ... | head``): not an error.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
