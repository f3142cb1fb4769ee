"""What a return does to a generated drawing. On an eval turnaround (one observed frame, two full
turns on the spot) the second turn reads the first turn's drawings back from memory (stage 15 keeps
the first drawing of each place). Per turn: memory coverage, sharpness (gradient energy over ground
truth's) and PSNR against ground truth, of the generated frame and of the memory canvas decoded as
it is (canvas where it covers, the generated latent elsewhere).

With --replace W the generated latent is pulled towards the canvas by W at the cells whose winning
point is a generated one (W = 1: shown as drawn; with --centred D only where that point lies within
D cells of the cell's centre; with --source observed at cells whose winner is an observed point
instead, `any` at both), before it is decoded and written; the eval's memory-on numbers for the
trajectory follow. A probe of the sampler's output, not shipped code.

    python docs/scripts/drawing_copy_probe.py [--model DIR] [--replace W [--centred D] [--source S]] TRAJ.json...
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

import engine.session as session_module
from engine.eval import render_trajectory, run_one
from engine.memory import LatentMemory
from engine.metrics import gradient_energy, psnr
from engine.model.autoencoder import to_uint8_image
from engine.model.world_model import WorldModel
from engine.trajectory import read_trajectory

_last_read: dict = {}


def _recording_read(self: LatentMemory, c2w: torch.Tensor, frame: int | None = None):
    out = _plain_read(self, c2w, frame)
    _last_read["r"] = (self, out)
    return out


_plain_read = LatentMemory.read
_plain_sample = session_module.sample


def _replacing_sample(weight: float, centred: float | None = None, source: str = "generated"):
    def sample(*args, **kwargs):
        z = _plain_sample(*args, **kwargs)
        got = _last_read.pop("r", None)          # None: memory off or empty, nothing to copy
        if got is None:
            return z
        mem, (canvas, _, _) = got
        v, s = mem._seen, mem.cells               # the read this step's sample followed
        drawn = torch.zeros(s * s, dtype=torch.bool, device=z.device)
        observed = mem.observed[v.winners]
        pick = {"generated": ~observed, "observed": observed, "any": torch.ones_like(observed)}[source]
        if centred is not None:   # only winners within `centred` cells of their cell's centre
            order = torch.argsort(v.slot)
            at = order[torch.searchsorted(v.slot[order], v.winners)]
            pick &= v.off[at] < centred ** 2
        drawn[v.cell] = pick
        return z + weight * drawn.view(1, 1, s, s).float() * (canvas[None] - z)
    return sample


def per_turn(model: WorldModel, path: str) -> None:
    traj = read_trajectory(path)
    gt, depth = render_trajectory(model, traj, {})
    sess = session_module.WorldSession(model, memory=True, seed=0)
    sess.observe(gt[0], traj.frames[0], depth[0])
    rows = []
    for i in range(1, len(traj.frames)):
        res = sess.step(traj.frames[i])
        _, (canvas, mask, _) = _last_read.pop("r")
        mixed = canvas[None] * mask[None] + sess.last_latent * (1 - mask[None])
        rgb, _ = sess.backend.decode(mixed, generated=True)
        shown = to_uint8_image(rgb)[0].cpu().numpy()
        g = gradient_energy(gt[i])
        rows.append((i, float(mask.mean()), gradient_energy(res.frame) / g, gradient_energy(shown) / g,
                     psnr(res.frame, gt[i]), psnr(shown, gt[i])))
    a = np.array(rows)
    half = (len(traj.frames) + 1) // 2
    for lo, hi in ((1, half), (half, len(traj.frames))):
        sel = a[(a[:, 0] >= lo) & (a[:, 0] < hi)].mean(0)
        print(f"{path} frames {lo}-{hi - 1}: coverage {sel[1]:.2f}  sharpness generated {sel[2]:.2f} "
              f"canvas {sel[3]:.2f}  psnr generated {sel[4]:.2f} canvas {sel[5]:.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trajectories", nargs="+")
    ap.add_argument("--model", default=None)
    ap.add_argument("--replace", type=float, default=None)
    ap.add_argument("--centred", type=float, default=None, metavar="D",
                    help="with --replace: only at cells whose winning point is within D cells of the centre")
    ap.add_argument("--source", choices=("generated", "observed", "any"), default="generated",
                    help="with --replace: which winning points are shown as they are")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = WorldModel.load(args.model)
    LatentMemory.read = _recording_read
    for path in args.trajectories:
        if args.replace is None:
            per_turn(model, path)
            continue
        session_module.sample = _replacing_sample(args.replace, args.centred, args.source)
        on = run_one(model, read_trajectory(path), None, 0, {})["memory_on"]
        print(f"{path} replace {args.replace} centred {args.centred} source {args.source}: psnr_gt {on['psnr_gt']:.2f} revisit {on['psnr_revisit']:.2f} "
              f"sharpness {on['sharpness_ratio']:.3f} ssim {on['ssim_gt']:.3f}", flush=True)


if __name__ == "__main__":
    main()
