"""`mirage train recipe FILE` and `mirage train configure`: a model is made by a checked-in recipe.

A recipe (`mirage-recipe/1`, JSON) is the ordered list of `mirage` commands that made a
model, each stage with a note and, once it has run, what it took:

    {"format": "mirage-recipe/1", "name": "v1", "description": "...",
     "stages": [{"name": "autoencoder", "note": "...",
                 "command": ["train", "autoencoder", "--out", "{runs}/ae", "--steps", "1400"],
                 "ran": {"steps": 1194, "minutes": 41, "machine": "2-core x86 VM, CPU"}}, ...]}

`{runs}` in a command is the run folder (`--runs`, default runs/<recipe name>). Stages run in
order, each through the same `mirage` entry point a person would type, and the recipe stops
at the first that fails; training commands resume from their checkpoints, so running the
recipe again continues where it stopped. `--dry-run` prints the commands. A model card
points at its recipe instead of quoting shell lines.
"""
from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from explorer.cli.common import CLIError

FORMAT = "mirage-recipe/1"
STAGE_KEYS = {"name", "note", "command", "ran"}


def load_recipe(path: Path) -> dict:
    """Read and check a recipe; a bad one is refused naming the file, the field and the value."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise CLIError(f"{path}: cannot read the recipe: {e.strerror or e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CLIError(f"{path}: not a JSON recipe ({e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise CLIError(f"{path}: format must be {FORMAT!r}, got {got!r}")
    if not isinstance(data.get("name"), str) or not data["name"].strip():
        raise CLIError(f"{path}: name must be a non-empty string, got {data.get('name')!r}")
    stages = data.get("stages")
    if not isinstance(stages, list) or not stages:
        raise CLIError(f"{path}: stages must be a non-empty list, got {stages!r}")
    names = set()
    for i, st in enumerate(stages):
        where = f"{path}: stages[{i}]"
        if not isinstance(st, dict):
            raise CLIError(f"{where} must be an object, got {type(st).__name__}")
        unknown = set(st) - STAGE_KEYS
        if unknown:
            raise CLIError(f"{where} has unknown keys {sorted(unknown)}")
        if not isinstance(st.get("name"), str) or not st["name"] or st["name"] in names:
            raise CLIError(f"{where}.name must be a unique non-empty string, got {st.get('name')!r}")
        names.add(st["name"])
        cmd = st.get("command")
        if not (isinstance(cmd, list) and cmd and all(isinstance(a, str) for a in cmd)):
            raise CLIError(f"{where}.command must be a non-empty list of strings, got {cmd!r}")
        if cmd[0] not in ("train", "eval", "bench", "export"):
            raise CLIError(f"{where}.command runs `mirage {cmd[0]}`; a recipe runs train, eval, bench and export")
    return data


def stage_commands(recipe: dict, runs: Path) -> list[tuple[str, list[str]]]:
    """(stage name, argv for `mirage`) of every stage, `{runs}` filled in."""
    return [(st["name"], [a.replace("{runs}", str(runs)) for a in st["command"]]) for st in recipe["stages"]]


def register(tsub) -> None:
    """Add `recipe` and `configure` to `mirage train`'s subcommands."""
    r = tsub.add_parser("recipe", help="run a checked-in recipe: the ordered mirage commands that make a model",
                        description=__doc__.split("\n\n")[1])
    r.add_argument("recipe", type=Path, metavar="FILE", help="a mirage-recipe/1 JSON file (assets/recipes/)")
    r.add_argument("--runs", type=Path, default=None, metavar="DIR",
                   help="run folder that {runs} stands for (default: runs/<recipe name>)")
    r.add_argument("--from", dest="start", default=None, metavar="STAGE", help="start at this stage")
    r.add_argument("--until", default=None, metavar="STAGE", help="stop after this stage")
    r.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    r.set_defaults(handler=_cmd_recipe)
    c = tsub.add_parser("configure", help="set inference or memory settings in a model's config.json",
                        description="Change how a model runs without training it: `inference.steps`, "
                                    "`inference.temperature` and the `memory.*` policy. The networks' "
                                    "settings are refused (they must match the weights).")
    c.add_argument("--model", type=Path, required=True, help="model directory whose config.json to change")
    c.add_argument("settings", nargs="+", metavar="SECTION.KEY=VALUE", help="e.g. memory.voxel_size=0.01")
    c.set_defaults(handler=_cmd_configure)


def _cmd_recipe(args: argparse.Namespace) -> int:
    from explorer.cli.main import main

    recipe = load_recipe(args.recipe)
    runs = args.runs or Path("runs") / recipe["name"]
    commands = stage_commands(recipe, runs)
    names = [n for n, _ in commands]
    for flag, stage in (("--from", args.start), ("--until", args.until)):
        if stage is not None and stage not in names:
            raise CLIError(f"{flag} {stage!r}: {args.recipe} has stages {', '.join(names)}")
    first = names.index(args.start) if args.start else 0
    last = names.index(args.until) if args.until else len(names) - 1
    if last < first:
        raise CLIError(f"--until {args.until!r} comes before --from {args.start!r} in {args.recipe}")
    for name, argv in commands[first:last + 1]:
        print(f"== {recipe['name']} / {name}: mirage {shlex.join(argv)}", flush=True)
        if args.dry_run:
            continue
        code = main(argv)
        if code != 0:
            print(f"mirage: recipe {args.recipe} stopped at stage {name!r} (exit {code}); run it again to "
                  f"resume, or --from {name}")
            return code
    return 0


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _cmd_configure(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from engine.model.config import (
        InferenceConfig,
        MemoryConfig,
        ModelConfig,
    )

    path = args.model / "config.json"
    if not path.is_file():
        raise CLIError(f"{path}: model config not found (is {args.model} a model directory?)")
    data = json.loads(path.read_text())
    sections = {"inference": InferenceConfig, "memory": MemoryConfig}
    for item in args.settings:
        key, sep, value = item.partition("=")
        section, _, name = key.partition(".")
        if not sep or section not in sections or name not in {f.name for f in fields(sections[section])}:
            allowed = ", ".join(f"{s}.{f.name}" for s, cls in sections.items() for f in fields(cls))
            raise CLIError(f"{item!r}: expected SECTION.KEY=VALUE with one of {allowed}")
        data.setdefault(section, {})[name] = _parse_value(value)
    try:
        cfg = ModelConfig.from_dict(data)
        cfg.inference.check()
    except (TypeError, ValueError) as e:
        raise CLIError(f"{path}: {e}") from None
    cfg.save(path)
    print(f"{path}: " + ", ".join(args.settings))
    return 0
