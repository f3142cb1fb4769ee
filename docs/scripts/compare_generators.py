"""Compare generators on training worlds (never the eval seeds), as docs/MODEL.md does.

    python docs/scripts/compare_generators.py [--quick] default runs/world_h/model ...

retrace, out-and-back and turnaround on worlds 500-503 and 400-frame explore walks on 500-501,
memory on and off, through engine.eval.run_eval (4 steps, seed 0). About 5 minutes a model on 2 cores.
--quick: world 500 only, a 300-frame explore walk, and a contact sheet of it in /tmp (about 1.5
minutes a model).
"""
import sys
import time
from pathlib import Path

import torch

from engine.eval import run_eval
from engine.trajectory_kinds import make_trajectory

torch.set_num_threads(2)
quick = "--quick" in sys.argv
seeds, explore = ((500,), (500,)) if quick else ((500, 501, 502, 503), (500, 501))
frames = 300 if quick else 400
named = [(f"{k}-{s}", make_trajectory(s, k, resolution=(128, 128))) for s in seeds for k in ("retrace", "out-and-back", "turnaround")]
named += [(f"explore-{s}", make_trajectory(s, "explore", frames=frames, resolution=(128, 128))) for s in explore]
for model in [a for a in sys.argv[1:] if a != "--quick"]:
    t = time.time()
    sheet = Path(f"/tmp/sheet_{model.replace('/', '_')}.png") if quick else None
    r = run_eval(named, model_dir=None if model == "default" else model, progress=False, contact_sheet_path=sheet)
    out = {"all": r["summary"], **r["by_kind"]}
    for k, v in out.items():
        on, off = v["memory_on"], v["memory_off"]
        print(f"{model[-20:]:20s} {k:13s} on {on['psnr_gt']:.2f} rev {on['psnr_revisit']:.2f} sharp {on['sharpness_ratio']:.3f} | off {off['psnr_gt']:.2f} rev {off['psnr_revisit']:.2f} sharp {off['sharpness_ratio']:.3f}", flush=True)
    print(f"{time.time() - t:.0f} s" + (f", contact sheet {sheet}" if sheet else ""), flush=True)
