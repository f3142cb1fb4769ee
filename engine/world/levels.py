"""Procedural indoor levels from an integer seed.

A level is a grid of rooms (2x2 to 3x3 slots) joined by corridors through door
openings, built only from axis-aligned boxes so that the renderer, collision and
the minimap all read the same geometry. Every room gets its own wall colour,
floor pattern, light colour, furniture and landmarks (posters, panels, signs) so
different places look different -- which is what makes memory measurable.

Seeds below TRAIN_SEED_LIMIT are for training; EVAL_SEED_RANGE is never trained on.
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

import numpy as np

from engine.world.furnish import furnish_room
from engine.world.geometry import (  # noqa: F401  (re-exported)
    BODY_RADIUS,
    CEILING,
    DOOR_H,
    EVAL_SEED_RANGE,
    EYE_HEIGHT,
    FLOOR,
    FURNITURE,
    LANDMARK,
    PAT_BRICK,
    PAT_PLAIN,
    PAT_PLANKS,
    PAT_STRIPES,
    PAT_TILES,
    SLOT,
    TRAIN_SEED_LIMIT,
    WALL,
    WALL_T,
    Box,
    Door,
    Room,
)


@dataclass
class Level:
    seed: int
    rooms: list[Room]
    doors: list[Door]
    static_boxes: list[Box]
    spawns: list[tuple[float, float, float]]
    eye_height: float = EYE_HEIGHT
    body_radius: float = BODY_RADIUS
    extra: dict = field(default_factory=dict)

    def boxes_at(self, t: float = 0.0) -> list[Box]:
        """Geometry at time t (seconds). Static today; moving objects plug in here."""
        return list(self.static_boxes)

    def walkable_rects(self) -> list[tuple[tuple[float, float], tuple[float, float]]]:
        return [(r.lo, r.hi) for r in self.rooms] + [(d.lo, d.hi) for d in self.doors]

    def bounds(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        lo = np.min([b.lo for b in self.static_boxes], axis=0)
        hi = np.max([b.hi for b in self.static_boxes], axis=0)
        return tuple(float(v) for v in lo), tuple(float(v) for v in hi)

    def room_at(self, x: float, z: float) -> int:
        """Index of the room containing (x, z), or -1 (corridor or outside)."""
        for r in self.rooms:
            if r.lo[0] <= x <= r.hi[0] and r.lo[1] <= z <= r.hi[1]:
                return r.index
        return -1

    def to_json(self) -> dict:
        lo, hi = self.bounds()
        return {
            "seed": self.seed,
            "eye_height": self.eye_height,
            "body_radius": self.body_radius,
            "bounds": {"min": list(lo), "max": list(hi)},
            "rooms": [{"index": r.index, "name": r.name, "min": list(r.lo), "max": list(r.hi),
                       "height": r.height, "light": list(r.light)} for r in self.rooms],
            "doors": [{"rooms": list(d.rooms), "min": list(d.lo), "max": list(d.hi), "axis": d.axis}
                      for d in self.doors],
            "spawns": [list(s) for s in self.spawns],
            "boxes": len(self.static_boxes),
        }


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    return tuple(float(c) for c in colorsys.hsv_to_rgb(h % 1.0, s, v))


def _overlap(a_lo, a_hi, b_lo, b_hi, margin: float = 0.0) -> bool:
    return (a_lo[0] - margin < b_hi[0] and b_lo[0] - margin < a_hi[0]
            and a_lo[1] - margin < b_hi[1] and b_lo[1] - margin < a_hi[1])


def generate_level(seed: int) -> Level:
    """Build the level for `seed`; the same seed always gives the same level."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"scene seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    gw, gh = [(2, 2), (3, 2), (2, 3), (3, 3)][rng.integers(4)]
    slots = [(i, j) for j in range(gh) for i in range(gw)]
    if gw * gh == 9:  # drop a corner now and then for less regular plans (stays connected)
        for corner in [(0, 0), (2, 0), (0, 2), (2, 2)]:
            if rng.random() < 0.25 and len(slots) > 6:
                slots.remove(corner)
    rooms: list[Room] = []
    slot_room: dict[tuple[int, int], int] = {}
    base_hue = rng.random()
    for k, (i, j) in enumerate(slots):
        cx, cz = i * SLOT + rng.uniform(-0.4, 0.4), j * SLOT + rng.uniform(-0.4, 0.4)
        hx, hz = rng.uniform(2.0, 3.6), rng.uniform(2.0, 3.6)
        hue = base_hue + k / len(slots) + rng.uniform(-0.04, 0.04)
        light = _hsv(hue + 0.5 * rng.random(), rng.uniform(0.05, 0.3), 1.0)
        rooms.append(Room(k, (cx - hx, cz - hz), (cx + hx, cz + hz), float(rng.uniform(2.7, 3.3)),
                          light, f"room-{k}"))
        slot_room[(i, j)] = k
    edges = _connect(slots, rng)
    doors = [_corridor(rooms[slot_room[a]], rooms[slot_room[b]], rng) for a, b in edges]
    boxes: list[Box] = []
    styles = [_room_style(rng, base_hue + k / len(rooms)) for k in range(len(rooms))]
    for room, style in zip(rooms, styles):
        boxes += _room_shell(room, doors, style)
    for d in doors:
        boxes += _corridor_shell(d)
    spawns = []
    for room, style in zip(rooms, styles):
        furn, free_spot = furnish_room(room, doors, style, rng)
        boxes += furn
        spawns.append((free_spot[0], EYE_HEIGHT, free_spot[1]))
    return Level(int(seed), rooms, doors, boxes, spawns)


def _connect(slots, rng) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Random spanning tree over neighbouring slots, plus a few loops."""
    present = set(slots)
    nbrs = {s: [(s[0] + dx, s[1] + dz) for dx, dz in ((1, 0), (-1, 0), (0, 1), (0, -1))
                if (s[0] + dx, s[1] + dz) in present] for s in slots}
    start = slots[rng.integers(len(slots))]
    seen, stack, edges = {start}, [start], []
    while stack:
        cur = stack[-1]
        options = [n for n in nbrs[cur] if n not in seen]
        if not options:
            stack.pop()
            continue
        nxt = options[rng.integers(len(options))]
        edges.append((cur, nxt))
        seen.add(nxt)
        stack.append(nxt)
    tree = {frozenset(e) for e in edges}
    for s in slots:
        for n in nbrs[s]:
            e = frozenset((s, n))
            if s < n and e not in tree and rng.random() < 0.3:
                edges.append((s, n))
                tree.add(e)
    return edges


def _corridor(a: Room, b: Room, rng) -> Door:
    """Corridor between two rooms of neighbouring slots, inside the band both rooms span."""
    width = rng.uniform(1.2, 1.8)
    horizontal = abs(a.center[0] - b.center[0]) > abs(a.center[1] - b.center[1])
    ax, bx = (0, 1) if horizontal else (1, 0)  # ax: along the corridor, bx: across it
    if a.center[ax] > b.center[ax]:
        a, b = b, a
    lo_band = max(a.lo[bx], b.lo[bx]) + width / 2 + 0.3
    hi_band = min(a.hi[bx], b.hi[bx]) - width / 2 - 0.3
    c = rng.uniform(lo_band, hi_band) if hi_band > lo_band else 0.5 * (lo_band + hi_band)
    lo, hi = [0.0, 0.0], [0.0, 0.0]
    lo[ax], hi[ax] = a.hi[ax], b.lo[ax]
    lo[bx], hi[bx] = c - width / 2, c + width / 2
    return Door((a.index, b.index), tuple(lo), tuple(hi), "x" if horizontal else "z")


def _room_style(rng, hue: float) -> dict:
    wall = _hsv(hue, rng.uniform(0.15, 0.5), rng.uniform(0.55, 0.85))
    return {
        "wall": wall,
        "wall2": tuple(0.8 * c for c in wall),
        "wall_pat": (float(rng.choice([PAT_PLAIN, PAT_STRIPES, PAT_BRICK, PAT_TILES])), rng.uniform(2, 5), 0.0, 0.0),
        "floor": _hsv(hue + 0.5 + rng.uniform(-0.1, 0.1), rng.uniform(0.2, 0.6), rng.uniform(0.35, 0.6)),
        "floor2": _hsv(hue + rng.uniform(0.3, 0.7), rng.uniform(0.1, 0.4), rng.uniform(0.2, 0.45)),
        "floor_pat": (float(rng.choice([PAT_PLANKS, PAT_TILES, PAT_PLAIN])), rng.uniform(1.0, 2.5), 0.0, 0.0),
        "furn": _hsv(hue + rng.uniform(0.2, 0.8), rng.uniform(0.3, 0.8), rng.uniform(0.3, 0.8)),
    }


def _wall_side(room: Room, doors: list[Door], side: int, style: dict) -> list[Box]:
    """One wall (side 0:-x, 1:+x, 2:-z, 3:+z) split around its door openings, with lintels."""
    along = 1 if side < 2 else 0  # the wall runs along z for x-walls and along x for z-walls
    fixed = 0 if side < 2 else 1
    coord = room.lo[fixed] if side % 2 == 0 else room.hi[fixed]
    t0, t1 = (coord - WALL_T, coord) if side % 2 == 0 else (coord, coord + WALL_T)
    openings = []
    for d in doors:
        if room.index not in d.rooms:
            continue
        runs_across = (d.axis == "x") == (fixed == 0)
        touches = abs(d.lo[fixed] - coord) < 1e-6 or abs(d.hi[fixed] - coord) < 1e-6
        if runs_across and touches:
            openings.append((d.lo[along], d.hi[along]))
    openings.sort()
    start, end = room.lo[along] - WALL_T, room.hi[along] + WALL_T
    pieces, cur = [], start
    for o0, o1 in openings:
        pieces.append((cur, o0, 0.0, room.height))
        pieces.append((o0, o1, DOOR_H, room.height))  # lintel above the opening
        cur = o1
    pieces.append((cur, end, 0.0, room.height))
    out = []
    for p0, p1, y0, y1 in pieces:
        if p1 - p0 < 1e-6:
            continue
        lo, hi = [0.0, y0, 0.0], [0.0, y1, 0.0]
        lo[0 if fixed == 0 else 2], hi[0 if fixed == 0 else 2] = t0, t1
        lo[2 if fixed == 0 else 0], hi[2 if fixed == 0 else 0] = p0, p1
        out.append(Box(tuple(lo), tuple(hi), WALL, style["wall"], style["wall2"], style["wall_pat"],
                       room.index, solid=y0 == 0.0))
    return out


def _room_shell(room: Room, doors: list[Door], style: dict) -> list[Box]:
    (x0, z0), (x1, z1) = room.lo, room.hi
    out = [
        Box((x0, -0.1, z0), (x1, 0.0, z1), FLOOR, style["floor"], style["floor2"], style["floor_pat"],
            room.index, solid=False),
        Box((x0 - WALL_T, room.height, z0 - WALL_T), (x1 + WALL_T, room.height + 0.1, z1 + WALL_T),
            CEILING, (0.92, 0.92, 0.9), (0.8, 0.8, 0.78), (float(PAT_TILES), 1.5, 0.0, 0.0),
            room.index, solid=False),
    ]
    for side in range(4):
        out += _wall_side(room, doors, side, style)
    return out


def _corridor_shell(d: Door) -> list[Box]:
    """Floor, ceiling and side walls of a corridor. Its walls and ceiling start where the rooms'
    walls end (WALL_T into the corridor at each end): were they to reach into a room wall, their
    faces would lie in the same planes as that wall's inner face and the door jamb's, and the
    depth test would draw the two boxes' colours in alternating dashes there (z-fighting)."""
    (x0, z0), (x1, z1) = d.lo, d.hi
    wall, wall2, pat = (0.75, 0.74, 0.7), (0.6, 0.6, 0.57), (float(PAT_STRIPES), 3.0, 0.0, 0.0)
    along = 0 if d.axis == "x" else 1               # the corridor runs along x or along z
    lo_in, hi_in = [x0, z0], [x1, z1]
    lo_in[along] += WALL_T
    hi_in[along] -= WALL_T
    (ix0, iz0), (ix1, iz1) = lo_in, hi_in
    out = [
        Box((x0, -0.1, z0), (x1, 0.0, z1), FLOOR, (0.45, 0.42, 0.4), (0.3, 0.3, 0.3),
            (float(PAT_TILES), 2.0, 0.0, 0.0), -1, solid=False),
        Box((ix0, DOOR_H, iz0), (ix1, DOOR_H + 0.1, iz1), CEILING, (0.9, 0.9, 0.88), (0.8, 0.8, 0.8),
            (float(PAT_PLAIN), 1.0, 0.0, 0.0), -1, solid=False),
    ]
    if d.axis == "x":
        out.append(Box((ix0, 0.0, z0 - WALL_T), (ix1, DOOR_H, z0), WALL, wall, wall2, pat, -1))
        out.append(Box((ix0, 0.0, z1), (ix1, DOOR_H, z1 + WALL_T), WALL, wall, wall2, pat, -1))
    else:
        out.append(Box((x0 - WALL_T, 0.0, iz0), (x0, DOOR_H, iz1), WALL, wall, wall2, pat, -1))
        out.append(Box((x1, 0.0, iz0), (x1 + WALL_T, DOOR_H, iz1), WALL, wall, wall2, pat, -1))
    return out
