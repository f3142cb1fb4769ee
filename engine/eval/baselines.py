"""What a model must beat, on the same frames: a flat image, and the layout drawn without texture.

- `flat`: every frame one constant colour, the mean colour of training frames. What a model
  that knows nothing about the view scores.
- `layout`: the level's geometry seen from the pose (engine/world/layout.py), each material
  class in its mean colour over training frames; no texture, no pictures, no coloured light.
  What the layout alone tells, so a layout-conditioned model has to add appearance to beat it.

The colours are measured on training worlds (seeds below 1,000,000), never on the worlds
being evaluated: explore walks of TRAINING_SEEDS rendered together with their layouts.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from engine.world.layout import CLASSES, NONE, Layout

TRAINING_SEEDS = range(100_000, 100_012)
FRAMES_PER_SEED = 40


@dataclass(frozen=True)
class BaselineColours:
    flat: np.ndarray       # (3,) uint8: mean RGB of training frames
    classes: np.ndarray    # (len(CLASSES), 3) uint8: mean RGB of each material class on them


@lru_cache(maxsize=4)
def training_colours(size: int, fov_deg: float) -> BaselineColours:
    """Mean colours of training frames, overall and per material class (rendered here, about a second)."""
    from engine.trajectory import make_trajectory
    from engine.world.layout import LayoutRenderer
    from engine.world.levels import generate_level
    from engine.world.renderer import Renderer

    total = np.zeros(3)
    per_class = np.zeros((len(CLASSES), 3))
    counts = np.zeros(len(CLASSES))
    renderer = layout = None
    try:
        for seed in TRAINING_SEEDS:
            level = generate_level(seed)
            poses = make_trajectory(level, "explore", frames=FRAMES_PER_SEED, fov_deg=fov_deg,
                                    resolution=(size, size), rng_seed=seed).frames
            if renderer is None:
                renderer, layout = Renderer(level, size, size, fov_deg), LayoutRenderer(level, size, size, fov_deg)
            else:
                renderer.set_level(level)
                layout.set_level(level)
            rgb, _ = renderer.render(poses)
            mat = layout.layout(poses).material
            total += rgb.reshape(-1, 3).mean(0)
            for c in range(len(CLASSES)):
                sel = mat == c
                per_class[c] += rgb[sel].astype(np.float64).sum(0)
                counts[c] += sel.sum()
    finally:
        for r in (renderer, layout):
            if r is not None:
                r.close()
    flat = total / len(TRAINING_SEEDS)
    classes = np.where(counts[:, None] > 0, per_class / np.maximum(counts[:, None], 1), flat)
    return BaselineColours(np.round(flat).astype(np.uint8), np.round(classes).astype(np.uint8))


def flat_frames(colours: BaselineColours, n: int, size: int) -> np.ndarray:
    """(n, size, size, 3) uint8 frames of the training frames' mean colour."""
    return np.broadcast_to(colours.flat, (n, size, size, 3)).copy()


def layout_frames(colours: BaselineColours, layout: Layout) -> np.ndarray:
    """The layout drawn flat: each pixel its class's mean colour (the overall mean where nothing is drawn)."""
    table = np.concatenate([colours.classes, np.zeros((256 - len(CLASSES), 3), dtype=np.uint8)])
    table[NONE] = colours.flat
    return table[layout.material]
