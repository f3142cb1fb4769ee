"""A quick look at a generator on training world 500 (never the eval seeds).

    python docs/scripts/check_world500.py [MODEL|default] [THREADS]

retrace, out-and-back, turnaround and a 300-frame explore walk, memory on and off, through
engine.eval.run_eval (4 steps, seed 0); writes a contact sheet of the explore walk to /tmp.
About 1.5 minutes on 2 cores; docs/scripts/compare_generators.py is the wider (5-minute) check.
"""
import sys
import time
from pathlib import Path

import torch

from engine.eval import run_eval
from engine.trajectory_kinds import make_trajectory

model = sys.argv[1] if len(sys.argv) > 1 else "default"
torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
named = [(f"{k}-500", make_trajectory(500, k, resolution=(128, 128))) for k in ("retrace", "out-and-back", "turnaround")]
named += [("explore-500", make_trajectory(500, "explore", frames=300, resolution=(128, 128)))]
t = time.time()
png = Path(f"/tmp/sheet_{model.replace('/', '_')}.png")
r = run_eval(named, model_dir=None if model == "default" else model, progress=False, contact_sheet_path=png)
for k, v in {"all": r["summary"], **r["by_kind"]}.items():
    on, off = v["memory_on"], v["memory_off"]
    print(f"{model[-24:]:24s} {k:13s} on {on['psnr_gt']:.2f} rev {on['psnr_revisit']:.2f} sharp {on['sharpness_ratio']:.3f}"
          f" | off {off['psnr_gt']:.2f} rev {off['psnr_revisit']:.2f} sharp {off['sharpness_ratio']:.3f}", flush=True)
print(f"{time.time() - t:.0f} s, contact sheet {png}")
