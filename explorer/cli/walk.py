"""`mirage walk`: walk a trajectory headless and write the clip, poses, dataset and GIF.

Registered from explorer/cli/main.py's SUBCOMMANDS. Nothing heavy at import time: the
handler imports export.walk (and through it torch and the renderer) when it runs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from explorer.cli.common import positive_int, seed_arg


class WalkError(ValueError):
    """A failure the user can act on; explorer.cli prints it as `mirage: error: ...`, exit 2."""


def _fps(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of frames per second, got {text!r}") from None
    if not 1 <= v <= 1000:   # below 1 frame/s the encoders refuse the clip, after the whole walk
        raise argparse.ArgumentTypeError(f"fps must be in [1, 1000], got {text}")
    return v


def register(sub) -> None:
    p = sub.add_parser(
        "walk", help="walk a trajectory headless: side-by-side clip, walked poses, posed dataset, GIF",
        description="Run the world model along a trajectory without a window. The trajectory's leading "
                    "observe frames are rendered ground truth given to the model as observations; the rest "
                    "are generated. Writes the clip (panes side by side), the walked poses next to it "
                    "(CLIP.trajectory.json and CLIP.trajectory.csv), and optionally a nerfstudio dataset "
                    "and a GIF. Every output is checked before the model is loaded.")
    p.add_argument("--trajectory", type=Path, required=True, metavar="T.json",
                   help="a mirage-trajectory/1 file, or a transforms.json (file or folder) to import")
    p.add_argument("--memory", choices=("on", "off", "both"), default="both",
                   help="memory on, off, or both side by side with the same seed (default both)")
    p.add_argument("--gt", action="store_true", help="add a ground-truth pane")
    p.add_argument("--out", type=Path, required=True, metavar="clip.mp4", help="the clip (.mp4, .mov, .mkv, .m4v)")
    p.add_argument("--transforms-out", type=Path, default=None, metavar="DIR",
                   help="also write the memory-on (or only) session's frames as a nerfstudio dataset")
    p.add_argument("--depth", choices=("npy", "png16", "none"), default="npy",
                   help="dataset depth files: float32 metres .npy, 16-bit PNG millimetres, or none")
    p.add_argument("--steps", type=positive_int, default=None, metavar="K",
                   help="sampling steps per frame (default: the model's)")
    p.add_argument("--temperature", type=float, default=None, metavar="T",
                   help="scale of the sampler's starting noise (default: the model's)")
    p.add_argument("--model", type=Path, default=None, metavar="DIR", help="model directory (default: shipped)")
    p.add_argument("--layout", choices=("on", "off", "auto"), default="auto",
                   help="ground every frame in the level's scene layout (geometry only, never colours), or off: "
                        "the pure world model; auto (default): on when the model takes it")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (the same for memory on and off)")
    p.add_argument("--scene-seed", type=seed_arg, default=None, metavar="N",
                   help="scene of an imported transforms.json that has no 'mirage' block")
    p.add_argument("--frames", type=positive_int, default=None, metavar="N", help="walk only the first N frames")
    p.add_argument("--fps", type=_fps, default=None, help="clip frame rate (default: the trajectory's)")
    p.add_argument("--codec", choices=("mp4v", "h264"), default="mp4v",
                   help="mp4v (OpenCV) or h264 (needs the [h264] extra, PyAV)")
    p.add_argument("--scale", type=positive_int, default=None, metavar="S",
                   help="magnify panes S times (default: enough for 128 px panes)")
    p.add_argument("--gif", type=Path, default=None, metavar="out.gif", help="also write a GIF of the clip")
    p.add_argument("--gif-every", type=positive_int, default=1, metavar="N", help="keep one frame in N in the GIF")
    p.add_argument("--gif-width", type=positive_int, default=None, metavar="PX", help="shrink the GIF to this width")
    p.add_argument("--device", default="cpu", help="torch device for the model (cpu, cuda, cuda:N)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args) -> int:
    from export.video import VideoWriteError
    from export.walk import run_walk

    if args.scale is not None and args.scale > 16:
        raise WalkError(f"--scale must be from 1 to 16, got {args.scale}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        summary = run_walk(args.trajectory, args.out, model=args.model, memory=args.memory, gt=args.gt,
                           transforms_out=args.transforms_out, steps=args.steps, seed=args.seed, fps=args.fps,
                           codec=args.codec, gif=args.gif, overwrite=args.overwrite, scale=args.scale,
                           depth=args.depth, frames=args.frames, scene_seed=args.scene_seed, device=args.device,
                           progress=not args.quiet, gif_every=args.gif_every, gif_max_width=args.gif_width,
                           temperature=args.temperature, scene_layout=args.layout)
    except VideoWriteError as e:  # disk full mid-clip: the message names the playable partial file
        raise WalkError(str(e)) from None
    except OSError as e:          # e.g. the disk filled while writing the dataset: name what was kept
        from export.video import journal_path

        partial = journal_path(args.out)
        kept = (f"; the clip's frames so far are kept, playable, in {partial}" if partial.exists() else "")
        raise WalkError(f"{e.filename or args.out}: {e.strerror or e}{kept}") from None
    except KeyboardInterrupt:
        from export.video import journal_path

        partial = journal_path(args.out)
        if partial.exists():
            print(f"mirage: interrupted; the frames recorded so far play from {partial}", file=sys.stderr)
        raise
    print("\n".join(summary.lines()))
    return 0
