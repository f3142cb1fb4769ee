"""Geometry records shared by the level generator, renderer, collision and minimap.

Everything is an axis-aligned box so that all consumers read the same shapes.
Seeds below TRAIN_SEED_LIMIT are for training; EVAL_SEED_RANGE is never trained on.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TRAIN_SEED_LIMIT = 1_000_000
EVAL_SEED_RANGE = (1_000_000, 1_001_000)  # [start, stop): evaluation worlds only
# The largest scene seed any command accepts: what a 32-bit signed integer holds, so the explorer's
# seed box (a Qt spin box) can show every seed a trajectory file or the command line can name.
MAX_SCENE_SEED = 2**31 - 1

# Materials drive the shader's pattern choice and what blocks walking.
FLOOR, WALL, CEILING, FURNITURE, LANDMARK = range(5)

# Pattern ids understood by the renderer's fragment shader.
PAT_PLAIN, PAT_PLANKS, PAT_TILES, PAT_STRIPES, PAT_BRICK = 0, 1, 2, 3, 4
PAT_RINGS, PAT_DIAGONAL, PAT_DOTS, PAT_DISC, PAT_CROSS, PAT_TRIANGLE, PAT_BANDS = range(5, 12)
POSTER_PATTERNS = (PAT_RINGS, PAT_DIAGONAL, PAT_DOTS, PAT_DISC, PAT_CROSS, PAT_TRIANGLE, PAT_BANDS)

SLOT = 9.0            # metres between room-slot centres
WALL_T = 0.2          # wall thickness
DOOR_H = 2.4          # door opening and corridor ceiling height
EYE_HEIGHT = 1.6
BODY_RADIUS = 0.25    # collision radius around the eye


@dataclass(frozen=True)
class Box:
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    material: int
    color1: tuple[float, float, float]
    color2: tuple[float, float, float] = (0.0, 0.0, 0.0)
    pattern: tuple[float, float, float, float] = (0.0, 1.0, 0.0, 0.0)  # id, frequency, angle, extra
    room: int = -1          # lighting zone: room index, or -1 for corridors
    solid: bool = True      # blocks walking (its footprint enters the collision map)
    poster_face: int = -1   # face index (0..5 = -x,+x,-y,+y,-z,+z) that shows a picture in uv [0,1]


@dataclass(frozen=True)
class Room:
    index: int
    lo: tuple[float, float]   # (x, z) of the floor rectangle
    hi: tuple[float, float]
    height: float
    light: tuple[float, float, float]
    name: str

    @property
    def center(self) -> tuple[float, float]:
        return (0.5 * (self.lo[0] + self.hi[0]), 0.5 * (self.lo[1] + self.hi[1]))


@dataclass(frozen=True)
class Door:
    """A corridor joining two rooms; lo/hi is its floor rectangle (x, z)."""

    rooms: tuple[int, int]
    lo: tuple[float, float]
    hi: tuple[float, float]
    axis: str  # "x": runs along x, "z": runs along z


# Box faces in the order -x, +x, -y, +y, -z, +z (Box.poster_face's), and their outward normals.
FACE_NORMALS = np.array([[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]], dtype=np.float32)


def face_corners(lo, hi, face: int) -> np.ndarray:
    """Four corners (4, 3) of a box face, counter-clockwise seen from outside (what back-face
    culling keeps): shared by the renderer's and the scene layout's meshes."""
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    axis, positive = face // 2, face % 2 == 1
    u, v = [a for a in range(3) if a != axis]
    quad = np.empty((4, 3))
    for k, (du, dv) in enumerate(((0, 0), (1, 0), (1, 1), (0, 1))):
        quad[k, axis] = hi[axis] if positive else lo[axis]
        quad[k, u], quad[k, v] = (lo[u], hi[u])[du], (lo[v], hi[v])[dv]
    if np.dot(np.cross(quad[1] - quad[0], quad[2] - quad[0]), FACE_NORMALS[face]) < 0:
        quad = quad[::-1].copy()
    return quad
