"""The `mirage` command.

Importing this module costs only argparse: every subcommand imports what it needs
(numpy, the renderer, torch, Qt) inside its handler, so `mirage trajectory` starts
in a blink and only `mirage explore` ever loads Qt.

Adding a subcommand: write a registrar `register(subparsers)` that adds the parser
and sets `handler=` via `set_defaults` (the handler takes the parsed args and
returns an exit code), then list it in SUBCOMMANDS -- either the function itself
or a "package.module:function" string, which is imported when the parser is built
(so such a module must itself import nothing heavy at the top).

Expected failures (bad input, missing files, refusing to overwrite) print
`mirage: error: ...` and exit with code 2, without a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Callable, Union

from explorer.cli.common import EXIT_BAD_INPUT, CLIError, error

Registrar = Callable[[argparse._SubParsersAction], None]

# name -> registrar, or "package.module:function" imported when the parser is built.
SUBCOMMANDS: dict[str, Union[Registrar, str]] = {
    "scene": "explorer.cli.world:register_scene",
    "trajectory": "explorer.cli.world:register_trajectory",
    "render": "explorer.cli.world:register_render",
    "dataset": "explorer.cli.world:register_dataset",
    "bench": "explorer.cli.bench:register",
    "train": "explorer.cli.train:register_train",
    "eval": "explorer.cli.eval:register_eval",
    "walk": "explorer.cli.walk:register",
    "explore": "explorer.cli.explore:register",
    "export": "explorer.cli.backend:register",
}


def _resolve(name: str, registrar: Union[Registrar, str]) -> Registrar:
    if callable(registrar):
        return registrar
    module, _, attr = registrar.partition(":")
    try:
        return getattr(importlib.import_module(module), attr or "register")
    except (ImportError, AttributeError) as e:
        # One broken plug-in must not take the other subcommands down with it.
        reason = f"{type(e).__name__}: {e}"

        def unavailable(sub) -> None:
            p = sub.add_parser(name, help=f"(unavailable: {reason})", add_help=False)
            p.set_defaults(handler=lambda args: error(f"'{name}' is unavailable here ({registrar}): {reason}"),
                           accepts_unknown=True)

        return unavailable


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mirage",
        description="Mirage Explorer: walk a generated indoor world rendered by a small video world model "
                    "with a bounded latent spatial memory.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, registrar in SUBCOMMANDS.items():
        before = set(sub.choices)
        _resolve(name, registrar)(sub)
        if name not in sub.choices or not set(sub.choices) - before:
            raise RuntimeError(f"registrar for {name!r} did not add a {name!r} subcommand")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "accepts_unknown", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")  # exits 2 with the usage line
    if getattr(args, "handler", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return int(args.handler(args) or 0)
    except (CLIError, ValueError, FileExistsError, FileNotFoundError, IsADirectoryError, NotADirectoryError) as e:
        # TrajectoryError is a ValueError. Expected, user-fixable: message only, no traceback.
        return error(str(e) or type(e).__name__)
    except OSError as e:
        # An unwritable folder, a full disk, a vanished file: name the file and the reason, no traceback.
        # Outputs are written atomically (engine/files.py), so what existed before is still intact.
        where = f"{e.filename}: " if e.filename else ""
        return error(f"{where}{e.strerror or e} (nothing was replaced; outputs are written whole or not at all)")
    except KeyboardInterrupt:
        print("mirage: interrupted", file=sys.stderr)
        return 130

