"""Latent spatial memory and the projection it is built on: real geometry, real rendered depth."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine import projection
from engine.camera import Pose
from engine.memory import LatentMemory


def _c2w(pose: Pose) -> torch.Tensor:
    return torch.as_tensor(pose.c2w(), dtype=torch.float32)


def test_lift_then_project_lands_in_the_same_cells():
    pose = Pose((1.0, 1.6, -2.0), yaw=37.0, pitch=-8.0)
    depth = torch.rand(1, 16, 16) * 5 + 0.5
    pts = projection.lift(depth, _c2w(pose)[None], 70.0)
    idx, z, ok = projection.project(pts, _c2w(pose)[None], 16, 70.0)
    assert ok.all()
    assert torch.equal(idx[0], torch.arange(256))
    assert torch.allclose(z[0], depth.reshape(-1), atol=1e-4)


def test_splat_nearest_point_wins():
    pose = Pose((0.0, 0.0, 0.0))
    # Two points on the optical axis: the nearer one must win the centre cell.
    pts = torch.tensor([[[0.01, 0.01, -5.0], [0.01, 0.01, -2.0]]])
    feats = torch.tensor([[[1.0], [2.0]]])
    canvas, mask, depth = projection.splat(pts, feats, torch.ones(1, 2, dtype=torch.bool), _c2w(pose)[None], 16, 70.0)
    assert mask.sum() == 1
    assert canvas.max() == 2.0
    assert depth.max() == pytest.approx(2.0, abs=1e-5)


def test_yaw_convention_in_projection():
    # yaw 90 looks along -x: a point at -x is in front (centre cell), a point at +x is behind.
    pose = Pose((0.0, 0.0, 0.0), yaw=90.0)
    idx, z, ok = projection.project(torch.tensor([[[-3.0, 0.0, 0.0], [3.0, 0.0, 0.0]]]), _c2w(pose)[None], 16, 70.0)
    assert ok[0, 0] and not ok[0, 1]
    assert z[0, 0] == pytest.approx(3.0)


def _frame(seed: int, c: int = 8, s: int = 16):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(c, s, s, generator=g), torch.rand(s, s, generator=g) * 3 + 1


def test_read_at_written_pose_reproduces_the_latent():
    mem = LatentMemory(8, capacity=4096, voxel_size=0.01, feat_dtype=torch.float32)
    z, d = _frame(0)
    pose = Pose((0.5, 1.6, 0.5), yaw=20.0)
    mem.write(z, d, _c2w(pose), 0, 0.0, observed=True)
    canvas, mask, depth = mem.read(_c2w(pose))
    covered = mask[0] > 0
    assert covered.float().mean() > 0.9
    assert torch.allclose(canvas[:, covered], z[:, covered], atol=1e-5)


@pytest.mark.parametrize("use_kernel", [True, False], ids=["numba", "torch"])
def test_read_skips_recent_generated_points_but_never_observed_ones(use_kernel):
    """skip_recent_generated=N: a read for frame f leaves out generated points written after f - N
    (the context already holds those frames); observed points are always read, and older generated
    ones come back once they are N frames old. The numba read filters inside its depth test, the
    torch read before it: both must show the same."""
    mem = LatentMemory(8, capacity=4096, voxel_size=0.01, feat_dtype=torch.float32, skip_recent_generated=5,
                       use_kernel=use_kernel)
    z_obs, d_obs = _frame(0)
    z_gen, d_gen = _frame(1)
    left, right = Pose((0.5, 1.6, 0.5), yaw=60.0), Pose((0.5, 1.6, 0.5), yaw=-60.0)
    mem.write(z_obs, d_obs, _c2w(left), 0, 0.0, observed=True)
    mem.write(z_gen, d_gen, _c2w(right), 10, 10.0, observed=False)
    for frame, sees_generated in ((11, False), (15, True), (None, True)):
        _, mask, _ = mem.read(_c2w(right), frame)
        assert (mask.mean() > 0.9) == sees_generated, frame
        _, mask, _ = mem.read(_c2w(left), frame)
        assert mask.mean() > 0.9, frame       # the observed frame, at any age
    canvas, mask, _ = mem.read(_c2w(right), 15)
    covered = mask[0] > 0
    assert torch.allclose(canvas[:, covered], z_gen[:, covered], atol=1e-5)


@pytest.mark.parametrize("use_kernel", [True, False], ids=["numba", "torch"])
def test_observed_cells_say_which_cells_a_read_shows_from_an_observation(use_kernel):
    """observed_cells: 1 where the read shows an observed point, 0 where it shows a generated one or
    nothing; the decoder draws the two kinds of latent with different fields."""
    mem = LatentMemory(8, capacity=4096, voxel_size=0.01, feat_dtype=torch.float32, use_kernel=use_kernel)
    pose = Pose((0.5, 1.6, 0.5), yaw=60.0)
    assert mem.observed_cells(_c2w(pose), 0).sum() == 0            # an empty memory shows nothing
    z_obs, d_obs = _frame(0)
    z_gen, d_gen = _frame(1)
    left, right = Pose((0.5, 1.6, 0.5), yaw=60.0), Pose((0.5, 1.6, 0.5), yaw=-60.0)
    mem.write(z_obs, d_obs, _c2w(left), 0, 0.0, observed=True)
    mem.write(z_gen, d_gen, _c2w(right), 1, 1.0, observed=False)
    _, mask, _ = mem.read(_c2w(left), 40)
    seen = mem.observed_cells(_c2w(left), 40)
    assert seen.shape == (1, 16, 16) and torch.equal(seen, mask)    # the observed view: seen wherever read
    _, mask, _ = mem.read(_c2w(right), 40)
    assert mask.mean() > 0.9 and mem.observed_cells(_c2w(right), 40).sum() == 0   # generated: read, not seen
    between = Pose((0.5, 1.6, 0.5), yaw=0.0)        # the observation at its left edge, the drawing at its right
    _, mask, _ = mem.read(_c2w(between), 40)
    seen = mem.observed_cells(_c2w(between), 40)[0]
    assert mask[0, :, :3].mean() > 0.9 and mask[0, :, -3:].mean() > 0.9
    assert torch.equal(seen[:, :8], mask[0, :, :8]) and seen[:, 8:].sum() == 0


def test_capacity_is_a_hard_bound_and_oldest_go_first():
    mem = LatentMemory(8, capacity=600, voxel_size=0.05)
    for i in range(5):  # five frames far apart: 5 x 256 distinct voxels > capacity
        z, d = _frame(i)
        mem.write(z, d, _c2w(Pose((10.0 * i, 1.6, 0.0))), i, float(i), observed=True)
        assert len(mem) <= 600
    assert len(mem) == 600
    pts, times, _ = mem.points()
    assert times.min() >= 2.0  # frames 0 and 1 were evicted first
    assert mem.stats().evicted_total == 5 * 256 - 600


def test_revisiting_merges_instead_of_growing():
    mem = LatentMemory(8, capacity=10_000, voxel_size=0.1)
    z, d = _frame(3)
    pose = Pose((0.0, 1.6, 0.0), yaw=-30.0)
    mem.write(z, d, _c2w(pose), 0, 0.0, observed=True)
    n = len(mem)
    for t in range(1, 20):  # the same place seen again and again: memory does not grow with time
        mem.write(z + 0.01 * t, d, _c2w(pose), t, float(t), observed=True)
    assert len(mem) == n
    assert mem.stats().merged_last == n
    canvas, mask, _ = mem.read(_c2w(pose))
    covered = mask[0] > 0
    # newest wins: the canvas holds the last write, not the first
    assert torch.allclose(canvas[:, covered], (z + 0.19)[:, covered], atol=1e-2)


def test_generated_points_never_overwrite_observed_ones():
    mem = LatentMemory(8, capacity=10_000, voxel_size=0.1, feat_dtype=torch.float32)
    z, d = _frame(4)
    pose = Pose((0.0, 1.6, 0.0))
    mem.write(z, d, _c2w(pose), 0, 0.0, observed=True)
    mem.write(z + 5.0, d, _c2w(pose), 1, 1.0, observed=False)
    canvas, mask, _ = mem.read(_c2w(pose))
    covered = mask[0] > 0
    assert torch.allclose(canvas[:, covered], z[:, covered], atol=1e-5)


def test_memory_from_rendered_depth_is_consistent_across_views(egl, level):
    """Points lifted from one rendered view land where a second view of the same place sees them."""
    from engine.model.autoencoder import cell_depth
    from engine.world.renderer import Renderer

    r = Renderer(level, 128, 128, 70.0)
    spawn = level.spawns[0]
    a, b = Pose(spawn, yaw=10.0), Pose(spawn, yaw=25.0)
    _, depth = r.render([a, b])
    cells = cell_depth(torch.from_numpy(depth)[:, None], 16)[:, 0]
    mem = LatentMemory(1, capacity=4096, voxel_size=0.02, feat_dtype=torch.float32)
    mem.write(cells[0][None], cells[0], _c2w(a), 0, 0.0, observed=True)
    _, mask, mdepth = mem.read(_c2w(b))
    covered = mask[0] > 0
    assert covered.float().mean() > 0.6  # a 15 degree turn keeps most of a 70 degree view
    rel = (mdepth[0][covered] - cells[1][covered]).abs() / cells[1][covered]
    assert float(rel.median()) < 0.05
    r.close()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="capacity"):
        LatentMemory(8, capacity=0)
    with pytest.raises(ValueError, match="voxel_size"):
        LatentMemory(8, voxel_size=0.0)
    assert np.isfinite(LatentMemory(8).stats().fill)


@pytest.mark.parametrize("use_kernel", [True, False], ids=["numba", "torch"])
def test_chunk_culling_reads_exactly_what_projecting_every_point_reads(use_kernel):
    # Frames written from many positions and headings around a 12 m square; reading from
    # cameras looking every way must give the same canvas as splatting every stored point,
    # with the fused CPU kernel and with the torch path that CUDA memories use.
    mem = LatentMemory(8, capacity=20_000, voxel_size=0.05, feat_dtype=torch.float32, use_kernel=use_kernel)
    assert mem._kernel == use_kernel
    g = np.random.default_rng(3)
    for i in range(40):
        z, d = _frame(100 + i)
        pose = Pose((g.uniform(-6, 6), 1.5, g.uniform(-6, 6)), yaw=g.uniform(0, 360), pitch=g.uniform(-20, 20))
        mem.write(z, d, _c2w(pose), i, float(i), observed=True)
    v = mem.valid
    # The kernel projects in float64 (rounding cannot move a point across a cell border), so
    # its reference does too; the torch path runs in float32 like its reference.
    dt = torch.float64 if use_kernel else torch.float32
    for j in range(24):
        pose = Pose((g.uniform(-6, 6), 1.5, g.uniform(-6, 6)), yaw=15.0 * j, pitch=g.uniform(-30, 30))
        canvas, mask, depth = mem.read(_c2w(pose))
        ref = projection.splat(mem.positions()[v][None].to(dt), mem.feat[v][None], torch.ones(1, int(v.sum()), dtype=torch.bool),
                               _c2w(pose)[None].to(dt), 16, 70.0)
        assert mask.sum() > 0
        assert torch.equal(mask, ref[1][0]) and torch.equal(canvas, ref[0][0])
        assert torch.allclose(depth, ref[2][0].float(), atol=1e-5)   # the same points; rounding may differ
    assert len(mem.chunks) > 20      # the points really were spread over many chunks


def _wall(depth: float, c: int = 8, s: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.full((c, s, s), depth), torch.full((s, s), depth)


def test_a_frame_frees_the_points_it_sees_through():
    # Something stood 2 m in front of the camera; a later real view sees the wall 4 m away
    # through the same cells, so the stale points must go rather than hide the wall.
    mem = LatentMemory(8, capacity=10_000, voxel_size=0.05, feat_dtype=torch.float32)
    pose = Pose((0.0, 1.6, 0.0))
    mem.write(*_wall(2.0), _c2w(pose), 0, 0.0, observed=True)
    n_near = len(mem)
    mem.write(*_wall(4.0), _c2w(pose), 1, 1.0, observed=True)
    assert mem.carved_last == n_near
    canvas, mask, depth = mem.read(_c2w(pose))
    covered = mask[0] > 0
    assert covered.float().mean() > 0.9
    assert torch.allclose(depth[0][covered], torch.tensor(4.0), rtol=0.02)
    assert torch.allclose(canvas[:, covered], torch.tensor(4.0))
    # The other way round nothing is seen through: the far points stay, hidden behind the near ones.
    mem.reset()
    mem.write(*_wall(4.0), _c2w(pose), 0, 0.0, observed=True)
    n_far = len(mem)
    mem.write(*_wall(2.0), _c2w(pose), 1, 1.0, observed=True)
    assert mem.carved_last == 0 and len(mem) > n_far
    _, mask, depth = mem.read(_c2w(pose))
    assert float(depth[0][mask[0] > 0].max()) < 2.1


def test_generated_frames_do_not_carve_observations_and_carving_can_be_off():
    pose = Pose((0.0, 1.6, 0.0))
    # keep_observed_view off: the generated walls behind the observed one must be stored to be carved
    mem = LatentMemory(8, capacity=10_000, voxel_size=0.05, keep_observed_view=False, keep_drawn_view=False)
    mem.write(*_wall(2.0), _c2w(pose), 0, 0.0, observed=True)
    mem.write(*_wall(4.0), _c2w(pose), 1, 1.0, observed=False)
    assert mem.carved_last == 0
    mem.write(*_wall(6.0), _c2w(pose), 2, 2.0, observed=False)
    assert mem.carved_last > 0            # the generated wall at 4 m is seen through: it goes
    _, _, depth = mem.read(_c2w(pose))
    assert float(depth.max()) < 2.1       # the observed wall at 2 m is still what the view shows
    off = LatentMemory(8, capacity=10_000, voxel_size=0.05, carve_tol=None)
    off.write(*_wall(2.0), _c2w(pose), 0, 0.0, observed=True)
    off.write(*_wall(4.0), _c2w(pose), 1, 1.0, observed=True)
    assert off.carved_last == 0 and len(off) == 2 * 256


def test_generated_frames_leave_the_cells_observations_show():
    # An observed wall fills the left half of the view at 3 m. A generated frame from the same
    # pose puts its (noisy) surface at 2 m everywhere: where the observation is shown it must
    # not be stored (it would stand in front of the observed wall and win its cells on a
    # revisit), where nothing observed is shown it fills the gap.
    pose = Pose((0.0, 1.6, 0.0))
    z_obs, d_obs = _wall(3.0)
    d_obs[:, 8:] = float("nan")                      # right half: no observation
    z_gen, d_gen = _wall(2.0)
    for read_first in (True, False):                 # the step's read is reused, or recomputed
        mem = LatentMemory(8, capacity=10_000, voxel_size=0.02, feat_dtype=torch.float32)
        mem.write(z_obs, d_obs, _c2w(pose), 0, 0.0, observed=True)
        assert len(mem) == 128
        if read_first:
            mem.read(_c2w(pose))
        mem.write(z_gen, d_gen, _c2w(pose), 1, 1.0, observed=False)
        assert len(mem) == 256                       # only the uncovered half was added
        canvas, mask, depth = mem.read(_c2w(pose))
        assert bool((mask[0] > 0).all())
        assert torch.allclose(depth[0, :, :8], torch.tensor(3.0), atol=1e-3)
        assert torch.allclose(canvas[:, :, :8], torch.tensor(3.0)) and torch.allclose(canvas[:, :, 8:], torch.tensor(2.0))
    # The rule off: the generated surface covers the whole view, in front of the observation.
    mem = LatentMemory(8, capacity=10_000, voxel_size=0.02, feat_dtype=torch.float32, keep_observed_view=False,
                       keep_drawn_view=False)
    mem.write(z_obs, d_obs, _c2w(pose), 0, 0.0, observed=True)
    mem.write(z_gen, d_gen, _c2w(pose), 1, 1.0, observed=False)
    assert torch.allclose(mem.read(_c2w(pose))[2], torch.tensor(2.0), atol=1e-3)


def test_keep_drawn_view_keeps_the_first_drawing_of_a_place():
    # A generated frame drew the left half of the view at 3 m. A later generated frame from the
    # same pose puts its surface at 2 m everywhere: with keep_drawn_view it adds only the half
    # the read showed nothing in, so a revisit reads the first drawing, not a copy of it; points
    # the read may not show yet (generated within skip_recent_generated frames) do not hold it back.
    pose = Pose((0.0, 1.6, 0.0))
    z_a, d_a = _wall(3.0)
    d_a[:, 8:] = float("nan")
    z_b, d_b = _wall(2.0)
    for frame_b, added in ((30, 128), (24, 256)):
        mem = LatentMemory(8, capacity=10_000, voxel_size=0.02, feat_dtype=torch.float32,
                           skip_recent_generated=20, keep_drawn_view=True)
        mem.write(z_a, d_a, _c2w(pose), 5, 5.0, observed=False)
        mem.read(_c2w(pose), frame_b)                 # the step's read at frame_b
        mem.write(z_b, d_b, _c2w(pose), frame_b, float(frame_b), observed=False)
        assert len(mem) == 128 + added, frame_b
    canvas, mask, depth = mem.read(_c2w(pose))        # frame 24: B was free to cover A
    assert torch.allclose(depth[0], torch.tensor(2.0), atol=1e-3)
    mem = LatentMemory(8, capacity=10_000, voxel_size=0.02, feat_dtype=torch.float32,
                       skip_recent_generated=20, keep_drawn_view=True)
    mem.write(z_a, d_a, _c2w(pose), 5, 5.0, observed=False)
    mem.write(z_b, d_b, _c2w(pose), 30, 30.0, observed=False)   # no read first: recomputed
    canvas, mask, depth = mem.read(_c2w(pose))
    assert bool((mask[0] > 0).all())
    assert torch.allclose(depth[0, :, :8], torch.tensor(3.0), atol=1e-3)
    assert torch.allclose(canvas[:, :, :8], torch.tensor(3.0)) and torch.allclose(canvas[:, :, 8:], torch.tensor(2.0))
    # keep_observed_view only: the later drawing stands in front of the first.
    mem = LatentMemory(8, capacity=10_000, voxel_size=0.02, feat_dtype=torch.float32, skip_recent_generated=20,
                       keep_drawn_view=False)
    mem.write(z_a, d_a, _c2w(pose), 5, 5.0, observed=False)
    mem.write(z_b, d_b, _c2w(pose), 30, 30.0, observed=False)
    assert torch.allclose(mem.read(_c2w(pose))[2], torch.tensor(2.0), atol=1e-3)


def test_stored_positions_keep_a_fiftieth_of_a_millimetre():
    mem = LatentMemory(8, capacity=4096, voxel_size=0.01)
    z, d = _frame(7)
    pose = Pose((3.3, 1.6, -7.1), yaw=140.0, pitch=10.0)
    mem.write(z, d, _c2w(pose), 0, 0.0, observed=True)
    lifted = projection.lift(d[None], _c2w(pose)[None], 70.0)[0]
    err = torch.cdist(mem.points()[0], lifted, compute_mode="donot_use_mm_for_euclid_dist").amin(dim=1)
    assert float(err.max()) < 2e-5        # 16-bit fixed point over a 1 m chunk: 15 micrometre steps
    # 3 int16 offsets + 8 float16 features + frame + time + observed flag + chunk id
    assert mem.stats().bytes == 4096 * (6 + 16 + 4 + 4 + 1 + 4)


def test_carving_after_a_read_at_the_same_pose_matches_carving_from_scratch():
    # A step reads at a pose and then writes there: the write reuses the read's projection.
    g = np.random.default_rng(5)
    a = LatentMemory(8, capacity=8192, voxel_size=0.05)
    b = LatentMemory(8, capacity=8192, voxel_size=0.05)
    for i in range(30):
        z, d = _frame(200 + i)
        pose = Pose((g.uniform(-1, 1), 1.6, g.uniform(-1, 1)), yaw=g.uniform(0, 360))
        a.read(_c2w(pose))
        for m in (a, b):
            m.write(z, d, _c2w(pose), i, float(i), observed=i % 3 == 0)
        assert a.carved_last == b.carved_last
    assert torch.equal(a.frame, b.frame) and torch.equal(a.off, b.off)
    assert a.stats().evicted_total == b.stats().evicted_total
    assert len(a) < 30 * 200    # random depths from nearby poses: much of it was seen through


def test_cpu_kernels_and_torch_path_keep_the_same_memory():
    # Writes with carving, merging, generated frames and eviction, from nearby poses: the CPU
    # path (fused numba read) must hold exactly the points the torch path (CUDA's) holds, and
    # read the same canvases.
    g = np.random.default_rng(11)
    a = LatentMemory(8, capacity=3000, voxel_size=0.05, feat_dtype=torch.float32)
    b = LatentMemory(8, capacity=3000, voxel_size=0.05, feat_dtype=torch.float32, use_kernel=False)
    assert a._kernel and not b._kernel
    for i in range(60):
        z, d = _frame(300 + i)
        pose = Pose((g.uniform(-2, 2), 1.6, g.uniform(-2, 2)), yaw=g.uniform(0, 360), pitch=g.uniform(-15, 15))
        for x, y in zip(a.read(_c2w(pose)), b.read(_c2w(pose))):
            assert torch.allclose(x, y, atol=1e-5)
        for m in (a, b):
            m.write(z, d, _c2w(pose), i, float(i), observed=i % 4 == 0)
        assert a.carved_last == b.carved_last
        assert torch.equal(a.frame, b.frame) and torch.equal(a.chunk, b.chunk) and torch.equal(a.off, b.off)
    assert a.stats().evicted_total > 0 and a.stats().evicted_total == b.stats().evicted_total
