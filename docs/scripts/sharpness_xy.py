"""The eval's sharpness ratio split by direction: generated over ground-truth image-gradient energy
of luma along x (what vertical streaks inflate) and along y, memory on and off, over the first
FRAMES frames of each trajectory, with the mean PSNR of those generated frames against ground truth.
Real detail raises both; streaks raise x alone. The walk itself is `mirage eval`'s
(`engine.eval.run_one`), on the trajectory cut to its first FRAMES frames.

    python docs/scripts/sharpness_xy.py [--model DIR] [--frames 300] [--steps N] [--temperature T] TRAJ.json...
"""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from engine.eval import MODES, run_one
from engine.metrics import luma
from engine.session import WorldModel
from engine.trajectory import read_trajectory


def energy(frames: np.ndarray) -> np.ndarray:
    """Summed (x, y) gradient energy of a stack of uint8 RGB frames, each frame's mean."""
    y = luma(frames)
    return np.array([np.mean(np.diff(y, axis=-1) ** 2, axis=(-2, -1)).sum(),
                     np.mean(np.diff(y, axis=-2) ** 2, axis=(-2, -1)).sum()])


def report(model: WorldModel, paths: list[str], frames: int, steps: int | None = None,
           temperature: float | None = None, label: str = "") -> None:
    """Walk each trajectory's first `frames` frames with memory on and off and print one line per mode
    (`label` first, for scripts that run this under a changed session)."""
    cache: dict = {}
    for path in paths:
        full = read_trajectory(path)
        n = min(frames, len(full.frames))
        traj = dataclasses.replace(full, frames=full.frames[:n],
                                   revisits=[(i, j) for i, j in full.revisits if i < n and j < n])
        row = run_one(model, traj, steps, 0, cache, keep_frames=True, temperature=temperature)
        gen = slice(traj.observe, n)
        ref = energy(row["_frames"]["gt"][gen])
        for mode in MODES:
            e = energy(row["_frames"][mode][gen])
            print(f"{label + ' ' if label else ''}{path.split('/')[-1]:28s} memory {mode[7:]:3s}  "
                  f"psnr {row[mode]['psnr_gt']:.2f}  revisit {row[mode]['psnr_revisit']:.2f}  "
                  f"sharpness x {e[0] / ref[0]:.2f}  y {e[1] / ref[1]:.2f}  both {e.sum() / ref.sum():.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("trajectories", nargs="+")
    ap.add_argument("--model", default=None)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    ap.add_argument("--temperature", type=float, default=None, help="sampling temperature (default: the model's)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    report(WorldModel.load(a.model, "cpu"), a.trajectories, a.frames, a.steps, a.temperature)


if __name__ == "__main__":
    main()
