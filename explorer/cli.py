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
import json
import os
import sys
from pathlib import Path
from typing import Callable, Union

EXIT_BAD_INPUT = 2


class CLIError(Exception):
    """An expected failure the user can fix; printed without a traceback."""


# --------------------------------------------------------------------------- helpers

def parse_resolution(text: str) -> tuple[int, int]:
    """'128x128' -> (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"resolution must look like WIDTHxHEIGHT (e.g. 128x128), got {text!r}")
    if w < 8 or h < 8 or w > 4096 or h > 4096:
        raise argparse.ArgumentTypeError(f"resolution must be between 8x8 and 4096x4096, got {w}x{h}")
    return w, h


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {v}")
    return v


def _seed(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a scene seed is a non-negative whole number, got {text!r}")
    if v < 0:
        raise argparse.ArgumentTypeError(f"a scene seed is a non-negative whole number, got {v}")
    return v


def _seed_kind(seed: int) -> str:
    from engine.world.geometry import EVAL_SEED_RANGE, TRAIN_SEED_LIMIT

    if EVAL_SEED_RANGE[0] <= seed < EVAL_SEED_RANGE[1]:
        return "eval"
    return "train" if seed < TRAIN_SEED_LIMIT else "other"


def _refuse_existing(path: Path, overwrite: bool) -> None:
    if overwrite or not path.exists():
        return
    if path.is_dir() and not any(path.iterdir()):
        return  # an empty folder is fine to fill
    raise FileExistsError(f"{path} already exists; pass --overwrite to replace it")


# --------------------------------------------------------------------------- scene

def _register_scene(sub) -> None:
    p = sub.add_parser("scene", help="describe the level generated from a scene seed",
                       description="Print the layout of the level a scene seed generates.")
    p.add_argument("--scene-seed", type=_seed, required=True, metavar="N")
    p.add_argument("--json", action="store_true", help="print the full layout as JSON")
    p.set_defaults(handler=_cmd_scene)


def _cmd_scene(args) -> int:
    from engine.world.levels import generate_level

    level = generate_level(args.scene_seed)
    data = level.to_json()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    lo, hi = data["bounds"]["min"], data["bounds"]["max"]
    print(f"scene {args.scene_seed} ({_seed_kind(args.scene_seed)} seed): {len(data['rooms'])} rooms, "
          f"{len(data['doors'])} corridors, {data['boxes']} boxes")
    print(f"  bounds x {lo[0]:.1f}..{hi[0]:.1f}  y {lo[1]:.1f}..{hi[1]:.1f}  z {lo[2]:.1f}..{hi[2]:.1f} m")
    for r in data["rooms"]:
        (x0, z0), (x1, z1) = r["min"], r["max"]
        print(f"  {r['name']:>8}: {x1 - x0:.1f} x {z1 - z0:.1f} m, height {r['height']:.2f} m, "
              f"centre ({(x0 + x1) / 2:.1f}, {(z0 + z1) / 2:.1f})")
    for d in data["doors"]:
        print(f"  corridor rooms {d['rooms'][0]}-{d['rooms'][1]} along {d['axis']}")
    return 0


# --------------------------------------------------------------------------- trajectory

def _register_trajectory(sub) -> None:
    kinds = ("turnaround", "retrace", "out-and-back", "explore")  # mirrors engine.trajectory.KINDS
    p = sub.add_parser("trajectory", help="make a camera trajectory file (mirage-trajectory/1)",
                       description="Build a trajectory of a known kind through a scene and write it as JSON.")
    p.add_argument("--scene-seed", type=_seed, required=True, metavar="N")
    p.add_argument("--kind", required=True, choices=kinds)
    p.add_argument("--out", type=Path, required=True, metavar="T.json")
    p.add_argument("--frames", type=_positive_int, default=None, help="total frames (default: the kind's own)")
    p.add_argument("--fps", type=_positive_int, default=15)
    p.add_argument("--fov", type=float, default=70.0, help="vertical field of view in degrees")
    p.add_argument("--resolution", type=parse_resolution, default=(128, 128), metavar="WxH")
    p.add_argument("--seed", type=int, default=0, help="random seed for the path (not the scene)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(handler=_cmd_trajectory)


def _cmd_trajectory(args) -> int:
    from engine.trajectory import make_trajectory, write_trajectory

    if not 1.0 <= args.fov <= 170.0:
        raise CLIError(f"--fov must be between 1 and 170 degrees, got {args.fov:g}")
    _refuse_existing(args.out, args.overwrite)
    traj = make_trajectory(args.scene_seed, args.kind, frames=args.frames, fps=args.fps, fov_deg=args.fov,
                           resolution=args.resolution, rng_seed=args.seed)
    if args.out.parent and not args.out.parent.exists():
        args.out.parent.mkdir(parents=True)
    write_trajectory(traj, args.out)
    print(f"wrote {args.out}: {traj.kind}, {len(traj.frames)} frames ({traj.observe} observed), "
          f"{len(traj.revisits)} revisit pairs, scene {traj.scene_seed} ({_seed_kind(traj.scene_seed)} seed)")
    return 0


# --------------------------------------------------------------------------- render

def _register_render(sub) -> None:
    p = sub.add_parser("render", help="render a trajectory's ground truth to PNG frames or an mp4",
                       description="Render the ground-truth frames of a trajectory. A folder gets "
                                   "frame_00000.png, depth_00000.npy (or 16-bit PNG in millimetres) and a "
                                   "nerfstudio transforms.json; a path ending in .mp4 gets a video.")
    p.add_argument("--trajectory", type=Path, required=True, metavar="T.json")
    p.add_argument("--out", type=Path, required=True, metavar="DIR|clip.mp4")
    p.add_argument("--depth", choices=("npy", "png16", "none"), default=None,
                   help="depth files for a folder output (default npy); not for .mp4")
    p.add_argument("--batch", type=_positive_int, default=64, help="poses per render call")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_cmd_render)


def _cmd_render(args) -> int:
    if not args.trajectory.is_file():
        raise CLIError(f"trajectory file {args.trajectory} does not exist")
    video = args.out.suffix.lower() == ".mp4"
    if video and args.depth not in (None, "none"):
        raise CLIError("--depth applies to a folder output only; an .mp4 holds RGB frames")
    if not video and args.out.is_file():
        raise CLIError(f"{args.out} is a file; give a folder or a path ending in .mp4")
    _refuse_existing(args.out, args.overwrite)

    import numpy as np
    from tqdm import tqdm

    from engine.trajectory import read_trajectory
    from engine.world.levels import generate_level
    from engine.world.renderer import Renderer

    traj = read_trajectory(args.trajectory)
    w, h = (int(v) for v in traj.resolution)
    poses = list(traj.frames)
    if not poses:
        raise CLIError(f"{args.trajectory} has no frames")
    renderer = Renderer(generate_level(traj.scene_seed), w, h, traj.fov_deg)
    bar = tqdm(total=len(poses), unit="frame", desc="render", disable=args.quiet)
    try:
        if video:
            writer = _Mp4Writer(args.out, traj.fps, (w, h))
            with writer:
                for i in range(0, len(poses), args.batch):
                    rgb, _ = renderer.render(poses[i:i + args.batch])
                    for frame in rgb:
                        writer.write(frame)
                    bar.update(len(rgb))
        else:
            depth_fmt = args.depth or "npy"
            args.out.mkdir(parents=True, exist_ok=True)
            for old in [*args.out.glob("frame_*.png"), *args.out.glob("depth_*.npy"), *args.out.glob("depth_*.png")]:
                old.unlink()  # only reached with --overwrite (or an empty folder): no stale frames mixed in
            files, depth_files = [], []
            for i in range(0, len(poses), args.batch):
                rgb, depth = renderer.render(poses[i:i + args.batch])
                for k in range(len(rgb)):
                    j = i + k
                    files.append(f"frame_{j:05d}.png")
                    _imwrite(args.out / files[-1], np.ascontiguousarray(rgb[k][..., ::-1]))
                    if depth_fmt == "npy":
                        depth_files.append(f"depth_{j:05d}.npy")
                        np.save(args.out / depth_files[-1], depth[k].astype(np.float32))
                    elif depth_fmt == "png16":
                        depth_files.append(f"depth_{j:05d}.png")
                        mm = np.clip(np.rint(depth[k] * 1000.0), 0, 65535).astype(np.uint16)
                        _imwrite(args.out / depth_files[-1], mm)
                bar.update(len(rgb))
            from engine.camera import to_nerfstudio
            meta = to_nerfstudio(poses, renderer.intrinsics, files, depth_files or None)
            meta["mirage"] = {"trajectory": str(args.trajectory), "scene_seed": traj.scene_seed, "fps": traj.fps,
                              "depth": depth_fmt, "depth_units": "metres" if depth_fmt == "npy" else "millimetres"}
            (args.out / "transforms.json").write_text(json.dumps(meta, indent=1))
    finally:
        bar.close()
        renderer.close()
    print(f"wrote {len(poses)} frames ({w}x{h}) of scene {traj.scene_seed} to {args.out}")
    return 0


def _imwrite(path: Path, image) -> None:
    import cv2

    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}")


class _Mp4Writer:
    """mp4v through OpenCV, written to a temporary name and renamed when complete."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        import cv2

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.stem}.partial.mp4")
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), size)
        if not self.writer.isOpened():
            raise OSError(f"OpenCV could not open an mp4v writer for {self.path}")

    def write(self, rgb) -> None:
        self.writer.write(rgb[..., ::-1].copy())

    def __enter__(self) -> "_Mp4Writer":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.writer.release()
        if exc_type is None:
            os.replace(self.tmp, self.path)
        elif self.tmp.exists():
            self.tmp.unlink()


# --------------------------------------------------------------------------- dataset

def _register_dataset(sub) -> None:
    p = sub.add_parser("dataset", help="render training shards (.npz + manifest.json)",
                       description="Render walk-like posed frames of each scene into .npz shards for "
                                   "training. Seeds are A:B, half-open; training seeds are below 1,000,000.")
    p.add_argument("--seeds", required=True, metavar="A:B", help="scene seeds A <= seed < B")
    p.add_argument("--frames-per-scene", type=_positive_int, required=True, metavar="N")
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.add_argument("--resolution", type=parse_resolution, default=(128, 128), metavar="WxH")
    p.add_argument("--fov", type=float, default=70.0)
    p.add_argument("--shard-size", type=_positive_int, default=1024, metavar="FRAMES",
                   help="about this many frames per shard; a shard holds whole scenes (default 1024)")
    p.add_argument("--depth-dtype", choices=("float16", "float32"), default="float16")
    p.add_argument("--seed", type=int, default=0, help="random seed for the walks")
    p.add_argument("--allow-eval-seeds", action="store_true",
                   help="allow seeds in the held-out evaluation range (1000000..1000999)")
    p.add_argument("--no-compress", action="store_true", help="write plain .npz (bigger, faster to read)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=_cmd_dataset)


def _cmd_dataset(args) -> int:
    from engine.train.data import check_training_seeds, parse_seed_range, write_shards

    seeds = parse_seed_range(args.seeds)
    check_training_seeds(seeds, args.allow_eval_seeds)  # before touching --out
    if not (args.out / "manifest.json").exists():
        _refuse_existing(args.out, args.overwrite)
    manifest = write_shards(seeds, args.frames_per_scene, args.out, resolution=args.resolution, fov=args.fov,
                            shard_size=args.shard_size, progress=not args.quiet, depth_dtype=args.depth_dtype,
                            rng_seed=args.seed, allow_eval_seeds=args.allow_eval_seeds,
                            overwrite=args.overwrite, compress=not args.no_compress)
    print(f"wrote {manifest['frames']} frames of {manifest['scenes']} scenes in {len(manifest['shards'])} "
          f"shards to {args.out}")
    return 0


# --------------------------------------------------------------------------- assembly

Registrar = Callable[[argparse._SubParsersAction], None]

# name -> registrar, or "package.module:function" imported when the parser is built.
# Still to come: walk, explore, export.
SUBCOMMANDS: dict[str, Union[Registrar, str]] = {
    "scene": _register_scene,
    "trajectory": _register_trajectory,
    "render": _register_render,
    "dataset": _register_dataset,
    "bench": "explorer.cli_bench:register",
    "train": "explorer.cli_model:register_train",
    "eval": "explorer.cli_model:register_eval",
    "walk": "explorer.cli_walk:register",
    "explore": "explorer.cli_explore:register",
    "export": "explorer.cli_backend:register",
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
            p.set_defaults(handler=lambda args: _error(f"'{name}' is unavailable here ({registrar}): {reason}"),
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


def _error(message: str) -> int:
    print(f"mirage: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


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
        return _error(str(e) or type(e).__name__)
    except KeyboardInterrupt:
        print("mirage: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
