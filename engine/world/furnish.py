"""Furniture and landmarks for one room.

Furniture gives rooms 3D structure (tables, shelves, sofas, pillars, cabinets);
landmarks (posters, colour panels, door signs) make each place recognisable.
Placement keeps the doorways and a spawn spot free and leaves walkways between
items so every room stays connected for walking.
"""
from __future__ import annotations

import colorsys

import numpy as np

from engine.world.geometry import (
    DOOR_H,
    FURNITURE,
    LANDMARK,
    PAT_PLAIN,
    PAT_PLANKS,
    PAT_STRIPES,
    POSTER_PATTERNS,
    Box,
    Door,
    Room,
)

Rect = tuple[tuple[float, float], tuple[float, float]]
WALKWAY = 0.75  # free gap kept between items (wider than the body: 2 x 0.25 m + margin)


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    return tuple(float(c) for c in colorsys.hsv_to_rgb(h % 1.0, s, v))


def _hits(lo, hi, rects: list[Rect], margin: float) -> bool:
    return any(lo[0] - margin < r[1][0] and r[0][0] - margin < hi[0]
               and lo[1] - margin < r[1][1] and r[0][1] - margin < hi[1] for r in rects)


def door_zones(room: Room, doors: list[Door]) -> list[Rect]:
    """Rectangles in front of each opening of this room: kept free of furniture."""
    return [((d.lo[0] - 1.3, d.lo[1] - 1.3), (d.hi[0] + 1.3, d.hi[1] + 1.3))
            for d in doors if room.index in d.rooms]


def _wall_frame(room: Room, side: int):
    """(fixed axis, coordinate of the inner wall face, direction into the room)."""
    fixed = 0 if side < 2 else 1
    coord = room.lo[fixed] if side % 2 == 0 else room.hi[fixed]
    inward = 1.0 if side % 2 == 0 else -1.0
    return fixed, coord, inward


def _against_wall(room: Room, side: int, along_c: float, width: float, depth: float):
    """Footprint (lo, hi) in (x, z) of an item of `width` x `depth` touching wall `side`."""
    fixed, coord, inward = _wall_frame(room, side)
    along = 1 - fixed
    lo, hi = [0.0, 0.0], [0.0, 0.0]
    a, b = sorted((coord, coord + inward * depth))
    lo[fixed], hi[fixed] = a, b
    lo[along], hi[along] = along_c - width / 2, along_c + width / 2
    return tuple(lo), tuple(hi)


def furnish_room(room: Room, doors: list[Door], style: dict, rng: np.random.Generator
                 ) -> tuple[list[Box], tuple[float, float]]:
    """Furniture and landmarks for `room`, and a free (x, z) spot to spawn in."""
    (x0, z0), (x1, z1) = room.lo, room.hi
    spot = (float(rng.uniform(x0 + 1.2, x1 - 1.2)), float(rng.uniform(z0 + 1.2, z1 - 1.2)))
    keep_free: list[Rect] = door_zones(room, doors) + [((spot[0] - 0.8, spot[1] - 0.8), (spot[0] + 0.8, spot[1] + 0.8))]
    placed: list[Rect] = []
    boxes: list[Box] = []
    wall_spans: dict[int, list[tuple[float, float]]] = {s: [] for s in range(4)}
    furn, furn2 = style["furn"], tuple(0.6 * c for c in style["furn"])
    wood = _hsv(0.08 + rng.uniform(-0.03, 0.03), 0.55, rng.uniform(0.35, 0.6))

    def free(lo, hi, margin=WALKWAY) -> bool:
        inside = x0 <= lo[0] and hi[0] <= x1 and z0 <= lo[1] and hi[1] <= z1
        return inside and not _hits(lo, hi, placed, margin) and not _hits(lo, hi, keep_free, 0.0)

    # Items against walls: shelves, sofas, cabinets.
    for _ in range(int(rng.integers(2, 5))):
        kind = rng.choice(["shelf", "sofa", "cabinet"])
        side = int(rng.integers(4))
        fixed, coord, inward = _wall_frame(room, side)
        along = 1 - fixed
        width = {"shelf": rng.uniform(1.0, 2.0), "sofa": rng.uniform(1.6, 2.2), "cabinet": rng.uniform(0.8, 1.4)}[kind]
        depth = {"shelf": 0.4, "sofa": 0.9, "cabinet": 0.55}[kind]
        c = rng.uniform(room.lo[along] + width / 2 + 0.1, room.hi[along] - width / 2 - 0.1)
        lo, hi = _against_wall(room, side, c, width, depth)
        if not free(lo, hi):
            continue
        placed.append((lo, hi))
        wall_spans[side].append((c - width / 2, c + width / 2))
        if kind == "shelf":
            h = rng.uniform(1.7, 2.2)
            boxes.append(Box((lo[0], 0.0, lo[1]), (hi[0], h, hi[1]), FURNITURE, wood, furn,
                             (float(PAT_STRIPES), 1.0 / 0.4, 90.0, 0.0), room.index))
        elif kind == "sofa":
            boxes.append(Box((lo[0], 0.0, lo[1]), (hi[0], 0.45, hi[1]), FURNITURE, furn, furn2,
                             (float(PAT_PLAIN), 1.0, 0.0, 0.0), room.index))
            blo, bhi = _against_wall(room, side, c, width, 0.22)
            boxes.append(Box((blo[0], 0.45, blo[1]), (bhi[0], 0.95, bhi[1]), FURNITURE, furn2, furn,
                             (float(PAT_PLAIN), 1.0, 0.0, 0.0), room.index, solid=False))
        else:
            boxes.append(Box((lo[0], 0.0, lo[1]), (hi[0], rng.uniform(0.8, 1.2), hi[1]), FURNITURE, furn, wood,
                             (float(PAT_PLANKS), 3.0, 0.0, 0.0), room.index))

    # Free-standing items: tables, pillars, crates.
    for _ in range(int(rng.integers(1, 4))):
        kind = rng.choice(["table", "pillar", "crate"])
        sx, sz = {"table": (rng.uniform(0.8, 1.6), rng.uniform(0.7, 1.1)), "pillar": (0.5, 0.5),
                  "crate": (rng.uniform(0.5, 0.9),) * 2}[kind]
        cx, cz = rng.uniform(x0 + sx / 2 + WALKWAY, x1 - sx / 2 - WALKWAY), rng.uniform(z0 + sz / 2 + WALKWAY, z1 - sz / 2 - WALKWAY)
        lo, hi = (cx - sx / 2, cz - sz / 2), (cx + sx / 2, cz + sz / 2)
        if not free(lo, hi):
            continue
        placed.append((lo, hi))
        if kind == "table":
            boxes.append(Box((lo[0], 0.72, lo[1]), (hi[0], 0.78, hi[1]), FURNITURE, wood, furn2,
                             (float(PAT_PLANKS), 4.0, 0.0, 0.0), room.index))
            for lx, lz in ((lo[0], lo[1]), (hi[0] - 0.06, lo[1]), (lo[0], hi[1] - 0.06), (hi[0] - 0.06, hi[1] - 0.06)):
                boxes.append(Box((lx, 0.0, lz), (lx + 0.06, 0.72, lz + 0.06), FURNITURE, furn2, furn2,
                                 (float(PAT_PLAIN), 1.0, 0.0, 0.0), room.index, solid=False))
        elif kind == "pillar":
            boxes.append(Box((lo[0], 0.0, lo[1]), (hi[0], room.height, hi[1]), FURNITURE, style["wall2"], furn,
                             (float(PAT_STRIPES), 2.0, 0.0, 0.0), room.index))
        else:
            h = rng.uniform(0.5, 0.9)
            boxes.append(Box((lo[0], 0.0, lo[1]), (hi[0], h, hi[1]), FURNITURE, wood, furn2,
                             (float(PAT_PLANKS), 5.0, 0.0, 0.0), room.index))
            if rng.random() < 0.5:  # a second, smaller crate on top
                s = 0.3 * (hi[0] - lo[0])
                boxes.append(Box((lo[0] + s, h, lo[1] + s), (hi[0] - s, h + 0.4, hi[1] - s), FURNITURE, furn, wood,
                                 (float(PAT_PLANKS), 5.0, 0.0, 0.0), room.index, solid=False))

    boxes += _landmarks(room, doors, rng, wall_spans)
    return boxes, spot


def _landmarks(room: Room, doors: list[Door], rng: np.random.Generator,
               wall_spans: dict[int, list[tuple[float, float]]]) -> list[Box]:
    """Posters and colour panels on walls (clear of openings and tall furniture), signs over doors."""
    out: list[Box] = []
    zones = door_zones(room, doors)
    for _ in range(int(rng.integers(3, 6))):
        side = int(rng.integers(4))
        fixed, coord, inward = _wall_frame(room, side)
        along = 1 - fixed
        panel = rng.random() < 0.25
        w = rng.uniform(1.2, 2.0) if panel else rng.uniform(0.6, 1.2)
        h = rng.uniform(1.2, 1.8) if panel else rng.uniform(0.6, 1.1)
        y = rng.uniform(0.9, 1.3) if panel else rng.uniform(1.1, 1.6)
        span = room.hi[along] - room.lo[along]
        if span < w + 0.4:
            continue
        c = rng.uniform(room.lo[along] + w / 2 + 0.2, room.hi[along] - w / 2 - 0.2)
        lo, hi = _against_wall(room, side, c, w, 0.04)
        near_door = _hits(lo, hi, zones, 0.0)
        crowded = any(c - w / 2 < b + 0.1 and a - 0.1 < c + w / 2 for a, b in wall_spans[side])
        if near_door or crowded:
            continue
        wall_spans[side].append((c - w / 2, c + w / 2))
        hue = rng.random()
        col1 = _hsv(hue, rng.uniform(0.6, 1.0), rng.uniform(0.7, 1.0))
        col2 = _hsv(hue + rng.uniform(0.3, 0.7), rng.uniform(0.5, 1.0), rng.uniform(0.15, 0.9))
        pat = (float(PAT_PLAIN), 1.0, 0.0, 0.0) if panel else (
            float(rng.choice(POSTER_PATTERNS)), float(rng.uniform(2.0, 6.0)), float(rng.uniform(0, 180)), float(rng.random()))
        face = {0: 1, 1: 0, 2: 5, 3: 4}[side]  # the face looking into the room
        out.append(Box((lo[0], y, lo[1]), (hi[0], y + h, hi[1]), LANDMARK, col1, col2, pat, room.index,
                       solid=False, poster_face=face))
    for d in doors:  # a coloured sign above each doorway, inside this room
        if room.index not in d.rooms:
            continue
        axis = 0 if d.axis == "x" else 1
        across = 1 - axis
        at_lo = abs(d.hi[axis] - room.lo[axis]) < 1e-6
        face = (2 * axis + (1 if at_lo else 0)) if axis == 0 else (4 + (1 if at_lo else 0))
        wall = room.lo[axis] if at_lo else room.hi[axis]
        a, b = sorted((wall, wall + (0.04 if at_lo else -0.04)))
        lo, hi = [0.0, 0.0], [0.0, 0.0]
        lo[axis], hi[axis] = a, b
        lo[across], hi[across] = d.lo[across] + 0.1, d.hi[across] - 0.1
        if room.height - DOOR_H < 0.35:
            continue
        hue = rng.random()
        out.append(Box((lo[0], DOOR_H + 0.05, lo[1]), (hi[0], DOOR_H + 0.3, hi[1]), LANDMARK,
                       _hsv(hue, 0.9, 0.9), _hsv(hue + 0.5, 0.8, 0.3), (float(rng.choice(POSTER_PATTERNS)), 3.0, 0.0, 0.0),
                       room.index, solid=False, poster_face=face))
    return out
