"""CollisionMap on real levels: exact clearance, walls that stop and slide, free paths."""
from __future__ import annotations

import math

import numpy as np
import pytest

from engine.world.collision import MAX_SUBSTEP, CollisionMap, collision_map_for_seed
from engine.world.geometry import BODY_RADIUS, FURNITURE
from engine.world.levels import generate_level

SEEDS = [7, 1_000_123, 31]


def in_free(level, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Independent of CollisionMap: on the walkable floor and not strictly inside a solid footprint."""
    x, z = np.asarray(x, float)[..., None], np.asarray(z, float)[..., None]
    w = np.array([(lo[0], lo[1], hi[0], hi[1]) for lo, hi in level.walkable_rects()])
    s = np.array([(b.lo[0], b.lo[2], b.hi[0], b.hi[2]) for b in level.static_boxes if b.solid])
    walk = ((w[:, 0] <= x) & (x <= w[:, 2]) & (w[:, 1] <= z) & (z <= w[:, 3])).any(-1)
    solid = ((s[:, 0] < x) & (x < s[:, 2]) & (s[:, 1] < z) & (z < s[:, 3])).any(-1)
    return walk & ~solid


def disk_free(level, x: float, z: float, r: float, n: int = 720, rim_only: bool = False) -> bool:
    """The disk of radius r at (x, z) is free: its rim and a few inner rings all are.

    Obstacles are far thicker than a ring gap, so rings stand in for the whole disk.
    """
    a = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    rings = np.array([r] if rim_only else [r, 0.75 * r, 0.5 * r, 0.25 * r, 0.0])[:, None]
    return bool(in_free(level, x + rings * np.cos(a), z + rings * np.sin(a)).all())


@pytest.fixture(scope="module", params=SEEDS)
def cmap(request) -> CollisionMap:
    return collision_map_for_seed(request.param)


def test_clearance_is_exact_distance(cmap: CollisionMap) -> None:
    rng = np.random.default_rng(0)
    (x0, z0), (x1, z1) = cmap.walk[:, :2].min(0), cmap.walk[:, 2:].max(0)
    xs, zs = rng.uniform(x0, x1, 300), rng.uniform(z0, z1, 300)
    clear = cmap.clearance(xs, zs)
    assert clear.shape == xs.shape and isinstance(cmap.clearance(float(xs[0]), float(zs[0])), float)
    free = in_free(cmap.level, xs, zs)
    assert (clear[~free] <= 0).all() and (clear[free] >= 0).all()
    checked = 0
    for x, z, c in zip(xs[free], zs[free], clear[free]):
        if c < 0.01:
            continue
        assert disk_free(cmap.level, x, z, c - 1e-6), f"disk of the reported clearance {c} at ({x}, {z}) is not free"
        assert not disk_free(cmap.level, x, z, c + 0.02, n=2000, rim_only=True), \
            f"clearance {c} at ({x}, {z}) is too small"
        checked += 1
    assert checked > 40


def test_raster_matches_exact_geometry(cmap: CollisionMap) -> None:
    """The planner's margin relies on the raster overestimating by at most raster_error."""
    rng = np.random.default_rng(1)
    h, w = cmap.raster.shape
    i, j = rng.integers(h, size=5000), rng.integers(w, size=5000)
    x, z = cmap.origin[0] + (j + 0.5) * cmap.cell, cmap.origin[1] + (i + 0.5) * cmap.cell
    exact, grid = cmap.clearance(x, z), cmap.raster[i, j]
    free = grid > 0  # a cell counts by its centre
    assert (exact[free] >= 0).all() and (exact[~free] <= 0).all()
    assert (grid[free] >= exact[free] - 1e-9).all()
    assert (grid[free] <= exact[free] + cmap.raster_error + 1e-9).all()


@pytest.mark.parametrize("direction", [(1, 0), (0, -1), (0.6, -0.8)])
def test_walking_into_a_wall_stops_at_the_radius(cmap: CollisionMap, direction) -> None:
    level = cmap.level
    for x, y, z in level.spawns:
        pos, track = (x, y, z), []
        for _ in range(150):  # 15 m: beyond any room, so it ends pressed against something
            new = cmap.move(pos, (0.1 * direction[0], 0.1 * direction[1]))
            assert math.dist(new, pos) <= 0.1 + 1e-9
            pos = new
            track.append(pos)
        track = np.array(track)
        assert (cmap.clearance(track[:, 0], track[:, 2]) >= BODY_RADIUS).all()
        assert all(disk_free(level, u, v, BODY_RADIUS - 1e-9, n=360) for u, _, v in track[::5])
        assert pos[1] == y
        assert cmap.clearance(pos[0], pos[2]) < BODY_RADIUS + 2e-3, "stopped short of the obstacle"


def test_one_huge_move_cannot_tunnel(cmap: CollisionMap) -> None:
    for x, y, z in cmap.level.spawns:
        for dx, dz in ((25.0, 0.0), (-25.0, 0.0), (0.0, 25.0), (0.0, -25.0)):
            pos = cmap.move((x, y, z), (dx, dz))
            # an axis move stays on its line, so tunnelling would leave a blocked segment behind
            assert (pos[0] == x) if dx == 0 else (pos[2] == z)
            assert cmap.line_free((x, z), (pos[0], pos[2]))
            assert cmap.clearance(pos[0], pos[2]) < BODY_RADIUS + 2e-3


def _wall_lane(cmap: CollisionMap):
    """A spot touching a room's -x wall with 0.6 m of free lane along +z."""
    for room in cmap.level.rooms:
        x = room.lo[0] + BODY_RADIUS + 1e-4
        for z in np.arange(room.lo[1] + 0.3, room.hi[1] - 0.9, 0.05):
            if cmap.line_free((x, z), (x, z + 0.6)) and cmap.line_free((x + 0.3, z), (x + 0.3, z + 0.6)):
                return room, x, float(z)
    pytest.skip("no clear lane along a wall in this level")


def test_sliding_along_a_wall(cmap: CollisionMap) -> None:
    room, x, z = _wall_lane(cmap)
    pos = cmap.move((x, 1.6, z), (-0.2, 0.1))  # mostly into the wall, a little along it
    assert pos[0] >= room.lo[0] + BODY_RADIUS
    assert pos[2] == pytest.approx(z + 0.1, abs=1e-9), "the along-wall part of the move was lost"
    # From a little off the wall, a diagonal move ends touching it, having slid the rest.
    pos = cmap.move((x + 0.03, 1.6, z), (-0.1, 0.1))
    assert pos[0] == pytest.approx(room.lo[0] + BODY_RADIUS, abs=2e-3)
    assert pos[2] == pytest.approx(z + 0.1, abs=1e-9)


def test_move_takes_small_substeps_and_free_moves_are_exact(cmap: CollisionMap) -> None:
    x, y, z = cmap.level.spawns[0]
    assert MAX_SUBSTEP <= 0.05
    assert cmap.move((x, y, z), (0.0, 0.0)) == (x, y, z)
    pos = cmap.move((x, y, z), (0.03, -0.04))  # the spawn keeps 0.8 m free around it
    assert pos == pytest.approx((x + 0.03, y, z - 0.04), abs=1e-12)


def test_a_body_stuck_in_furniture_can_back_out(cmap: CollisionMap) -> None:
    level = cmap.level
    standing = [b for b in level.static_boxes if b.solid and b.material == FURNITURE
                and all(cmap.clearance(x, z) == 0.0 for x, z in ((b.lo[0], b.lo[2]), (b.hi[0], b.hi[2])))
                and all(in_free(level, np.array([x]), np.array([z]))[0]
                        for x, z in ((b.lo[0] - 0.1, b.lo[2] - 0.1), (b.hi[0] + 0.1, b.hi[2] + 0.1)))]
    if not standing:
        pytest.skip("no free-standing furniture in this level")
    box = standing[0]
    cx, cz = 0.5 * (box.lo[0] + box.hi[0]), 0.5 * (box.lo[2] + box.hi[2])
    assert cmap.clearance(cx, cz) < 0
    step = (0.05, 0.0) if box.hi[0] - box.lo[0] <= box.hi[2] - box.lo[2] else (0.0, 0.05)
    pos = (cx, 1.6, cz)
    for _ in range(40):
        pos = cmap.move(pos, step)
    assert cmap.clearance(pos[0], pos[2]) > 0, "still stuck inside the furniture"


def test_clearance_inside_is_minus_the_depth(cmap: CollisionMap) -> None:
    room = cmap.level.rooms[0]
    zs = np.linspace(room.lo[1] + 0.5, room.hi[1] - 0.5, 50)
    outside = cmap.clearance(np.full_like(zs, room.lo[0] - 0.1), zs)
    assert (outside < 0).all() and np.isclose(outside, -0.1).mean() > 0.5  # corridors aside
    box = max((b for b in cmap.level.static_boxes if b.solid and b.material == FURNITURE),
              key=lambda b: min(b.hi[0] - b.lo[0], b.hi[2] - b.lo[2]))
    cx, cz = 0.5 * (box.lo[0] + box.hi[0]), 0.5 * (box.lo[2] + box.hi[2])
    half = 0.5 * min(box.hi[0] - box.lo[0], box.hi[2] - box.lo[2])
    assert cmap.clearance(cx, cz) == pytest.approx(-half)


def test_line_free(cmap: CollisionMap) -> None:
    room = cmap.level.rooms[0]
    x, _, z = cmap.level.spawns[0]
    assert cmap.line_free((x, z), (x + 0.3, z))
    assert not cmap.line_free((x, z), (room.lo[0] - 2.0, z))          # through the wall
    assert not cmap.line_free((x, z), (room.lo[0] + 0.1, z))          # ends closer than the radius
    assert cmap.line_free((x, z), (x, z)) == cmap.is_free(x, z)


def test_shortest_path_between_rooms_is_free(cmap: CollisionMap) -> None:
    level, rng = cmap.level, np.random.default_rng(3)
    for d in level.doors[:4]:
        a = cmap.random_free_point(rng, room=d.rooms[0])
        b = cmap.random_free_point(rng, room=d.rooms[1])
        path = cmap.shortest_path(a, b)
        assert path[0] == a and path[-1] == b
        for p, q in zip(path, path[1:]):
            assert cmap.line_free(p, q)
            n = max(2, int(math.dist(p, q) / 0.02))
            t = np.linspace(0.0, 1.0, n)[:, None]
            pts = np.array(p) + t * (np.array(q) - np.array(p))
            assert (cmap.clearance(pts[:, 0], pts[:, 1]) >= BODY_RADIUS).all()
            assert all(disk_free(level, u, v, BODY_RADIUS - 1e-9, n=180) for u, v in pts[::5])


def test_shortest_path_names_the_bad_point(cmap: CollisionMap) -> None:
    x, _, z = cmap.level.spawns[0]
    wall = (cmap.level.rooms[0].lo[0] - 0.1, z)
    with pytest.raises(ValueError, match=rf"\({wall[0]:.3f}, {wall[1]:.3f}\)"):
        cmap.shortest_path((x, z), wall)
    with pytest.raises(ValueError, match="not free"):
        cmap.shortest_path(wall, (x, z))


def test_random_free_point(cmap: CollisionMap) -> None:
    rng = np.random.default_rng(5)
    for room in cmap.level.rooms:
        for _ in range(5):
            x, z = cmap.random_free_point(rng, room=room.index)
            assert cmap.level.room_at(x, z) == room.index
            assert cmap.is_free(x, z) and cmap.clearance(x, z) > BODY_RADIUS
    again = cmap.random_free_point(np.random.default_rng(5), room=0)
    assert again == cmap.random_free_point(np.random.default_rng(5), room=0)


def test_radius_and_time_arguments() -> None:
    level = generate_level(7)
    normal, thin = CollisionMap(level), CollisionMap(level, radius=0.1, t=3.0)
    rng = np.random.default_rng(2)
    xs, zs = rng.uniform(-5, 25, 20000), rng.uniform(-5, 25, 20000)
    near = np.flatnonzero((normal.clearance(xs, zs) > 0.12) & (normal.clearance(xs, zs) < 0.2))
    x, z = xs[near[0]], zs[near[0]]
    assert thin.is_free(x, z) and not normal.is_free(x, z)
    assert normal.is_free(x, z, radius=0.1) and not thin.is_free(x, z, radius=0.25)
