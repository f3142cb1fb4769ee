"""Appearance segments: which part of which room a pixel shows, the unit a look is kept for.

The worlds style each room's floor, its walls and its furniture together (engine/world/levels.py),
so a look is read, drawn and kept per *segment*: one room's floor, or its walls, or its furniture.
Which segment a pixel belongs to is geometry (the room a surface bounds, and its class), drawn by
the layout's G-buffer; corridors, ceilings and picture surfaces have none. These helpers turn the
per-pixel ids into masks and spread per-segment vectors back to pixels, for the posterior
(engine/model/appearance.py), the pattern measurements (engine/model/pattern_spectrum.py) and
the session that keeps the codes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.world.layout import FLOOR_C, FURNITURE_C, WALL_C
from engine.world.layout import NONE as NOTHING

# Classes with a code of their own per room, in segment order: segment = room * 3 + position here.
SEGMENT_CLASSES = (FLOOR_C, WALL_C, FURNITURE_C)
MAX_ROOMS = 10                                 # levels have 4 to 9 rooms
MAX_SEGMENTS = MAX_ROOMS * len(SEGMENT_CLASSES)
MIN_PIXELS = 24.0                              # a segment seen by fewer pixels tells too little of its look


def segment_ids(room: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """room (N, 1, H, W) long (-1: no room) and one-hot classes (N, 5, H, W) -> the appearance segment
    of each pixel (N, 1, H, W) long, -1 where it has none (corridor, ceiling, picture, nothing)."""
    drawn = classes.sum(1, keepdim=True) > 0.5
    material = torch.where(drawn, classes.argmax(1, keepdim=True), torch.full_like(room, NOTHING))
    return segments_of(room, material)


def segments_of(room: torch.Tensor, material: torch.Tensor) -> torch.Tensor:
    """segment_ids from the class index (N, 1, H, W) long (engine/world/layout.CLASSES; NOTHING where
    nothing is drawn) instead of its one-hot: one table lookup, for the session's every frame."""
    ok = (room >= 0) & (room < MAX_ROOMS)
    table = _SEGMENT_TABLE.to(room.device)
    seg = table[material.clamp(max=table.shape[0] - 1), room.clamp(0, MAX_ROOMS - 1)]
    return torch.where(ok, seg, torch.full_like(seg, -1))


def _segment_table() -> torch.Tensor:
    # (class index, room) -> segment; the last row stands for every class past the known ones (nothing drawn).
    table = torch.full((max(SEGMENT_CLASSES) + 2, MAX_ROOMS), -1, dtype=torch.int64)
    for k, c in enumerate(SEGMENT_CLASSES):
        table[c] = torch.arange(MAX_ROOMS) * len(SEGMENT_CLASSES) + k
    return table


_SEGMENT_TABLE = _segment_table()


def segment_masks(seg: torch.Tensor, factor: int = 1) -> torch.Tensor:
    """(N, 1, H, W) segment ids -> (N, MAX_SEGMENTS, H / factor, W / factor): each segment's share of
    every factor x factor block (its one-hot mask, average-pooled)."""
    onehot = F.one_hot((seg[:, 0] + 1).clamp(0, MAX_SEGMENTS), MAX_SEGMENTS + 1)[..., 1:]
    masks = onehot.permute(0, 3, 1, 2).float()
    return F.avg_pool2d(masks, factor) if factor > 1 else masks


def code_map(codes: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    """codes (N, MAX_SEGMENTS, D) and segment ids (N, 1, H, W) -> (N, D, H, W): each pixel its segment's
    code, zero where it has none."""
    n, _, h, w = seg.shape
    d = codes.shape[-1]
    # A zero row for "no segment" and the table transposed first, so one gather writes the (N, D, HW)
    # result directly: gathering (N, HW, D) rows and transposing took 8x as long (1 ms a frame on the
    # 2-core VM at 128x128, every step).
    table = torch.cat([codes.new_zeros(n, 1, d), codes], dim=1).transpose(1, 2)   # (N, D, 1 + MAX_SEGMENTS)
    idx = (seg.flatten(1) + 1).clamp(min=0)                                        # (N, HW), 0: none
    return torch.gather(table, 2, idx[:, None].expand(-1, d, -1)).view(n, d, h, w)


def footprint(uv: torch.Tensor) -> torch.Tensor:
    """How far the surface coordinates (N, 2, H, W) move from a pixel to its neighbours, metres (N, 1, H, W):
    the larger of the two axes, each the smaller of its forward and backward step, so that a pixel on
    a face's edge measures within its own face and not the jump to the next."""
    big = 1e6   # a missing neighbour (the frame's border) never wins the minimum
    ex = (uv[..., :, 1:] - uv[..., :, :-1]).abs()
    ey = (uv[..., 1:, :] - uv[..., :-1, :]).abs()
    dx = torch.minimum(F.pad(ex, (0, 1), value=big), F.pad(ex, (1, 0), value=big))
    dy = torch.minimum(F.pad(ey, (0, 0, 0, 1), value=big), F.pad(ey, (0, 0, 1, 0), value=big))
    return torch.maximum(dx, dy).amax(1, keepdim=True)
