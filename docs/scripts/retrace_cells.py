"""Who wins the memory canvas on the return of a retrace? For every return frame of the eval
retraces of worlds 1,000,000 and 1,000,001 (each return pose is an outbound pose, observed), count
the canvas cells won by the point of the frame observed at that very pose, and for the others why
it lost: that frame has no point left in the cell (replaced in its voxel or carved), or a point
more than SURFACE_TOL nearer (a generated or an observed one) took the front surface. Also decodes
the canvas as it is, the same-pose observation's own latent (the autoencoder's ceiling there) and
the generated frame, each against ground truth.

    python docs/scripts/retrace_cells.py [MODEL_DIR | default] [--rule-off]

--rule-off lets generated frames write the cells their read showed from observations (the
memory before 2026-11-27's change, LatentMemory(keep_observed_view=False)).
"""
import sys

import numpy as np
import torch

from engine import projection
from engine.metrics import psnr
from engine.model.autoencoder import to_uint8_image
from engine.model.world_model import WorldModel
from engine.session import WorldSession
from engine.trajectory import read_trajectory
from engine.world.levels import generate_level
from engine.world.renderer import Renderer

torch.set_num_threads(2)
args = [a for a in sys.argv[1:] if a != "--rule-off"]
model = WorldModel.load(args[0] if args and args[0] != "default" else None)
for seed in (1_000_000, 1_000_001):
    traj = read_trajectory(f"assets/eval/retrace-{seed}.json")
    r = Renderer(generate_level(traj.scene_seed), model.image_size, model.image_size, traj.fov_deg)
    gt, depth = r.render(traj.frames)
    r.close()
    s = WorldSession(model, memory=True, seed=0)
    s.memory.keep_observed_view = "--rule-off" not in sys.argv
    latents = []
    for i in range(traj.observe):
        s.observe(gt[i], traj.frames[i], depth[i])
        latents.append(s._prev[0])
    mem, count = s.memory, dict(same_pose=0, no_point=0, generated_in_front=0, observed_in_front=0, other=0)
    psnrs = []
    for i in range(traj.observe, len(traj.frames)):
        c2w_np = traj.frames[i].c2w()
        j = min(range(traj.observe), key=lambda k: np.abs(traj.frames[k].c2w() - c2w_np).max())
        c2w = torch.as_tensor(c2w_np, dtype=torch.float32)
        canvas, _, _ = mem.read(c2w)
        v = mem._view(c2w, depth_test=True)     # the projection and depth test the read just ran
        src, flat, z = mem.frame.numpy()[v.slot.numpy()], v.flat.numpy(), v.z.numpy()
        for c, w in zip(v.cell.numpy(), v.winners.numpy()):
            if mem.frame[w] == j:
                count["same_pose"] += 1
                continue
            mine = np.flatnonzero((flat == c) & (src == j))
            if len(mine) == 0:
                count["no_point"] += 1
            elif z[mine[0]] > float(v.zmin[c]) * (1 + projection.SURFACE_TOL):
                count["observed_in_front" if mem.observed[w] else "generated_in_front"] += 1
            else:
                count["other"] += 1
        with torch.no_grad():
            dec_canvas = to_uint8_image(model.decode(canvas[None])[0])[0].numpy()
            dec_own = to_uint8_image(model.decode(latents[j])[0])[0].numpy()
        generated = s.step(traj.frames[i]).frame
        psnrs.append((psnr(dec_canvas, gt[i]), psnr(dec_own, gt[i]), psnr(generated, gt[i])))
    total = sum(count.values())
    shares = ", ".join(f"{k} {v} ({v / total:.0%})" for k, v in count.items())
    p = np.mean(psnrs, axis=0)
    print(f"retrace-{seed}: cells {shares}; decoded canvas {p[0]:.2f} dB, same-pose latent (ceiling) {p[1]:.2f}, "
          f"generated {p[2]:.2f}", flush=True)
