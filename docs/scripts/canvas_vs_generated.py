"""Does the generator improve on its memory canvas? On the return of the eval retraces of worlds
1,000,000 and 1,000,001, the memory canvas is read at each pose and decoded as it is, beside the
generated frame; both against ground truth, over frames the canvas covers (>= 95% of cells).

    python docs/scripts/canvas_vs_generated.py [MODEL_DIR | default]
"""
import sys

import numpy as np
import torch

from engine.session import WorldSession
from engine.model.world_model import WorldModel
from engine.model.autoencoder import to_uint8_image
from engine.metrics import psnr
from engine.trajectory import read_trajectory
from engine.world.levels import generate_level
from engine.world.renderer import Renderer
torch.set_num_threads(2)
model = WorldModel.load(sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] != "default" else None)
for path in ["assets/eval/retrace-1000000.json", "assets/eval/retrace-1000001.json"]:
    traj = read_trajectory(path)
    r = Renderer(generate_level(traj.scene_seed), 128, 128, traj.fov_deg)
    gt, depth = r.render(traj.frames); r.close()
    s = WorldSession(model, memory=True, seed=0)
    for i in range(traj.observe):
        s.observe(gt[i], traj.frames[i], depth[i])
    pg, pc, cov = [], [], []
    for i in range(traj.observe, len(traj.frames)):
        canvas, mask, _ = s.memory.read(torch.as_tensor(traj.frames[i].c2w(), dtype=torch.float32))
        with torch.no_grad():
            rgb, _ = model.decode(canvas[None])[:2]
        res = s.step(traj.frames[i])
        if float(mask.mean()) >= 0.95:
            pc.append(psnr(to_uint8_image(rgb)[0].numpy(), gt[i])); pg.append(psnr(res.frame, gt[i]))
        cov.append(float(mask.mean()))
    print(path, f"frames>=95% covered {len(pg)}/{len(cov)}  generated {np.mean(pg):.2f}  decoded canvas {np.mean(pc):.2f}", flush=True)
