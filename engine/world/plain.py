"""A level's pattern-free twin: the same boxes, lights and colours, every surface pattern replaced by
its mean albedo. Training data only (engine/train/views.py): the ground-truth renderer draws it.

Why: the generator's latents of a place it never saw carry a room's colours and light but none of
its pattern (which phase a wall's bricks have cannot be predicted from geometry), so the decoder's
texture field must draw a whole pattern there, and only there. Encoder latents of real frames, even
blurred, keep the coarse patterns (a brick course 20-60 pixels apart survives any blur that leaves a
room's colours), so a field trained on them learns to add only what such latents lack. Encoder
latents of this twin's frames are latents of exactly the kind the generator makes of unseen places,
with ground truth at the same pose to learn from.

Posters are kept as they are: a picture is not a pattern the field draws.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from engine.world.geometry import (
    LANDMARK,
    PAT_BRICK,
    PAT_PLAIN,
    PAT_PLANKS,
    PAT_STRIPES,
    PAT_TILES,
    Box,
)

# The shader's plain surfaces multiply their albedo by a grain of mean 0.96 (shaders.albedo), and so
# does every pattern but the planks' (their own noise has mean 0.965); the weights below are each
# pattern's share of its two colours over a period, from its line widths in shaders.albedo:
#   planks   seams (8% of a board's width, 3% of its length) in colour 2, boards shaded 0.8-1.15;
#   tiles    a checker of both colours, grout lines (12%) in 0.7 x colour 2;
#   stripes  half and half;
#   bricks   mortar (15%) in 0.6 x colour 2, bricks shaded 0.85-1.15.
_MEAN_WEIGHTS = {
    PAT_PLANKS: (0.89 * 0.975 * 0.965 / 0.96, 0.11 * 0.965 / 0.96),
    PAT_TILES: (0.884 * 0.5, 0.884 * 0.5 + 0.116 * 0.7),
    PAT_STRIPES: (0.5, 0.5),
    PAT_BRICK: (0.846, 0.154 * 0.6),
}


def plain_box(box: Box) -> Box:
    """`box` with its surface pattern replaced by the pattern's mean colour (posters and plain
    surfaces unchanged)."""
    pid = int(round(box.pattern[0]))
    if box.material == LANDMARK or pid not in _MEAN_WEIGHTS:
        return box
    w1, w2 = _MEAN_WEIGHTS[pid]
    mean = np.clip(w1 * np.asarray(box.color1) + w2 * np.asarray(box.color2), 0.0, 1.0)
    return replace(box, color1=tuple(float(c) for c in mean), pattern=(float(PAT_PLAIN), 1.0, 0.0, 0.0))


def plain_level(level):
    """A copy of `level` (engine/world/levels.Level) whose surfaces are drawn without their patterns."""
    return replace(level, static_boxes=[plain_box(b) for b in level.static_boxes])
