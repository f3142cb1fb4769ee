"""Memory on over one explore walk with memory reads skipping generated points of the last N frames
(config memory_skip_recent_generated, engine/memory.py), for several N.

    python docs/scripts/skip_recent.py MODEL|default TRAJECTORY.json 0,10,40

Prints per N: psnr_gt over generated frames, its mean per 200-frame window, psnr_revisit and
sharpness_ratio (4 steps, seed 0, 2 threads). docs/MODEL.md, "Skipping recent generated points".
"""
import sys
import time

import numpy as np
import torch

from engine.metrics import gradient_energy, psnr
from engine.model.world_model import WorldModel
from engine.session import WorldSession
from engine.trajectory import read_trajectory
from engine.world.levels import generate_level
from engine.world.renderer import Renderer

torch.set_num_threads(2)
model = WorldModel.load(None if sys.argv[1] == "default" else sys.argv[1])
traj = read_trajectory(sys.argv[2])
gt, depth = Renderer(generate_level(traj.scene_seed), model.image_size, model.image_size, model.cfg.fov_deg).render(traj.frames)
gen = range(traj.observe, len(traj.frames))
for n in (int(a) for a in sys.argv[3].split(",")):
    model.cfg.memory_skip_recent_generated = n
    s = WorldSession(model, memory=True, seed=0)
    t0 = time.time()
    shown = []
    for i in range(traj.observe):
        s.observe(gt[i], traj.frames[i], depth[i])
        shown.append(gt[i])
    shown += [s.step(traj.frames[i]).frame for i in gen]
    p = [psnr(shown[i], gt[i]) for i in gen]
    windows = " ".join(f"{np.mean(p[j:j + 200]):.1f}" for j in range(0, len(p), 200))
    rev = np.mean([psnr(shown[a], shown[b]) for a, b in traj.revisits]) if traj.revisits else float("nan")
    sharp = np.mean([gradient_energy(shown[i]) for i in gen]) / np.mean([gradient_energy(gt[i]) for i in gen])
    print(f"N={n}: psnr_gt {np.mean(p):.2f} (per 200 frames {windows}), revisit {rev:.2f}, sharpness {sharp:.3f}, "
          f"{time.time() - t0:.0f} s", flush=True)
