"""The range real frames' latents keep, and the guard that holds generated latents inside it.

Measured on the shipped model (2026-11-21): in a long rollout into unseen space, the
generator's latents drift channel by channel (a channel's spatial mean reaching -3 to
-7 where real frames stay within about +-1.8), which decodes as a colour cast that
washes the frame out to flat white or blue; once such frames are in memory, memory
carries the cast back. Holding each channel's spatial mean inside the range real frames
show removes the runaway part and leaves the spatial pattern alone: only the mean of a
channel that is out of range is moved, to the nearest bound.

The range is a property of the autoencoder and of the worlds, not a tuning knob: it is
the lowest and highest per-channel mean over frames of training worlds.
"""
from __future__ import annotations

import torch


def channel_mean_range(z: torch.Tensor) -> list[list[float]]:
    """Per channel [lowest, highest] spatial mean over normalised latents z (N, C, ...): latents
    (N, C, S, S), or their channel means already taken (N, C, 1)."""
    mu = z.float().flatten(2).mean(dim=2)                                 # (N, C)
    return [[float(lo), float(hi)] for lo, hi in zip(mu.amin(0), mu.amax(0))]


def clamp_channel_means(z: torch.Tensor, bounds: torch.Tensor | list[list[float]] | None) -> torch.Tensor:
    """Shift each channel of z (B, C, S, S) whose spatial mean is outside [lo, hi] to the nearest bound."""
    if bounds is None:
        return z
    b = torch.as_tensor(bounds, dtype=z.dtype, device=z.device)          # (C, 2)
    assert b.shape == (z.shape[1], 2), f"latent range for {b.shape[0]} channels, latent has {z.shape[1]}"
    mu = z.mean(dim=(2, 3), keepdim=True)
    target = torch.maximum(torch.minimum(mu, b[:, 1].view(1, -1, 1, 1)), b[:, 0].view(1, -1, 1, 1))
    return z + (target - mu)


@torch.no_grad()
def measure_latent_range(model, seeds: list[int], frames: int = 200, every: int = 4,
                         device: str | torch.device = "cpu") -> list[list[float]]:
    """Render explore walks of the given (training) worlds, encode every `every`-th frame and
    return the per-channel range of their normalised latents' spatial means."""
    from engine.model.autoencoder import to_model_image
    from engine.trajectory import make_trajectory
    from engine.world.levels import generate_level
    from engine.world.renderer import Renderer

    size, zs, r = model.image_size, [], None
    try:
        for seed in seeds:
            traj = make_trajectory(seed, "explore", frames=frames, resolution=(size, size))
            level = generate_level(seed)
            if r is None:
                r = Renderer(level, size, size, traj.fov_deg)
            else:
                r.set_level(level)                        # one GL context for every world
            rgb, _ = r.render(traj.frames[::every])
            zs.append(model.encode(to_model_image(torch.from_numpy(rgb)).to(device)).cpu())
    finally:
        if r is not None:
            r.close()
    return channel_mean_range(torch.cat(zs))
