"""Inference-time sampler levers against the sharpness criterion, measured, not shipped
(docs/MODEL.md, "Sampling schedule and context guidance"): a custom flow-time schedule and
context guidance (autoguidance with the previous latent softened as the weaker condition):

    x0 = D(c) + (w - 1) * (D(c) - D(c_soft))      [optionally only where memory is empty]

Each config runs `mirage eval`'s walk (engine.eval.run_one) on the trajectories cut to their
first N frames and prints psnr_gt / psnr_revisit / sharpness, memory on | memory off.

    python docs/scripts/sampler_probe.py CONFIGS.json explore-1000001:300,retrace-1000001:999 [--model DIR]

CONFIGS.json: {"name": {"schedule": [0, 0.25, 0.5, 0.75, 1], "w": 1.25, "masked": false}, ...}
(schedule: flow times from noise 0 to clean 1, default the model's uniform one; w: guidance, 1 = none).
This patches engine.session's sampler and conditioning for the run; the torch backend only.
"""
from __future__ import annotations

import argparse
import dataclasses
import json

import torch

import engine.model.sampler as sampler
import engine.session as session
from engine.eval import MODES, run_one
from engine.session import WorldModel
from engine.train.decoder import soften
from engine.trajectory import read_trajectory


def install(model: WorldModel, schedule: list[float] | None, w: float, masked: bool) -> None:
    """Point engine.session at a sampler with this schedule and guidance."""
    last: dict = {}
    orig_build, orig_sample, orig_schedule = session.build_cond, sampler.sample, sampler.schedule

    def build_cond(prev, warp, warp_mask, canvas, mask, mem_depth, rays):
        # The session's conditioning for the step being sampled, and the same with the previous
        # latent and its warp softened, both stacked by build_cond itself.
        last["soft"] = orig_build(soften(prev, 1.0, 2), soften(warp, 1.0, 2), warp_mask, canvas, mask, mem_depth, rays)
        last["mask"] = mask
        return orig_build(prev, warp, warp_mask, canvas, mask, mem_depth, rays)

    def guided_sample(fn, shape, steps, gen, device, dtype=torch.float32):
        soft = last["soft"]
        scale = (w - 1.0) * (1 - last["mask"]) if masked else (w - 1.0)

        def d(x, t):
            good = fn(x, t)
            return good if w == 1.0 else good + scale * (good - model.gen(x, t, soft))
        sampler.schedule = (lambda n: schedule) if schedule else orig_schedule
        try:
            return orig_sample(d, shape, len(schedule) - 1 if schedule else steps, gen, device, dtype)
        finally:
            sampler.schedule = orig_schedule

    session.build_cond, session.sample = build_cond, guided_sample


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("configs")
    ap.add_argument("trajectories", help="comma-separated NAME:FRAMES, NAME under assets/eval/")
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = WorldModel.load(a.model, "cpu")
    configs = json.loads(open(a.configs).read())
    cache: dict = {}
    for name, cfg in configs.items():
        install(model, cfg.get("schedule"), float(cfg.get("w", 1.0)), bool(cfg.get("masked", False)))
        print(name, cfg, flush=True)
        for spec in a.trajectories.split(","):
            path, n = spec.split(":")
            full = read_trajectory(f"assets/eval/{path}.json")
            n = min(int(n), len(full.frames))
            traj = dataclasses.replace(full, frames=full.frames[:n],
                                       revisits=[(i, j) for i, j in full.revisits if i < n and j < n])
            row = run_one(model, traj, None, 0, cache)
            cells = [f"{row[m]['psnr_gt']:.2f}/{row[m].get('psnr_revisit') or float('nan'):.2f}/"
                     f"{row[m]['sharpness_ratio']:.2f}" for m in MODES]
            print(f"    {path:24s} " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
