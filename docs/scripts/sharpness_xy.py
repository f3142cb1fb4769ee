"""The eval's sharpness ratio split by direction: generated over ground-truth image-gradient energy
of luma along x (what vertical streaks inflate) and along y, memory on and off, over the first
FRAMES frames of each trajectory, with the mean PSNR of those generated frames against ground truth.
Real detail raises both; streaks raise x alone.

    python docs/scripts/sharpness_xy.py [--model DIR] [--frames 300] [--steps N] TRAJ.json...
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from engine.metrics import luma, psnr
from engine.session import WorldModel, WorldSession
from engine.trajectory import read_trajectory
from engine.world.levels import generate_level
from engine.world.renderer import Renderer


def energy(rgb: np.ndarray) -> tuple[float, float]:
    y = luma(rgb)
    return float(np.mean(np.diff(y, axis=1) ** 2)), float(np.mean(np.diff(y, axis=0) ** 2))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("trajectories", nargs="+")
    ap.add_argument("--model", default=None)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = WorldModel.load(a.model, "cpu")
    for path in a.trajectories:
        traj = read_trajectory(path)
        frames = traj.frames[:a.frames]
        r = Renderer(generate_level(traj.scene_seed), model.image_size, model.image_size, model.cfg.fov_deg)
        gt, depth = r.render(frames)
        ref = np.array([energy(gt[i]) for i in range(traj.observe, len(frames))]).sum(0)
        for memory in (True, False):
            sess = WorldSession(model, memory=memory, steps=a.steps, seed=0)
            for i in range(traj.observe):
                sess.observe(gt[i], frames[i], depth[i])
            out = {i: sess.step(frames[i]).frame for i in range(traj.observe, len(frames))}
            gen = np.array([energy(f) for f in out.values()]).sum(0)
            p = np.mean([psnr(f, gt[i]) for i, f in out.items()])
            print(f"{path.split('/')[-1]:28s} memory {'on ' if memory else 'off'}  psnr {p:.2f}  sharpness x "
                  f"{gen[0] / ref[0]:.2f}  y {gen[1] / ref[1]:.2f}  both {gen.sum() / ref.sum():.2f}", flush=True)


if __name__ == "__main__":
    main()
