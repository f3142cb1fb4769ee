"""Scene layout (engine/world/layout.py): the level's geometry from a pose, without appearance,
and the level itself without the coplanar faces that drew dashed seams beside doorways."""
from __future__ import annotations

import numpy as np
import pytest

from engine.camera import Pose
from engine.world.geometry import LANDMARK, WALL, Box, Room
from engine.world.layout import (
    CEILING_C,
    CLASSES,
    FLOOR_C,
    NONE,
    PICTURE_C,
    WALL_C,
    LayoutRenderer,
    build_layout_mesh,
)
from engine.world.levels import Level, generate_level


def _overlap_volume(a: Box, b: Box) -> float:
    d = [min(a.hi[i], b.hi[i]) - max(a.lo[i], b.lo[i]) for i in range(3)]
    return float(np.prod(d)) if min(d) > 1e-9 else 0.0


@pytest.mark.parametrize("seed", [7, 1_000_000, 1_000_001, 123_456])
def test_corridor_boxes_never_overlap_room_boxes(seed):
    """Overlapping boxes of different colours share face planes, which the depth test draws as
    dashed seams (z-fighting): corridor walls and ceilings must stop where room walls begin."""
    level = generate_level(seed)
    boxes = level.boxes_at(0.0)
    corridor = [b for b in boxes if b.room < 0]
    rooms = [b for b in boxes if b.room >= 0]
    assert corridor and rooms
    for c in corridor:
        for r in rooms:
            assert _overlap_volume(c, r) == 0.0, (c, r)


def test_layout_depth_is_the_renderers_and_classes_are_geometry(egl):
    from engine.trajectory import make_trajectory
    from engine.world.renderer import Renderer

    level = generate_level(1_000_000)
    traj = make_trajectory(level, "explore", frames=40, resolution=(64, 64))
    poses = traj.frames[::3]
    renderer, layout = Renderer(level, 64, 64, 70.0), LayoutRenderer(level, 64, 64, 70.0)
    # Batched, with both GL contexts alive in this thread (each makes itself current).
    rgb, depth = renderer.render(poses)
    lay = layout.layout(poses)
    again, _ = renderer.render(poses)
    assert np.array_equal(rgb, again)
    np.testing.assert_allclose(lay.depth, depth, rtol=1e-5, atol=1e-5)
    assert set(np.unique(lay.material)) <= set(range(len(CLASSES)))    # a closed level: every pixel is a surface
    np.testing.assert_allclose(np.linalg.norm(lay.normal, axis=-1), 1.0, atol=1e-3)
    # Seen from a level camera, floors face up, ceilings down, and walls sideways or, under a door's
    # lintel, down: never up (their tops are hidden under the ceiling).
    level_views = [i for i, p in enumerate(poses) if abs(p.pitch) < 3]
    assert level_views
    ny = lay.normal[level_views][..., 1]
    mat = lay.material[level_views]
    assert (mat == FLOOR_C).any() and (mat == CEILING_C).any() and (mat == WALL_C).any()
    assert ny[mat == FLOOR_C].min() > 0.99 and ny[mat == CEILING_C].max() < -0.99
    assert ny[mat == WALL_C].max() < 0.06 and (np.abs(ny[mat == WALL_C]) < 0.06).mean() > 0.9
    # Nothing of the renderer's appearance: the layout of two levels with the same boxes but other
    # colours is identical.
    recoloured = Level(level.seed, level.rooms, level.doors,
                       [Box(b.lo, b.hi, b.material, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), b.pattern, b.room, b.solid,
                            b.poster_face) for b in level.static_boxes], level.spawns)
    assert np.array_equal(build_layout_mesh(recoloured), build_layout_mesh(level))


def test_a_wall_and_a_picture_at_known_distance(egl):
    room = Room(0, (-10.0, -10.0), (10.0, 10.0), 3.0, (1.0, 1.0, 1.0), "test")
    wall = Box((-5.0, 0.0, -3.2), (5.0, 3.0, -3.0), WALL, (0.9, 0.1, 0.1))
    poster = Box((-0.5, 1.2, -3.0), (0.5, 2.0, -2.95), LANDMARK, (0.1, 0.1, 0.9), poster_face=5)
    level = Level(0, [room], [], [wall, poster], [(0.0, 1.6, 0.0)])
    lay = LayoutRenderer(level, 64, 64, 70.0).layout_one(Pose((0.0, 1.6, 0.0)))
    assert lay.material[32, 32] == PICTURE_C and abs(lay.depth[32, 32] - 2.95) < 1e-3
    assert lay.material[32, 2] == WALL_C and abs(lay.depth[32, 2] - 3.0) < 1e-3
    np.testing.assert_allclose(lay.normal[32, 2], [0, 0, 1], atol=1e-2)    # facing the camera
    assert lay.material[2, 32] == NONE and lay.depth[2, 32] == pytest.approx(100.0)   # open sky above the wall
