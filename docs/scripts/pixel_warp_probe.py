"""Probe: would a sub-cell-accurate warp context help the shipped generator, without retraining?

The generator's short-term geometry is the previous latent splatted into the target view one latent
cell at a time (8x8 pixels at 128x128): on a turn or a step forward the content lands up to half a
cell off, and the generator has to shift it the rest of the way itself. This probe swaps that context
for a warp done in pixels: the previous shown frame is forward-splatted (2x supersampled, nearest
depth wins, the projection code of the memory) by its own predicted depth into the new pose and
encoded. Variants:
  base     the session as shipped (the latent-cell splat);
  pix      the pixel warp's latent, kept where the latent splat covers the view (its mask unchanged);
  pixmask  the pixel warp's latent and its own coverage (cells >= 75% covered) as the mask.
Only the warp context changes; memory, sampler, guard and decoder are the session's. The walk is
`mirage eval`'s (`engine.eval.run_one`) on each trajectory's first FRAMES frames; the output is the
same PSNR / sharpness split as `sharpness_xy.py`.

    python docs/scripts/pixel_warp_probe.py --variant pix [--frames 200] TRAJ.json...
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from sharpness_xy import report

import engine.eval as ev
from engine import projection
from engine.camera import Pose
from engine.model.autoencoder import cell_depth, to_model_image, to_uint8_image
from engine.model.generator import build_cond
from engine.model.latent_range import clamp_channel_means
from engine.model.sampler import sample
from engine.model.world_model import WorldModel
from engine.session import StepResult, WorldSession, _c2w

SUPER = 2   # source pixels per target pixel along each axis: fewer cracks when the view magnifies


def pixel_warp(rgb: torch.Tensor, depth: torch.Tensor, c2w_from: torch.Tensor, c2w_to: torch.Tensor,
               fov: float) -> tuple[torch.Tensor, torch.Tensor]:
    """rgb (1, 3, H, H) in model range and its depth (1, 1, H, H) -> the view from c2w_to and its coverage."""
    h = rgb.shape[-1]
    r2 = F.interpolate(rgb, scale_factor=SUPER, mode="bilinear", align_corners=False)
    d2 = F.interpolate(depth, scale_factor=SUPER, mode="nearest")
    pts = projection.lift(d2[:, 0], c2w_from[None], fov)
    cell, point, zmin = projection.splat_index(pts, torch.ones(pts.shape[:2], dtype=torch.bool), c2w_to[None], h, fov)
    canvas, mask, _ = projection.fill_canvas(cell, r2.flatten(2).transpose(1, 2).reshape(-1, 3)[point], zmin, 1, h)
    return canvas, mask


class PixelWarpSession(WorldSession):
    """WorldSession whose warp context comes from the previous shown frame warped in pixels."""
    variant = "base"

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._prev_img: tuple[torch.Tensor, torch.Tensor] | None = None

    def observe(self, rgb: np.ndarray, pose: Pose, depth: np.ndarray | None = None) -> StepResult:
        res = super().observe(rgb, pose, depth)
        d = np.asarray(res.depth if depth is None else depth, dtype=np.float32)
        self._prev_img = (to_model_image(torch.from_numpy(rgb)[None]), torch.from_numpy(d)[None, None])
        return res

    @torch.no_grad()
    def step(self, pose: Pose) -> StepResult:
        if self.variant == "base":
            return super().step(pose)
        s, c, fov = self.model.cells, self.model.latent_channels, self.model.cfg.fov_deg
        prev_z, prev_cells, prev_c2w = self._prev
        c2w = _c2w(pose, self.device)
        if self.memory_enabled and len(self.memory):
            canvas, mask, mdepth = (t[None] for t in self.memory.read(c2w, self.index))
        else:
            canvas, mask = torch.zeros(1, c, s, s), torch.zeros(1, 1, s, s)
            mdepth = torch.zeros_like(mask)
        pts = projection.lift(prev_cells[:, 0], prev_c2w[None], fov)
        _, wmask, _ = projection.splat(pts, prev_z.flatten(2).transpose(1, 2),
                                       torch.ones(pts.shape[:2], dtype=torch.bool), c2w[None], s, fov)
        img, dep = self._prev_img
        warped, cov = pixel_warp(img, dep, prev_c2w, c2w, fov)
        if self.variant == "pixmask":
            wmask = (F.avg_pool2d(cov, img.shape[-1] // s) > 0.75).float()
        warp = self.backend.encode(warped) * wmask
        cond = build_cond(prev_z, warp, wmask, canvas, mask, mdepth, projection.plucker(c2w[None], prev_c2w[None], s, fov))
        z = sample(lambda x, t: self.backend.generate(x, t, cond), (1, c, s, s), self.steps, self.gen, self.device)
        z = clamp_channel_means(z, self._latent_bounds)
        rgb, depth = self.backend.decode(z, generated=True)
        cells = cell_depth(depth, s)
        if self.memory_enabled:
            self.memory.write(z[0], cells[0, 0], c2w, self.index, float(self.index), observed=False)
        self._prev, self._prev_img = (z, cells, c2w), (rgb.clamp(-1, 1), depth)
        res = StepResult(to_uint8_image(rgb)[0].numpy(), depth[0, 0].numpy(), pose, self.index, False, {},
                         self.memory.stats().as_dict(), float(mask.mean()))
        self.index += 1
        return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("trajectories", nargs="+")
    ap.add_argument("--variant", choices=["base", "pix", "pixmask"], default="pix")
    ap.add_argument("--model", default=None)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    PixelWarpSession.variant = a.variant
    ev.WorldSession = PixelWarpSession   # engine.eval.run_one builds its sessions by this name
    report(WorldModel.load(a.model, "cpu"), a.trajectories, a.frames, label=f"{a.variant:7s}")

if __name__ == "__main__":
    main()
