"""Memory on over one explore walk with memory reads skipping generated points of the last N frames
(config memory_skip_recent_generated, engine/memory.py), for several N.

    python docs/scripts/skip_recent.py MODEL|default TRAJECTORY.json 0,10,40

Prints per N: psnr_gt over generated frames, its mean per 200-frame window, psnr_revisit and
sharpness_ratio with memory on, and psnr_gt with memory off, through engine.eval.run_one (4 steps,
seed 0, 2 threads). docs/MODEL.md, "The adversarial term kept off what memory shows".
"""
import sys

import numpy as np
import torch

from engine.eval import run_one
from engine.metrics import psnr
from engine.model.world_model import WorldModel
from engine.trajectory import read_trajectory

torch.set_num_threads(2)
model = WorldModel.load(None if sys.argv[1] == "default" else sys.argv[1])
traj = read_trajectory(sys.argv[2])
cache: dict = {}
for n in (int(a) for a in sys.argv[3].split(",")):
    model.cfg.memory_skip_recent_generated = n
    row = run_one(model, traj, None, 0, cache, keep_frames=True)
    frames, on = row["_frames"], row["memory_on"]
    p = [psnr(frames["memory_on"][i], frames["gt"][i]) for i in range(traj.observe, len(traj.frames))]
    windows = " ".join(f"{np.mean(p[j:j + 200]):.1f}" for j in range(0, len(p), 200))
    print(f"N={n}: psnr_gt {on['psnr_gt']:.2f} (per 200 frames {windows}), revisit {on['psnr_revisit']:.2f}, "
          f"sharpness {on['sharpness_ratio']:.3f}; memory off {row['memory_off']['psnr_gt']:.2f}", flush=True)
