"""docs/CLI.md is generated from the parsers (explorer/cli/reference.py): it covers every
subcommand, nested ones included, and it is never stale."""
from __future__ import annotations

from explorer.cli.reference import DOC, _subcommands, cli_reference, main


def test_cli_md_is_what_the_parsers_say():
    assert DOC.read_text(encoding="utf-8") == cli_reference(), \
        "docs/CLI.md is stale: run `python -m explorer.cli.reference`"
    assert main(["--check"]) == 0


def test_every_subcommand_and_flag_is_in_the_reference():
    from explorer.cli.main import build_parser

    text = cli_reference()

    def walk(parser):
        assert f"`{parser.prog}`" in text, parser.prog
        for action in parser._actions:
            for flag in action.option_strings:
                assert flag in text, (parser.prog, flag)
        for sub in _subcommands(parser).values():
            walk(sub)

    top = build_parser()
    assert {"train", "eval", "walk", "explore", "render", "bench", "export"} <= set(_subcommands(top))
    for sub in _subcommands(top).values():
        walk(sub)
