"""The looks of a training walk, per frame as the generator takes them (engine/model/look_cells.py).

A session keeps one look per appearance segment for the whole walk: the one read off the view
that showed the most of it (its rule for observations), with a clear pattern lock preferred to
none. Training gives every frame of a walk the looks the walk's own frames read so: for a frame
whose segment was never observed in the session this is the look it truly has, and the generator
learns to draw the room that look describes, which is what a session asks of it when the look was
drawn from the prior instead. The frames are training worlds' ground truth read by the posterior,
as the decoder's own training reads them.
"""
from __future__ import annotations

import torch

from engine.model.appearance import look_layout, read_look
from engine.model.autoencoder import to_model_image
from engine.model.layout_cells import (
    PIXEL_CHANNELS,
    Planes,
    layout_pixels,
    surface_and_segments,
)
from engine.model.look_cells import look_cells
from engine.model.pattern_spectrum import unlocked
from engine.model.segments import MAX_SEGMENTS
from engine.model.world_model import WorldModel


def _views(layouts, poses: list, max_depth: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    planes = Planes(layouts.layout(poses))
    return (layout_pixels(planes, max_depth), *surface_and_segments(planes))


@torch.no_grad()
def walk_looks(model: WorldModel, layouts, rgb, poses: list, device, generator: torch.Generator,
               batch: int = 64) -> torch.Tensor:
    """One walk's frames, rgb (L, H, W, 3) uint8 and their poses, with `layouts` the level's
    LayoutRenderer -> look_cells of every frame (L, D + 14, S, S) float16, from the walk's looks."""
    appearance = model.ae.appearance
    d, cells, max_depth = model.cfg.autoencoder.appearance_dim, model.cells, model.cfg.autoencoder.max_depth
    code = torch.zeros(MAX_SEGMENTS, d)
    lock = unlocked(MAX_SEGMENTS, "cpu", generator)
    best = torch.zeros(MAX_SEGMENTS)                 # pixels of the view the code was read from
    best_clear = torch.zeros(MAX_SEGMENTS)           # same, for the view the clear lock was read from
    for i in range(0, len(poses), batch):
        pixels, uv, seg = (t.to(device) for t in _views(layouts, poses[i:i + batch], max_depth))
        x = to_model_image(torch.from_numpy(rgb[i:i + batch])).to(device)
        mu, present, lk = read_look(appearance, x, pixels[:, :PIXEL_CHANNELS], uv, seg, generator)
        mu, present, lk = mu.cpu(), present.cpu(), lk.cpu()
        area = torch.stack([torch.bincount((s + 1).flatten().cpu(), minlength=MAX_SEGMENTS + 1)[1:] for s in seg])
        area = area.float() * present                                          # (n, S)
        clear = (lk[..., :2].amax(-1) > 0) & present
        for view in range(len(mu)):
            take = area[view] > best
            code[take], best[take] = mu[view, take], area[view, take]
            # A clear lock beats none; among clear ones, the view showing most; with none clear, the code's view.
            with_clear = clear[view] & (area[view] > best_clear)
            no_clear_yet = (best_clear == 0) & take & ~clear[view]
            lock[with_clear | no_clear_yet] = lk[view, with_clear | no_clear_yet]
            best_clear[with_clear] = area[view, with_clear]
    looks = torch.cat([lock, code], dim=-1)[None].to(device)                   # (1, S, LOCK + D)
    out = []
    for i in range(0, len(poses), batch):
        pixels, uv, seg = (t.to(device) for t in _views(layouts, poses[i:i + batch], max_depth))
        full = look_layout(pixels[:, :PIXEL_CHANNELS], uv, seg, looks.expand(len(seg), -1, -1))
        out.append(look_cells(full, cells, d).half().cpu())
    return torch.cat(out)
