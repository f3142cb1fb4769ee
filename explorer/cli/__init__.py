"""The `mirage` command: main.py assembles the subcommands, one module per family."""
from explorer.cli.main import SUBCOMMANDS, build_parser, main

__all__ = ["SUBCOMMANDS", "build_parser", "main"]
