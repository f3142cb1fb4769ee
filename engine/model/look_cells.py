"""The looks as the generator takes them: each latent cell's share of its segments' appearance.

Where a room was never seen, the generator's one-step output is its conditional mean, and with
nothing but geometry to go on that mean is a flat average room: which colours and which pattern
a room has cannot be predicted from its walls. The decoder was given the look (a code and a
pattern lock per segment, engine/model/appearance.py) and draws it, but on a latent whose colours
say something else it draws it faintly (measured, docs/HISTORY.md: ground truth's looks on the
generator's own latents brought sharpness 0.54 -> 0.82 on one walk, the looks a session draws
from the prior 0.54). Given the same look, the generator's mean is that look's room: a session
draws a look for every segment it meets before generating (an observation's, or one from the
prior), so the latent and the decoder agree on it.

Per cell, the mean over its pixels of

    code        D   the segment's appearance code
    lock        6   whether each surface axis holds a clear pattern, its log frequency, and
                    the checker and brick flags
    phase       4   cosine and sine of the pattern's phase along each locked axis, 2 pi (f u + p):
                    their mean over the cell is the pattern as the cell can hold it (a pattern
                    finer than a cell averages away, as it does in the latent)
    centre      4   the same at the cell's centre pixel: where in its cycle the cell sits, which
                    the mean loses for fine patterns

taken from the decoder's full-resolution input, so the generator and the decoder read one look
from one place. A pixel with no segment, and every pixel with memory off or the layout off, is
zero: the mode without looks is the same network, trained with them dropped.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from engine.model.layout_cells import PIXEL_CHANNELS
from engine.model.pattern_spectrum import LOCK

LOOK_EXTRA = 6 + 4 + 4   # look_cells' channels beyond the code


def look_cell_channels(appearance_dim: int) -> int:
    """Channels of look_cells for codes of `appearance_dim` dimensions."""
    return appearance_dim + LOOK_EXTRA


def look_cells(pixels: torch.Tensor, cells: int, appearance_dim: int) -> torch.Tensor:
    """The decoder's full input (N, PIXEL_CHANNELS + 2 + LOCK + D, H, W: layout pixels, surface
    coordinates, each pixel's lock and code; engine/model/appearance.look_layout) -> (N, D + 14, cells,
    cells), the channels above."""
    n, _, h, w = pixels.shape
    if h != w or h % cells:
        raise ValueError(f"a {h}x{w} frame does not tile into {cells}x{cells} cells")
    start = PIXEL_CHANNELS
    want = start + 2 + LOCK + appearance_dim
    if pixels.shape[1] != want:
        raise ValueError(f"looks need the decoder's {want}-channel input, got {pixels.shape[1]} channels")
    uv = pixels[:, start:start + 2]
    lock = pixels[:, start + 2:start + 2 + LOCK]
    code = pixels[:, start + 2 + LOCK:]
    on = lock[:, 0:2]
    cycles = 2.0 * math.pi * (lock[:, 2:4].exp() * uv + lock[:, 4:6])
    phase = torch.cat([torch.cos(cycles) * on, torch.sin(cycles) * on], dim=1)
    k = h // cells
    pooled = F.avg_pool2d(torch.cat([code, on, lock[:, 2:4], lock[:, 6:8], phase], dim=1), k)
    centre = phase[..., k // 2::k, k // 2::k]
    return torch.cat([pooled, centre], dim=1)


def no_looks(n: int, cells: int, appearance_dim: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """look_cells of frames without looks (memory off, layout off): zeros (n, D + 14, cells, cells)."""
    return torch.zeros(n, look_cell_channels(appearance_dim), cells, cells, device=device)
