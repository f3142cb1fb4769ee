"""What a model must beat, on the same frames: a flat image, and the level drawn without texture.

- `flat`: every frame one constant colour, the mean colour of training frames. What a model
  that knows nothing about the view scores.
- `layout`: the level's geometry drawn by the renderer with each material in its mean colour
  over training levels, plain (no pattern), no pictures (a picture is drawn in its material's
  plain colour) and white light in every room. What the layout alone tells, so a
  layout-conditioned model has to add appearance to beat it.

Both colours are measured on training worlds (seeds below 1,000,000), never on the worlds
being evaluated: TRAINING_SEEDS. The flat colour is the mean of rendered explore walks; the
material colours are face-area-weighted means of the boxes' two pattern colours.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from engine.world.geometry import CEILING, FLOOR, FURNITURE, LANDMARK, PAT_PLAIN, WALL
from engine.world.levels import Level

TRAINING_SEEDS = range(100_000, 100_012)
FRAMES_PER_SEED = 40
MATERIALS = (FLOOR, WALL, CEILING, FURNITURE, LANDMARK)
WHITE = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class BaselineColours:
    flat: np.ndarray                    # (3,) uint8: mean RGB of rendered training frames
    materials: dict[int, tuple]         # material -> mean base colour (r, g, b) in [0, 1] over training levels


def _face_area(lo, hi) -> float:
    d = np.asarray(hi) - np.asarray(lo)
    return float(2 * (d[0] * d[1] + d[1] * d[2] + d[0] * d[2]))


@lru_cache(maxsize=4)
def training_colours(size: int, fov_deg: float) -> BaselineColours:
    """The flat colour (rendered training frames, about a second) and the materials' mean colours."""
    from engine.trajectory import make_trajectory
    from engine.world.levels import generate_level
    from engine.world.renderer import Renderer

    total = np.zeros(3)
    sums = {m: np.zeros(3) for m in MATERIALS}
    areas = {m: 0.0 for m in MATERIALS}
    renderer = None
    try:
        for seed in TRAINING_SEEDS:
            level = generate_level(seed)
            for box in level.boxes_at(0.0):
                a = _face_area(box.lo, box.hi)
                sums[box.material] += a * 0.5 * (np.asarray(box.color1) + np.asarray(box.color2))
                areas[box.material] += a
            poses = make_trajectory(level, "explore", frames=FRAMES_PER_SEED, fov_deg=fov_deg,
                                    resolution=(size, size), rng_seed=seed).frames
            if renderer is None:
                renderer = Renderer(level, size, size, fov_deg)
            else:
                renderer.set_level(level)
            total += renderer.render(poses)[0].reshape(-1, 3).mean(0)
    finally:
        if renderer is not None:
            renderer.close()
    flat = np.round(total / len(TRAINING_SEEDS)).astype(np.uint8)
    grey = tuple(float(v) / 255.0 for v in flat)
    materials = {m: tuple(float(v) for v in sums[m] / areas[m]) if areas[m] > 0 else grey for m in MATERIALS}
    return BaselineColours(flat, materials)


def untextured_level(level: Level, colours: BaselineColours) -> Level:
    """The same boxes, each in its material's mean colour, plain, no picture; every room lit white."""
    boxes = [dataclasses.replace(b, color1=colours.materials[b.material], color2=colours.materials[b.material],
                                 pattern=(float(PAT_PLAIN), 1.0, 0.0, 0.0), poster_face=-1)
             for b in level.static_boxes]
    rooms = [dataclasses.replace(r, light=WHITE) for r in level.rooms]
    return dataclasses.replace(level, rooms=rooms, static_boxes=boxes)


def flat_frames(colours: BaselineColours, n: int, size: int) -> np.ndarray:
    """(n, size, size, 3) uint8 frames of the training frames' mean colour."""
    return np.broadcast_to(colours.flat, (n, size, size, 3)).copy()
