"""Where the long-walk streaks come from: along an eval walk, memory off, how column-like each
generated frame is (horizontal over vertical image-gradient energy of luma: real rooms here sit
near 1, vertical streaks far above) against how much the camera turned and moved forward.

    python docs/scripts/streaks.py [MODEL_DIR] [--traj assets/eval/explore-1000000.json] [--true-depth]

--true-depth replaces each generated frame's predicted depth, which warps it into the next view,
with the renderer's: whether the streaks come from the model's depth (they did not, 2026-11-28).
This is a diagnosis only; the session never sees the renderer's depth of a generated frame.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from engine.metrics import luma
from engine.model.autoencoder import cell_depth
from engine.session import WorldModel, WorldSession
from engine.trajectory import read_trajectory
from engine.world.levels import generate_level
from engine.world.renderer import Renderer


def columnness(rgb: np.ndarray) -> float:
    y = luma(rgb)
    return float(np.mean(np.diff(y, axis=1) ** 2) / max(np.mean(np.diff(y, axis=0) ** 2), 1e-6))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default=None)
    ap.add_argument("--traj", default="assets/eval/explore-1000000.json")
    ap.add_argument("--window", type=int, default=20)
    ap.add_argument("--true-depth", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(2)
    traj = read_trajectory(a.traj)
    model = WorldModel.load(a.model, "cpu")
    r = Renderer(generate_level(traj.scene_seed), model.image_size, model.image_size, model.cfg.fov_deg)
    gt, depth = r.render(traj.frames)
    sess = WorldSession(model, memory=False, seed=0)
    for i in range(traj.observe):
        sess.observe(gt[i], traj.frames[i], depth[i])
    gen = {}
    for i in range(traj.observe, len(traj.frames)):
        gen[i] = sess.step(traj.frames[i]).frame
        if a.true_depth:
            z, _, c2w = sess._prev
            sess._prev = (z, cell_depth(torch.from_numpy(depth[i])[None, None].float(), model.cells), c2w)
    fwd = np.stack([p.forward() for p in traj.frames])
    pos = np.stack([p.xyz for p in traj.frames])
    turn = np.degrees(np.arccos(np.clip((fwd[1:] * fwd[:-1]).sum(1), -1, 1)))   # degrees per frame
    move = np.linalg.norm(pos[1:] - pos[:-1], axis=1)                            # metres per frame
    w = a.window
    print("frames      gen col  gt col  turn deg/frame  move m/frame")
    rows = []
    for s in range(traj.observe, len(traj.frames) - w + 1, w):
        idx = range(s, s + w)
        g = np.mean([columnness(gen[i]) for i in idx])
        t = np.mean([columnness(gt[i]) for i in idx])
        rows.append((g, turn[s - 1:s + w - 1].mean(), move[s - 1:s + w - 1].mean()))
        if (s - traj.observe) % (5 * w) == 0:
            print(f"{s:5d}-{s + w - 1:<5d} {g:7.2f} {t:7.2f} {rows[-1][1]:14.2f} {rows[-1][2]:13.3f}")
    g, tr, mv = map(np.array, zip(*rows))
    print(f"windows of {w}: corr(columnness, turning) {np.corrcoef(g, tr)[0, 1]:+.2f}, "
          f"corr(columnness, forward motion) {np.corrcoef(g, mv)[0, 1]:+.2f}")


if __name__ == "__main__":
    main()
