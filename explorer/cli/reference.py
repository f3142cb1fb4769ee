"""docs/CLI.md, generated from the argparse parsers themselves so the reference cannot drift.

    python -m explorer.cli.reference            # rewrite docs/CLI.md
    python -m explorer.cli.reference --check    # exit 1 if docs/CLI.md is stale (tests run this)

Every subcommand, nested ones (`mirage train world`) included, gets its description and its
`--help` text at a fixed width, so the file is the same on every machine.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from explorer.cli.main import build_parser

WIDTH = 100
DOC = Path(__file__).resolve().parents[2] / "docs" / "CLI.md"

PREAMBLE = """\
# The `mirage` command

Generated from the parsers by `python -m explorer.cli.reference`; do not edit by hand
(a test compares). `mirage` is installed by `pip install -e .` (also `python -m explorer`).
Importing the command costs only argparse; each subcommand loads what it needs when it
runs, so the data commands start fast and only `mirage explore` loads Qt.

Errors you can fix (a missing or malformed file, an output that already exists, a bad
value) print one line `mirage: error: ...` on stderr and exit with code 2. Malformed
flags give argparse's usage line, also with code 2.
"""


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _help(parser: argparse.ArgumentParser) -> str:
    parser.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=WIDTH)
    return parser.format_help().rstrip()


def _section(parser: argparse.ArgumentParser, depth: int) -> list[str]:
    out = [f"{'#' * depth} `{parser.prog}`", "", "```text", _help(parser), "```", ""]
    for sub in _subcommands(parser).values():
        out += _section(sub, depth + 1)
    return out


def cli_reference() -> str:
    """The whole reference as markdown."""
    parser = build_parser()
    lines = [PREAMBLE, "## Subcommands", ""]
    subs = _subcommands(parser)
    lines += [f"- [`mirage {name}`](#mirage-{name})" for name in subs] + [""]
    for sub in subs.values():
        lines += _section(sub, 2)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Write docs/CLI.md from the mirage parsers.")
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 when docs/CLI.md is stale")
    args = ap.parse_args(argv)
    text = cli_reference()
    if args.check:
        current = DOC.read_text(encoding="utf-8") if DOC.is_file() else ""
        if current != text:
            print(f"{DOC} is stale: run `python -m explorer.cli.reference`", file=sys.stderr)
            return 1
        return 0
    from engine.files import atomic_text

    atomic_text(DOC, text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
