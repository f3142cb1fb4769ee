"""Does a model's long-walk drift come through memory? An explore walk with memory on, off, and on
with generated frames kept out of memory (observations only).

    python docs/scripts/explore_generated_writes.py MODEL|default [TRAJECTORY.json]

Default walk: 300 explore frames on training world 500. Prints psnr_gt and sharpness_ratio
(engine.eval.run_one, 4 steps, seed 0). docs/MODEL.md, "Adversarial loss on blurred contexts".
"""
import sys

import torch

import engine.memory as memory
from engine.eval import run_one
from engine.model.world_model import WorldModel
from engine.trajectory import read_trajectory
from engine.trajectory_kinds import make_trajectory

torch.set_num_threads(2)
model = WorldModel.load(None if sys.argv[1] == "default" else sys.argv[1])
traj = read_trajectory(sys.argv[2]) if len(sys.argv) > 2 else make_trajectory(500, "explore", frames=300,
                                                                                 resolution=(128, 128))
cache: dict = {}
r = run_one(model, traj, None, 0, cache)
print("as shipped", {m: (round(r[m]["psnr_gt"], 2), round(r[m]["sharpness_ratio"], 3)) for m in ("memory_on", "memory_off")})
write = memory.LatentMemory.write


def observations_only(self, *args, observed=False, **kwargs):
    if observed:
        return write(self, *args, observed=observed, **kwargs)


memory.LatentMemory.write = observations_only
r = run_one(model, traj, None, 0, cache)
print("generated frames not written", {"memory_on": (round(r["memory_on"]["psnr_gt"], 2), round(r["memory_on"]["sharpness_ratio"], 3))})
