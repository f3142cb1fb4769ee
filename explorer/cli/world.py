"""`mirage scene`, `trajectory`, `render` and `dataset`: the world and its ground truth, no model."""
from __future__ import annotations

import json
from pathlib import Path

from explorer.cli.common import (
    CLIError,
    fov_arg,
    parse_resolution,
    positive_int,
    refuse_existing,
    seed_arg,
    seed_kind,
)


def register_scene(sub) -> None:
    p = sub.add_parser("scene", help="describe the level generated from a scene seed",
                       description="Print the layout of the level a scene seed generates.")
    p.add_argument("--scene-seed", type=seed_arg, required=True, metavar="N")
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
    print(f"scene {args.scene_seed} ({seed_kind(args.scene_seed)} seed): {len(data['rooms'])} rooms, "
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

def register_trajectory(sub) -> None:
    kinds = ("turnaround", "retrace", "out-and-back", "explore")  # mirrors engine.trajectory.KINDS
    p = sub.add_parser("trajectory", help="make a camera trajectory file (mirage-trajectory/1)",
                       description="Build a trajectory of a known kind through a scene and write it as JSON.")
    p.add_argument("--scene-seed", type=seed_arg, required=True, metavar="N")
    p.add_argument("--kind", required=True, choices=kinds)
    p.add_argument("--out", type=Path, required=True, metavar="T.json")
    p.add_argument("--frames", type=positive_int, default=None,
                   help="total frames (default: the kind's own); for retrace and out-and-back a minimum, at least "
                        "the kind's shortest walk")
    p.add_argument("--fps", type=positive_int, default=15)
    p.add_argument("--fov", type=fov_arg, default=70.0, help="vertical field of view in degrees")
    p.add_argument("--resolution", type=parse_resolution, default=(128, 128), metavar="WxH")
    p.add_argument("--seed", type=int, default=0, help="random seed for the path (not the scene)")
    p.add_argument("--observe", type=int, default=None, metavar="N",
                   help="leading frames that are real observations (default: the kind's own); 0: every frame is "
                        "generated, the world's whole look the model's own (needs the scene layout on)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(handler=_cmd_trajectory)


def _cmd_trajectory(args) -> int:
    from engine.trajectory import make_trajectory, write_trajectory

    refuse_existing(args.out, args.overwrite)
    from engine.trajectory.format import MAX_FRAMES

    if args.frames is not None and args.frames > MAX_FRAMES:
        raise CLIError(f"--frames {args.frames:,}: at most {MAX_FRAMES:,} frames (a trajectory file holds no more)")
    build = dict(fps=args.fps, fov_deg=args.fov, resolution=args.resolution, rng_seed=args.seed)
    if args.frames is not None and args.kind in ("retrace", "out-and-back"):
        # For these kinds --frames lengthens the walk; below the shortest walk it cannot be honoured.
        shortest = len(make_trajectory(args.scene_seed, args.kind, **build).frames)
        if args.frames < shortest:
            raise CLIError(f"--frames {args.frames}: a {args.kind} walk in scene {args.scene_seed} takes at least "
                           f"{shortest} frames at {args.fps} fps (for {args.kind}, --frames is a minimum length)")
    traj = make_trajectory(args.scene_seed, args.kind, frames=args.frames, **build)
    if args.observe is not None:
        if not 0 <= args.observe <= len(traj.frames):
            raise CLIError(f"--observe {args.observe}: must be between 0 and the walk's {len(traj.frames)} frames")
        traj.observe = args.observe
    if args.out.parent and not args.out.parent.exists():
        args.out.parent.mkdir(parents=True)
    write_trajectory(traj, args.out)
    print(f"wrote {args.out}: {traj.kind}, {len(traj.frames)} frames ({traj.observe} observed), "
          f"{len(traj.revisits)} revisit pairs, scene {traj.scene_seed} ({seed_kind(traj.scene_seed)} seed)")
    return 0


# --------------------------------------------------------------------------- render

def register_render(sub) -> None:
    p = sub.add_parser("render", help="render a trajectory's ground truth to PNG frames or an mp4",
                       description="Render the ground-truth frames of a trajectory. A folder gets "
                                   "frame_00000.png, depth_00000.npy (or 16-bit PNG in millimetres) and a "
                                   "nerfstudio transforms.json; a path ending in .mp4 gets a video.")
    p.add_argument("--trajectory", type=Path, required=True, metavar="T.json")
    p.add_argument("--out", type=Path, required=True, metavar="DIR|clip.mp4")
    p.add_argument("--depth", choices=("npy", "png16", "none"), default=None,
                   help="depth files for a folder output (default npy); not for .mp4")
    p.add_argument("--batch", type=positive_int, default=64, help="poses per render call")
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
    refuse_existing(args.out, args.overwrite)

    from tqdm import tqdm

    from engine.trajectory import read_trajectory
    from engine.world.levels import generate_level
    from engine.world.renderer import Renderer
    from export.dataset import DatasetWriter
    from export.video import VideoWriter

    traj = read_trajectory(args.trajectory)
    w, h = (int(v) for v in traj.resolution)
    poses = list(traj.frames)
    if not poses:
        raise CLIError(f"{args.trajectory} has no frames")
    renderer = Renderer(generate_level(traj.scene_seed), w, h, traj.fov_deg)
    bar = tqdm(total=len(poses), unit="frame", desc="render", disable=args.quiet)
    # The exporters' own writers: the clip through a playable journal, encoded and read back before
    # it replaces --out; the folder with transforms.json written last and atomically.
    if video:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        writer = VideoWriter(args.out, traj.fps, (w, h))
    else:
        meta = {"trajectory": str(args.trajectory), "scene_seed": traj.scene_seed, "fps": traj.fps,
                "content": "ground truth (mirage render)"}
        writer = DatasetWriter(args.out, renderer.intrinsics, depth=args.depth or "npy", meta=meta,
                               overwrite=args.overwrite)
    try:
        with writer:
            for i in range(0, len(poses), args.batch):
                rgb, depth = renderer.render(poses[i:i + args.batch])
                for k in range(len(rgb)):
                    if video:
                        writer.write(rgb[k])
                    else:
                        writer.add(rgb[k], poses[i + k], depth[k])
                bar.update(len(rgb))
    finally:
        bar.close()
        renderer.close()
    print(f"wrote {len(poses)} frames ({w}x{h}) of scene {traj.scene_seed} to {args.out}")
    return 0


# --------------------------------------------------------------------------- dataset

def register_dataset(sub) -> None:
    p = sub.add_parser("dataset", help="render training shards (.npz + manifest.json)",
                       description="Render walk-like posed frames of each scene into .npz shards for "
                                   "training. Seeds are A:B, half-open; training seeds are below 1,000,000.")
    p.add_argument("--seeds", required=True, metavar="A:B", help="scene seeds A <= seed < B")
    p.add_argument("--frames-per-scene", type=positive_int, required=True, metavar="N")
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.add_argument("--resolution", type=parse_resolution, default=(128, 128), metavar="WxH")
    p.add_argument("--fov", type=fov_arg, default=70.0, help="vertical field of view in degrees")
    p.add_argument("--shard-size", type=positive_int, default=1024, metavar="FRAMES",
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
        refuse_existing(args.out, args.overwrite)
    manifest = write_shards(seeds, args.frames_per_scene, args.out, resolution=args.resolution, fov=args.fov,
                            shard_size=args.shard_size, progress=not args.quiet, depth_dtype=args.depth_dtype,
                            rng_seed=args.seed, allow_eval_seeds=args.allow_eval_seeds,
                            overwrite=args.overwrite, compress=not args.no_compress)
    print(f"wrote {manifest['frames']} frames of {manifest['scenes']} scenes in {len(manifest['shards'])} "
          f"shards to {args.out}")
    return 0


