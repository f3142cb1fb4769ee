"""Latents the generator really makes, paired with ground truth: training data for the decoder.

The decoder was sharpened on encoder latents, degraded by hand (noise, a partial box blur)
to look like generated ones. Generated latents differ in ways a box blur does not copy:
on the eval set the same decoder keeps 0.56 of ground truth's gradient energy on retraces
(latents copied from memory), 0.40 on turnarounds and 0.13 on explore walks away from
memory. So `mirage train decoder-pairs` runs the shipped session (the real sampler, memory
on or off, the latent range guard) along walks of training worlds and keeps, for every few
generated frames, the latent the decoder was given, the ground-truth frame and depth at that
pose, and the frame the session showed, shrunk to latent resolution.

How well a generated frame matches its ground truth varies from ~30 dB (a retrace through
memory) to ~12 dB (far into unseen space, where the generator invented other content); the
trainer (engine/train/decoder.py) uses the pair as a target only when it matches, and
otherwise only the shown frame's low frequencies as an anchor, with the discriminator
judging the detail. The PSNR of the shown frame against ground truth is stored for that.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.eval import render_trajectory
from engine.eval.run import scene_layout
from engine.metrics import psnr
from engine.model.autoencoder import to_model_image
from engine.model.world_model import WorldModel
from engine.rollout import rollout
from engine.session import WorldSession
from engine.train.checkpoint import save_tensors
from engine.trajectory import KINDS, make_trajectory
from engine.world.geometry import TRAIN_SEED_LIMIT

FIELDS = ("latent", "rgb", "depth", "anchor", "psnr", "memory", "kind", "frame", "scene")
# Format 2 adds each pair's pose (x, y, z, yaw, pitch) and whether its walk ran with the scene layout,
# so a decoder that takes the layout is trained with the layout of that very view.
POSE_FIELDS = ("pose", "layout")
FORMATS = ("mirage-decoder-pairs/1", "mirage-decoder-pairs/2")


@dataclass
class PairArgs:
    seeds: tuple[int, int] = (200_000, 200_016)   # the decoder stage's own training worlds
    every: int = 3                 # keep every Nth generated frame (neighbours are near copies)
    explore_frames: int = 400      # long enough to reach the faded frames of walks away from memory
    memory_share: float = 0.6      # share of walks run with memory on
    steps: int | None = None       # sampling steps (default: the model's)
    seed: int = 0
    kinds: tuple[str, ...] = KINDS  # trajectory kinds walked in each world
    layout: bool | None = None     # walk with the scene layout (None: when the generator takes it)


def anchor_of(rgb: torch.Tensor, cells: int) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> (B, 3, cells, cells): the colour of each latent cell, what a decoder
    that only adds detail must leave as it is."""
    return F.adaptive_avg_pool2d(rgb, cells)


@torch.no_grad()
def collect_pairs(model: WorldModel, args: PairArgs, progress: bool = True) -> dict[str, torch.Tensor]:
    """Run every trajectory kind on each world in args.seeds and keep (latent, ground truth) pairs."""
    from tqdm import tqdm

    lo, hi = args.seeds
    if not 0 <= lo < hi <= TRAIN_SEED_LIMIT:
        raise ValueError(f"decoder-pairs --seeds {lo}:{hi} must be a non-empty range of training worlds "
                         f"(below {TRAIN_SEED_LIMIT}); eval worlds are never trained on")
    bad = [k for k in args.kinds if k not in KINDS]
    if bad or not args.kinds:
        raise ValueError(f"decoder-pairs kinds {', '.join(bad) or '(none)'}: choose from {', '.join(KINDS)}")
    if args.every < 1:
        raise ValueError(f"--every must be at least 1, got {args.every}")
    rng = np.random.default_rng(args.seed)
    cfg = model.cfg
    cache: dict = {}
    use_layout = model.takes_layout if args.layout is None else bool(args.layout)
    out: dict[str, list] = {k: [] for k in FIELDS + POSE_FIELDS}
    jobs = [(s, k) for s in range(lo, hi) for k in args.kinds]
    for scene, kind in tqdm(jobs, desc="decoder pairs", disable=not progress):
        traj = make_trajectory(scene, kind, frames=args.explore_frames if kind == "explore" else None,
                               fov_deg=cfg.fov_deg, resolution=(model.image_size, model.image_size))
        gt, depth = render_trajectory(model, traj, cache)
        memory = bool(rng.random() < args.memory_share)
        source = scene_layout(model, traj, cache) if use_layout else None
        sess = WorldSession(model, memory=memory, steps=args.steps, seed=int(rng.integers(1 << 31)), layout=source)
        offset = int(rng.integers(args.every))  # so the kept frames are not always the same phase of a walk
        for i, [(_, res)] in rollout([(kind, sess)], traj.frames, traj.observe, lambda i: (gt[i], depth[i])):
            if res.observed or (i - traj.observe) % args.every != offset:
                continue
            out["latent"].append(model.ae_latent(sess.last_latent)[0].float().cpu())
            out["rgb"].append(torch.from_numpy(gt[i]))
            out["depth"].append(torch.from_numpy(depth[i]).half())
            shown = to_model_image(torch.from_numpy(res.frame)[None])
            out["anchor"].append(anchor_of(shown, model.cells)[0])
            out["psnr"].append(psnr(res.frame, gt[i]))
            out["memory"].append(memory)
            out["kind"].append(KINDS.index(kind))
            out["frame"].append(i)
            out["scene"].append(scene)
            pose = traj.frames[i]
            out["pose"].append(torch.tensor([*pose.position, pose.yaw, pose.pitch], dtype=torch.float32))
            out["layout"].append(use_layout)
    if not out["latent"]:
        raise ValueError("no generated frames were kept: the walks were shorter than --every")
    stacked = {k: torch.stack(out[k]) for k in ("latent", "rgb", "depth", "anchor", "pose")}
    stacked["psnr"] = torch.tensor(out["psnr"], dtype=torch.float32)
    stacked["memory"] = torch.tensor(out["memory"], dtype=torch.bool)
    stacked["layout"] = torch.tensor(out["layout"], dtype=torch.bool)
    for k in ("kind", "frame", "scene"):
        stacked[k] = torch.tensor(out[k], dtype=torch.int64)
    return stacked


def save_pairs(path: str | Path, pairs: dict[str, torch.Tensor], model_dir: str) -> None:
    save_tensors(Path(path), pairs, {"format": FORMATS[-1], "model": model_dir,
                                     "kinds": ",".join(KINDS)})


def load_pairs(path: str | Path | list, latent_shape: tuple[int, int, int], image_size: int
               ) -> dict[str, torch.Tensor]:
    """Read one pairs file, or several (joined: walks collected in parallel processes), and check
    each fits the model it will train (latent grid and image size)."""
    if isinstance(path, (list, tuple)):
        if not path:
            raise ValueError("no decoder pairs file given")
        parts = [load_pairs(p, latent_shape, image_size) for p in path]
        return {k: torch.cat([part[k] for part in parts]) for k in FIELDS + POSE_FIELDS}
    from safetensors import safe_open
    from safetensors.torch import load_file

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"decoder pairs file {p} does not exist (make one with mirage train decoder-pairs)")
    with safe_open(str(p), "pt") as f:
        fmt = (f.metadata() or {}).get("format")
    if fmt not in FORMATS:
        raise ValueError(f"{p}: format {fmt!r} is not one of {', '.join(FORMATS)}")
    pairs = load_file(str(p))
    if fmt == FORMATS[0]:   # walked before poses were kept: without the layout
        n = len(pairs["latent"]) if "latent" in pairs else 0
        pairs["pose"], pairs["layout"] = torch.zeros(n, 5), torch.zeros(n, dtype=torch.bool)
    missing = [k for k in FIELDS + POSE_FIELDS if k not in pairs]
    if missing:
        raise ValueError(f"{p}: missing field(s) {', '.join(missing)}")
    if tuple(pairs["latent"].shape[1:]) != tuple(latent_shape):
        raise ValueError(f"{p}: latent shape {tuple(pairs['latent'].shape[1:])} does not match the model's "
                         f"{tuple(latent_shape)}")
    if tuple(pairs["rgb"].shape[1:]) != (image_size, image_size, 3):
        raise ValueError(f"{p}: frames of shape {tuple(pairs['rgb'].shape[1:])}, the model makes "
                         f"({image_size}, {image_size}, 3)")
    return pairs


def pair_layouts(pairs: dict[str, torch.Tensor], image_size: int, fov_deg: float, max_depth: float
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The full-resolution layout (N, 26, H, W) float16 at each pair's pose, drawn from its world's
    geometry, and its surface planes (N, 3, H, W) float32 (engine/model/layout_cells.surface_planes);
    zeros (layout off) for pairs walked without the layout, as their latents were made."""
    from engine.camera import Pose
    from engine.model.layout_cells import (
        PIXEL_CHANNELS,
        Planes,
        layout_pixels,
        surface_planes,
    )
    from engine.world.layout import LayoutRenderer
    from engine.world.levels import generate_level

    n = len(pairs["psnr"])
    out = torch.zeros(n, PIXEL_CHANNELS, image_size, image_size, dtype=torch.float16)
    surface = torch.zeros(n, 3, image_size, image_size)
    on = pairs["layout"].bool()
    renderer = None
    for scene in sorted(set(pairs["scene"][on].tolist())):
        idx = torch.nonzero(on & (pairs["scene"] == scene)).flatten()
        level = generate_level(int(scene))
        if renderer is None:
            renderer = LayoutRenderer(level, image_size, image_size, fov_deg)
        else:
            renderer.set_level(level)
        poses = [Pose(tuple(p[:3].tolist()), float(p[3]), float(p[4])) for p in pairs["pose"][idx]]
        for k in range(0, len(poses), 256):
            planes = Planes(renderer.layout(poses[k:k + 256]))
            out[idx[k:k + 256]] = layout_pixels(planes, max_depth).half()
            surface[idx[k:k + 256]] = surface_planes(planes)
    if renderer is not None:
        renderer.close()
    return out, surface


def describe(pairs: dict[str, torch.Tensor]) -> str:
    """One line per trajectory kind: how many pairs, memory on share, PSNR quartiles."""
    lines = []
    for k, name in enumerate(KINDS):
        sel = pairs["kind"] == k
        if not bool(sel.any()):
            continue
        q = torch.quantile(pairs["psnr"][sel], torch.tensor([0.25, 0.5, 0.75])).tolist()
        lines.append(f"{name:13s} {int(sel.sum()):6d} pairs, memory on {float(pairs['memory'][sel].float().mean()):.2f}, "
                     f"psnr q25/50/75 {q[0]:.1f} / {q[1]:.1f} / {q[2]:.1f} dB")
    return "\n".join(lines)
