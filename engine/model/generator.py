"""Pose-conditioned latent generator: predicts the clean next latent (x0) from a noisy one.

Its conditioning is the named channel stack of engine/model/conditioning.py (previous
latent and its warp, memory canvas, mask and depth, rays), read here by name.
A small U-Net (S and S/2) with FiLM from the flow time. Imports only torch (and the
conditioning's channel layout).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.model.conditioning import channel, cond_channels
from engine.model.config import GeneratorConfig


class FiLMBlock(nn.Module):
    def __init__(self, ch: int, tdim: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.c2 = nn.Conv2d(ch, ch, 3, padding=1)
        self.film = nn.Linear(tdim, 2 * ch)
        nn.init.zeros_(self.c2.weight)
        nn.init.zeros_(self.c2.bias)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(temb)[:, :, None, None].chunk(2, dim=1)
        h = self.c1(F.silu(x))
        h = h * (1 + scale) + shift
        return x + self.c2(F.silu(h))


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of the flow time t in [0, 1]: (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    ang = t.float()[:, None] * 1000.0 * freqs[None]
    return torch.cat([ang.sin(), ang.cos()], dim=1)


class Generator(nn.Module):
    def __init__(self, cfg: GeneratorConfig, latent_channels: int) -> None:
        super().__init__()
        self.cfg = cfg
        w, c = cfg.width, latent_channels
        self.latent_channels = c
        self.tmlp = nn.Sequential(nn.Linear(cfg.time_dim, cfg.time_dim * 2), nn.SiLU(),
                                  nn.Linear(cfg.time_dim * 2, cfg.time_dim * 2))
        tdim = cfg.time_dim * 2
        self.inp = nn.Conv2d(c + cond_channels(c, cfg.layout_channels), w, 3, padding=1)
        self.down_blocks = nn.ModuleList([FiLMBlock(w, tdim) for _ in range(max(1, cfg.blocks // 2))])
        self.down = nn.Conv2d(w, w, 4, stride=2, padding=1)
        self.mid = nn.ModuleList([FiLMBlock(w, tdim) for _ in range(cfg.mid_blocks)])
        self.up = nn.Conv2d(w, w, 3, padding=1)
        self.merge = nn.Conv2d(2 * w, w, 1)
        self.up_blocks = nn.ModuleList([FiLMBlock(w, tdim) for _ in range(max(1, cfg.blocks - cfg.blocks // 2))])
        self.out = nn.Conv2d(w, c, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x_t (B, C, S, S) noisy latent, t (B,) flow time (1 = clean), cond (B, K, S, S) -> x0 (B, C, S, S)."""
        temb = self.tmlp(time_embedding(t, self.cfg.time_dim))
        h = self.inp(torch.cat([x_t, cond], dim=1))
        for blk in self.down_blocks:
            h = blk(h, temb)
        skip = h
        h = self.down(F.silu(h))
        for blk in self.mid:
            h = blk(h, temb)
        h = self.up(F.interpolate(h, scale_factor=2, mode="nearest"))
        h = self.merge(torch.cat([h, skip], dim=1))
        for blk in self.up_blocks:
            h = blk(h, temb)
        # Residual on the memory canvas where it covers the view: copying memory is the easy path.
        c = self.latent_channels
        return channel(cond, "memory", c) * channel(cond, "memory_mask", c) + self.out(F.silu(h))
