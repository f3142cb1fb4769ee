"""The decoder's last step: a small full-resolution network that sharpens the frame along the layout.

Everything else in the decoder works at a quarter of the frame's side and unfolds 4x4 pixel blocks
at its output (PixelShuffle), with the full-resolution layout folded into those blocks' channels.
Measured on the shipped v2.3 model's own-look reconstructions of training views (the autoencoder
ceiling: encoder latents, the looks read off the frame): its gradient energy was 0.59 of ground
truth's, and as low at the edges of the geometry (within two pixels of a change of segment or of a
depth step: 0.55-0.67) as inside patterned walls, while the pattern detail at a 6-pixel scale
correlated 0.84-0.92 with ground truth's at 0.8-1.0 of its energy. What is lost is the last pixel of
every edge. Where an edge is, the layout says to the pixel, and where a pattern's line is, the
texture field's output says; a few 3x3 convolutions at full resolution reading both can put a
step there, which a pixel loss pays for (the edge's place is certain, only the colours on either
side are guessed).

It reads the frame as decoded (texture field included) and the layout's first nine channels (log
depth, normal, material classes: where edges are; the surface sines and the corridor flag would
only add to its cost, which the frame budget feels at full resolution), and adds a residual where
the layout drew a surface: with the layout off it changes nothing, and its last convolution starts
at zero, so a decoder gains it without changing.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

GEOMETRY_IN = 9   # the layout pixels' channels it reads: log depth, normal, the five class shares


class Refiner(nn.Module):
    """rgb (B, 3, H, W) and the layout's geometry (B, 26, H, W; it reads the first GEOMETRY_IN) -> rgb with a
    residual where a surface is drawn."""

    def __init__(self, width: int) -> None:
        super().__init__()
        # A 1x1 mix first: the 12 inputs to `width` channels cost 12 multiply-adds a pixel where a
        # 3x3 would cost 108; the two 3x3 convolutions after it see 5x5 pixels, an edge and both sides.
        self.mix = nn.Conv2d(3 + GEOMETRY_IN, width, 1)
        self.conv = nn.Conv2d(width, width, 3, padding=1)
        self.out = nn.Conv2d(width, 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, rgb: torch.Tensor, geometry: torch.Tensor, drawn: torch.Tensor | None = None) -> torch.Tensor:
        """`drawn` (B, 1, H, W): where the layout drew a surface, its class shares summed and clamped to
        [0, 1]; the decoder passes the one it computes for its depth, so the frame's path does not
        reduce the classes twice."""
        if drawn is None:
            drawn = geometry[:, 4:9].sum(1, keepdim=True).clamp(0.0, 1.0)
        h = F.silu(self.mix(torch.cat([rgb, geometry[:, :GEOMETRY_IN]], dim=1)))
        return rgb + self.out(F.silu(self.conv(h))) * drawn
