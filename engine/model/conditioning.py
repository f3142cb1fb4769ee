"""The generator's conditioning: one stack of named channels at the latent grid, built in one place.

Inference (WorldSession.step) and training (engine/train/world_data.py) both call
`condition`, and the generator reads its inputs back by name (`channel`), so the two
sides cannot drift apart by an offset. The stack, in order:

    prev             C   the previous frame's latent (noised while training)
    prev_warp        C   that latent warped into the target view by its own cell depth
    memory           C   the memory canvas: stored latent cells projected into the target view
    prev_warp_mask   1   where the warp landed
    memory_mask      1   where the memory canvas covers the view
    memory_logdepth  1   log depth of the canvas cells, 0 where empty
    rays             6   Plücker ray map of the target camera in the previous camera's frame
    layout           9   the scene layout of the target view (engine/model/layout_cells.py), only in
                         models whose generator.layout_channels is 9; last, so every other
                         group sits at the same offset with or without it

Memory off is zeros in the three memory channels, layout off zeros in the layout's, no
previous frame (a first frame generated from the layout alone) zeros in the three previous-frame
groups: the same network, trained with each dropped a share of the time. Imports only torch,
engine.projection and the layout's channel count.
"""
from __future__ import annotations

import torch

from engine import projection
from engine.model.layout_cells import LAYOUT_CHANNELS


def channel_widths(latent_channels: int, layout: bool = True) -> tuple[tuple[str, int], ...]:
    """(name, channels) of the stack in order, for latents of `latent_channels` channels; `layout`
    False for the stack of a generator without layout input (v1)."""
    c = latent_channels
    base = (("prev", c), ("prev_warp", c), ("memory", c), ("prev_warp_mask", 1), ("memory_mask", 1),
            ("memory_logdepth", 1), ("rays", 6))
    return base + ((("layout", LAYOUT_CHANNELS),) if layout else ())


def cond_channels(latent_channels: int, layout_channels: int = LAYOUT_CHANNELS) -> int:
    """Channels of the whole stack for a generator taking `layout_channels` (0 or 9) of layout."""
    if layout_channels not in (0, LAYOUT_CHANNELS):
        raise ValueError(f"generator.layout_channels must be 0 or {LAYOUT_CHANNELS}, got {layout_channels}")
    return sum(w for _, w in channel_widths(latent_channels, layout_channels > 0))


def has_layout(cond: torch.Tensor, latent_channels: int) -> bool:
    """Whether a stack carries the layout group (it is the last one)."""
    return cond.shape[1] == cond_channels(latent_channels)


def channel_slice(name: str, latent_channels: int) -> slice:
    """Where channel group `name` sits in the stack."""
    start = 0
    for n, w in channel_widths(latent_channels):
        if n == name:
            return slice(start, start + w)
        start += w
    raise KeyError(f"no conditioning channel {name!r}; the stack has {[n for n, _ in channel_widths(latent_channels)]}")


def channel(cond: torch.Tensor, name: str, latent_channels: int) -> torch.Tensor:
    """One channel group of a stack (B, K, S, S) -> (B, width, S, S), a view."""
    return cond[:, channel_slice(name, latent_channels)]


def stack(latent_channels: int, **parts: torch.Tensor) -> torch.Tensor:
    """Concatenate named parts (B, width, S, S) in the stack's order; every part must be given
    (`layout` only for a generator that takes it)."""
    widths = channel_widths(latent_channels, "layout" in parts)
    names = [n for n, _ in widths]
    missing, extra = set(names) - set(parts), set(parts) - set(names)
    assert not missing and not extra, f"conditioning parts missing {sorted(missing)}, unknown {sorted(extra)}"
    for n, w in widths:
        assert parts[n].shape[1] == w, f"conditioning part {n!r} has {parts[n].shape[1]} channels, expected {w}"
    return torch.cat([parts[n] for n in names], dim=1)


def with_channels(cond: torch.Tensor, latent_channels: int, **parts: torch.Tensor) -> torch.Tensor:
    """The same stack with some channel groups replaced (e.g. another previous latent)."""
    widths = channel_widths(latent_channels, has_layout(cond, latent_channels))
    return stack(latent_channels, **{n: parts.get(n, channel(cond, n, latent_channels)) for n, _ in widths})


def warp_prev(prev_z: torch.Tensor, prev_points: torch.Tensor, target_c2w: torch.Tensor, cells: int,
              fov_deg: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The previous latent (B, C, S, S) splatted into the target cameras (B, 4, 4) from its cells'
    world points (B, S*S, 3): (warp (B, C, S, S), mask (B, 1, S, S))."""
    ok = torch.ones(prev_points.shape[:2], dtype=torch.bool, device=prev_z.device)
    warp, mask, _ = projection.splat(prev_points, prev_z.flatten(2).transpose(1, 2), ok, target_c2w, cells, fov_deg)
    return warp, mask


def memory_logdepth(mask: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """Canvas depth (B, 1, S, S) metres as the network takes it: log, 0 where the canvas is empty."""
    return torch.where(mask > 0, depth.clamp(min=0.05).log(), torch.zeros_like(depth))


def condition(prev_z: torch.Tensor | None, prev_points: torch.Tensor | None, prev_c2w: torch.Tensor,
              target_c2w: torch.Tensor, canvas: torch.Tensor, mask: torch.Tensor, depth: torch.Tensor, fov_deg: float,
              layout: torch.Tensor | None = None) -> torch.Tensor:
    """The whole stack (B, K, S, S) for a step from the previous frame to the target camera.

    prev_z (B, C, S, S) normalised previous latent, prev_points (B, S*S, 3) its cells in the world,
    both None for a first frame made from the layout alone (then prev_c2w is the target's own);
    prev_c2w, target_c2w (B, 4, 4); canvas (B, C, S, S), mask and depth (B, 1, S, S) the memory
    read at the target (zeros for memory off); layout (B, 9, S, S) for a generator that takes it
    (zeros for layout off), None for one that does not."""
    c, s = canvas.shape[1], canvas.shape[-1]
    if prev_z is None:
        prev_z = torch.zeros_like(canvas)
        warp, warp_mask = torch.zeros_like(canvas), torch.zeros_like(mask)
    else:
        warp, warp_mask = warp_prev(prev_z, prev_points, target_c2w, s, fov_deg)
    extra = {} if layout is None else {"layout": layout}
    return stack(c, prev=prev_z, prev_warp=warp, memory=canvas, prev_warp_mask=warp_mask, memory_mask=mask,
                 memory_logdepth=memory_logdepth(mask, depth),
                 rays=projection.plucker(target_c2w, prev_c2w, s, fov_deg), **extra)
