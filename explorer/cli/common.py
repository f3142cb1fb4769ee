"""What every `mirage` subcommand shares: the exit code and error type of expected failures,
argument types, and the refusal to overwrite. Imports only the standard library at the top;
seed ranges and threads reach into the engine when they are used."""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2


class CLIError(Exception):
    """An expected failure the user can fix; printed without a traceback."""



def parse_resolution(text: str) -> tuple[int, int]:
    """'128x128' -> (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"resolution must look like WIDTHxHEIGHT (e.g. 128x128), got {text!r}")
    if w < 8 or h < 8 or w > 4096 or h > 4096:
        raise argparse.ArgumentTypeError(f"resolution must be between 8x8 and 4096x4096, got {w}x{h}")
    return w, h


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {v}")
    return v


def seed_arg(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a scene seed is a non-negative whole number, got {text!r}")
    from engine.world.geometry import MAX_SCENE_SEED  # torch- and GL-free

    if not 0 <= v <= MAX_SCENE_SEED:
        raise argparse.ArgumentTypeError(f"a scene seed is a whole number from 0 to {MAX_SCENE_SEED:,}, got {v:,}")
    return v


def fov_arg(text: str) -> float:
    """A vertical field of view in degrees (an argparse type), in [1, 170]; NaN and inf are refused
    (a NaN slips past `lo <= v <= hi` written the other way round and gives NaN intrinsics)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a field of view is a number of degrees, got {text!r}") from None
    if not (math.isfinite(v) and 1.0 <= v <= 170.0):
        raise argparse.ArgumentTypeError(f"a field of view must be between 1 and 170 degrees, got {text}")
    return v


def temperature_arg(text: str) -> float:
    """A sampling temperature (an argparse type): a number in (0, 3], checked by the one rule."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    # torch-free, like the rest of this parser
    from engine.model.config import check_temperature

    try:
        check_temperature(v)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return v


def seed_kind(seed: int) -> str:
    from engine.world.geometry import EVAL_SEED_RANGE, TRAIN_SEED_LIMIT

    if EVAL_SEED_RANGE[0] <= seed < EVAL_SEED_RANGE[1]:
        return "eval"
    return "train" if seed < TRAIN_SEED_LIMIT else "other"


def refuse_existing(path: Path, overwrite: bool) -> None:
    if overwrite or not path.exists():
        return
    if path.is_dir() and not any(path.iterdir()):
        return  # an empty folder is fine to fill
    raise FileExistsError(f"{path} already exists; pass --overwrite to replace it")



def seed_range(text: str) -> tuple[int, int]:
    """'A:B' -> (A, B), a half-open range of scene seeds (an argparse type)."""
    from engine.train.data import parse_seed_range

    try:
        r = parse_seed_range(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return r.start, r.stop


def set_threads(n: int | None) -> None:
    """torch's CPU threads for this run (--threads); None leaves torch's default."""
    import torch

    if n:
        torch.set_num_threads(n)


def error(message: str) -> int:
    """Print an expected failure as `mirage: error: ...`; the exit code to return."""
    print(f"mirage: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT
