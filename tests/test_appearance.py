"""Per-room appearance codes (engine/model/appearance.py): the layout says which room a surface
bounds, the decoder stage learns a posterior over each room segment's look, and a session keeps
one code per segment for the walk, observed or drawn, with its memory."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from model_fixtures import render_with_layout, tiny_model_dir  # noqa: F401  (pytest fixture; coded_dir comes from conftest)

from engine.model.appearance import gaussian_kl
from engine.model.autoencoder import SURFACE
from engine.model.layout_cells import (
    PIXEL_CHANNELS,
    Planes,
    SceneLayout,
    split_surface,
    surface_planes,
)
from engine.model.pattern_spectrum import unlocked
from engine.model.segments import MAX_SEGMENTS, SEGMENT_CLASSES, code_map, segment_ids
from engine.model.world_model import WorldModel
from engine.trajectory import make_trajectory
from engine.world.layout import FLOOR_C, WALL_C, LayoutRenderer
from engine.world.levels import generate_level


def test_the_layout_says_which_room_each_surface_bounds(egl, train_seed):
    level = generate_level(train_seed)
    traj = make_trajectory(train_seed, "explore", frames=200, resolution=(64, 64))
    poses = traj.frames[::10]
    r = LayoutRenderer(level, 64, 64, traj.fov_deg)
    try:
        lay = r.layout(poses)
    finally:
        r.close()
    assert lay.room.shape == (len(poses), 64, 64)
    assert (lay.room[lay.corridor] == -1).all(), "corridor surfaces bound no room"
    assert (lay.room[~lay.corridor] >= 0).all(), "every other surface of a level is a room's"
    # A floor pixel's surface coordinates are its world x and z: the room there is the room it bounds.
    floor = (lay.material == FLOOR_C) & ~lay.corridor
    pts, rooms = lay.uv[floor], lay.room[floor]
    assert len(pts) > 1000
    agree = np.mean([level.room_at(float(u), float(v)) == r for (u, v), r in zip(pts[::7], rooms[::7])])
    assert agree > 0.99, agree
    assert len(np.unique(rooms)) >= 2, "the walk sees the floors of two rooms"
    seg = Planes(lay).segments()
    walls = (seg >= 0) & (seg % len(SEGMENT_CLASSES) == SEGMENT_CLASSES.index(WALL_C))
    assert bool(walls.any())
    room = torch.from_numpy(lay.room.astype(np.int64))[:, None]
    assert torch.equal(seg[walls] // len(SEGMENT_CLASSES), room[walls])
    uv, back = split_surface(surface_planes(lay))
    assert torch.equal(back, seg)
    assert torch.allclose(uv, torch.from_numpy(lay.uv).permute(0, 3, 1, 2))


def test_codes_are_spread_by_segment_and_the_kl_is_a_gaussians():
    room = torch.tensor([[[[0, 0, 1], [1, -1, 2]]]])
    classes = torch.zeros(1, 5, 2, 3)
    classes[:, FLOOR_C, 0] = 1.0
    classes[:, WALL_C, 1] = 1.0
    seg = segment_ids(room, classes)
    assert seg.tolist() == [[[[0, 0, 3], [4, -1, 7]]]]
    codes = torch.randn(1, MAX_SEGMENTS, 4)
    m = code_map(codes, seg)
    assert torch.equal(m[0, :, 0, 2], codes[0, 3]) and torch.equal(m[0, :, 1, 2], codes[0, 7])
    assert torch.equal(m[0, :, 1, 1], torch.zeros(4)), "a pixel with no segment has no code"
    present = torch.zeros(1, MAX_SEGMENTS, dtype=torch.bool)
    present[0, 3] = True
    zero = torch.zeros(1, MAX_SEGMENTS, 4)
    assert gaussian_kl(zero, zero, present).item() == 0.0
    mu = zero.clone()
    mu[0, 3, 0], mu[0, 5, 0] = 2.0, 10.0
    assert gaussian_kl(mu, zero, present).item() == pytest.approx(2.0), "only the present segment counts"


def test_the_decoder_stage_adds_codes_and_learns_them(coded_dir, tiny_model_dir):
    m = WorldModel.load(coded_dir)
    a = m.cfg.autoencoder
    assert a.appearance_dim == 4 and a.layout_channels == PIXEL_CHANNELS + SURFACE + 4
    w = m.ae.decoder.layout.embed[1].weight
    assert w[:, PIXEL_CHANNELS * a.unshuffle ** 2:].abs().max() > 0, "the code weights started at zero and trained"
    fresh = type(m.ae.appearance)(4, PIXEL_CHANNELS, a.unshuffle)
    torch.manual_seed(0)
    assert m.ae.appearance is not None
    import csv

    rows = list(csv.DictReader(open(coded_dir.parent / "decoder_loss.csv")))
    assert float(rows[0]["kl"]) >= 0.0
    assert fresh.head[2].weight.shape == m.ae.appearance.head[2].weight.shape


def test_a_session_keeps_one_code_per_segment_observed_or_drawn(coded_dir, train_seed):
    from engine.eval import render_trajectory
    from engine.session import WorldSession

    m = WorldModel.load(coded_dir)
    traj = make_trajectory(train_seed, "explore", frames=40, resolution=(m.image_size, m.image_size))
    gt, _ = render_trajectory(m, traj, {})
    source = SceneLayout.for_model(generate_level(train_seed), m)
    sess = WorldSession(m, memory=True, seed=5, layout=source)
    sess.observe(gt[0], traj.frames[0])
    seen = sess.code_observed.clone()
    assert bool(seen.any()), "the first frame shows some room's floor or walls"
    x = torch.from_numpy(gt[0]).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    uv, seg = source.surface_at(traj.frames[0])
    with torch.no_grad():
        mu, _, present = m.ae.appearance(x, source.pixels_at(traj.frames[0])[:, :PIXEL_CHANNELS], seg, uv)
    assert torch.equal(present[0], seen)
    assert torch.allclose(sess.codes[0, seen], mu[0, seen]), "an observed segment takes its posterior mean"
    first = [sess.step(p).frame for p in traj.frames[1:]]
    drawn = sess.code_known & ~sess.code_observed
    assert bool(drawn.any()), "a 40-frame walk reaches segments the observation did not show"
    assert sess.codes[0, drawn].abs().sum() > 0
    # A drawn look locks no axis, and its pattern's phase is a draw of its own, not the origin's.
    assert sess.locks[0, drawn, :4].abs().sum() == 0
    phases = sess.locks[0, drawn, 4:6]
    assert bool(((phases >= 0) & (phases < 1)).all()) and phases.std() > 0.05
    kept = sess.codes.clone()
    again = sess.step(traj.frames[5]).frame
    assert torch.equal(sess.codes, kept), "a revisit reads the codes it kept"
    assert again.shape == first[4].shape
    off = WorldSession(m, memory=False, seed=5, layout=source)
    off.observe(gt[0], traj.frames[0])
    off.step(traj.frames[1])
    assert not bool(off.code_known.any()), "memory off keeps no code"
    sess.reset()
    assert not bool(sess.code_known.any()) and sess.codes.abs().sum() == 0 and sess.locks.abs().sum() == 0



def test_a_view_that_shows_less_of_a_segment_keeps_its_code(coded_dir, train_seed):
    """A later observation refines a segment's code only when it shows at least as much of it: a strip
    at a frame's edge reads a poor look (seen: a blue wall read as maroon on its last sight)."""
    from engine.eval import render_trajectory
    from engine.session import WorldSession

    m = WorldModel.load(coded_dir)
    traj = make_trajectory(train_seed, "explore", frames=40, resolution=(m.image_size, m.image_size))
    gt, _ = render_trajectory(m, traj, {})
    source = SceneLayout.for_model(generate_level(train_seed), m)
    views = []
    for i, pose in enumerate(traj.frames):
        x = torch.from_numpy(gt[i]).permute(2, 0, 1)[None].float() / 127.5 - 1.0
        uv, seg = source.surface_at(pose)
        with torch.no_grad():
            mu, _, present = m.ae.appearance(x, source.pixels_at(pose)[:, :PIXEL_CHANNELS], seg, uv)
        area = torch.bincount((seg + 1).flatten(), minlength=MAX_SEGMENTS + 1)[1:]
        views.append((mu[0], present[0], area))
    # Two frames that both show one segment, the first more of it than the second.
    pick = next((i, j, s) for i in range(len(views)) for j in range(len(views)) for s in range(MAX_SEGMENTS)
                if views[i][1][s] and views[j][1][s] and views[i][2][s] > views[j][2][s]
                and not torch.allclose(views[i][0][s], views[j][0][s]))
    big, small, s = pick
    sess = WorldSession(m, memory=True, seed=0, layout=source)
    sess.observe(gt[big], traj.frames[big])
    sess.observe(gt[small], traj.frames[small])
    assert torch.allclose(sess.codes[0, s], views[big][0][s]), "the smaller view left the code as the larger read it"
    sess.reset()
    sess.observe(gt[small], traj.frames[small])
    sess.observe(gt[big], traj.frames[big])
    assert torch.allclose(sess.codes[0, s], views[big][0][s]), "the larger view replaced the smaller one's code"

def test_codes_change_what_the_decoder_draws(coded_dir, train_seed):
    m = WorldModel.load(coded_dir)
    traj = make_trajectory(train_seed, "explore", frames=3, resolution=(m.image_size, m.image_size))
    source = SceneLayout.for_model(generate_level(train_seed), m)
    pose = traj.frames[0]
    px, (uv, seg) = source.pixels_at(pose), source.surface_at(pose)
    z = torch.randn(1, m.latent_channels, m.cells, m.cells, generator=torch.Generator().manual_seed(0))
    codes = torch.randn(1, MAX_SEGMENTS, 4, generator=torch.Generator().manual_seed(1))
    locks = code_map(unlocked(MAX_SEGMENTS)[None], seg)
    with torch.no_grad():
        a = m.ae.decode(z, torch.cat([px, uv, locks, code_map(codes, seg)], 1))[0]
        b = m.ae.decode(z, torch.cat([px, uv, locks, code_map(-codes, seg)], 1))[0]
    assert (a - b).abs().max() > 0


@pytest.mark.slow
def test_the_coded_decoder_exports_and_onnxruntime_draws_what_torch_draws(coded_dir, train_seed, tmp_path, monkeypatch):
    from engine.backends.onnx_export import export_onnx
    from engine.backends.ort_backend import OnnxRuntimeBackend, network_parity
    from engine.eval import render_trajectory
    from engine.session import WorldSession

    monkeypatch.setenv("MIRAGE_CACHE_DIR", str(tmp_path / "cache"))
    m = WorldModel.load(coded_dir)
    export_onnx(m, tmp_path / "onnx", int8=True)
    worst = network_parity(m, tmp_path / "onnx")
    assert max(worst.values()) < 1e-3, worst
    traj = make_trajectory(train_seed, "explore", frames=6, resolution=(m.image_size, m.image_size))
    gt, _ = render_trajectory(m, traj, {})
    source = SceneLayout.for_model(generate_level(train_seed), m)
    frames = {}
    for name in ("torch", "onnxruntime", "int8"):
        backend = OnnxRuntimeBackend(m, tmp_path / "onnx", int8=name == "int8") if name != "torch" else "torch"
        sess = WorldSession(m, memory=True, seed=3, layout=source, backend=backend)
        sess.observe(gt[0], traj.frames[0])
        frames[name] = np.stack([sess.step(p).frame for p in traj.frames[1:]]).astype(np.float32)
    assert np.abs(frames["torch"] - frames["onnxruntime"]).max() <= 2.0
    # The int8 trunk: the full-resolution convolutions (texture field) stay float32, the frames within a
    # level or two of float's on average.
    import onnx

    graph = onnx.load(str(tmp_path / "onnx" / "decoder.int8.onnx")).graph
    made_by = {o: n.op_type for n in graph.node for o in n.output}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert any(made_by.get(n.input[1]) == "DequantizeLinear" for n in convs)
    assert all(made_by.get(n.input[1]) != "DequantizeLinear" for n in convs if "texture" in n.input[1])
    assert any("texture" in n.input[1] for n in convs)
    assert np.abs(frames["int8"] - frames["onnxruntime"]).mean() <= 2.0


def test_the_texture_fields_bases_and_footprint():
    from engine.model.appearance import BASES, periodic_bases
    from engine.model.segments import footprint

    # A plane whose coordinates step 1 cm a pixel across and 2 cm down: its footprint is 2 cm, also
    # on the border pixels (each axis takes its smaller one-sided step), and 4 cm past a seam where
    # the coordinates jump by metres (the jump is not a footprint).
    ys, xs = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    uv = torch.stack([0.01 * xs, 0.02 * ys])[None]
    assert torch.allclose(footprint(uv), torch.full((1, 1, 8, 8), 0.02))
    uv[:, 0, :, 4:] += 5.0
    assert float(footprint(uv).max()) == pytest.approx(0.02)
    # At whole cycles the thin lines are 1 and the soft squares change sign; half a cycle on, the
    # staggered line of an odd row sits where an even row has none.
    pu = torch.tensor([0.0, 0.25, 0.5, 0.75]).view(1, 1, 1, 4)
    pv = torch.full_like(pu, 0.5)
    b = periodic_bases(pu, pv)
    assert b.shape == (1, BASES, 1, 4)
    lines_u = b[0, 6, 0]
    assert lines_u[0] == pytest.approx(1.0) and lines_u[2] < 1e-6
    squares_u = b[0, 4, 0]
    assert squares_u[1] > 0.99 and squares_u[3] < -0.99
    odd = periodic_bases(pu, torch.full_like(pu, 1.5))[0, 10, 0]
    even = b[0, 10, 0]
    assert even[0] < 1e-3 < 0.99 < float(odd[0]) or float(even[0]) > 0.99 > 1e-3 > float(odd[0])


def _rendered_views(level, poses) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """The real renderer's frames (N, 128, 128, 3) uint8 of `poses` and the layout's surface coordinates
    (N, 2, 128, 128) and appearance segments (N, 1, 128, 128) there."""
    rgb, _, lay = render_with_layout(level, poses, 128, 70.0)
    uv, seg = split_surface(surface_planes(lay))
    return rgb, uv, seg


def test_a_segments_spectrum_peaks_at_its_patterns_frequency(egl):
    """A room whose walls carry stripes: rendered by the real renderer, the spectrum along the walls'
    horizontal axis peaks at the stripes' frequency (the level's own, read here only to check)."""
    import math

    from engine.camera import Pose
    from engine.model.pattern_spectrum import (
        SPECTRUM,
        pattern_lock,
        segment_spectra,
        spectral_peaks,
    )
    from engine.world.geometry import PAT_STRIPES, WALL

    for seed in range(200_000, 200_200):
        level = generate_level(seed)
        striped = [b for b in level.boxes_at(0.0) if b.material == WALL and b.room >= 0 and int(b.pattern[0]) == PAT_STRIPES]
        if striped:
            break
    room = level.rooms[striped[0].room]
    f0 = striped[0].pattern[1]
    (x0, z0), (x1, z1) = room.lo, room.hi
    # From the room's centre, facing each of its four walls in turn: the view with the most wall wins.
    cx, cz = (x0 + x1) / 2, (z0 + z1) / 2
    poses = [Pose((cx, 1.6, cz), yaw, 0.0) for yaw in (0.0, 90.0, 180.0, 270.0)]
    rgb, uv, seg = _rendered_views(level, poses)
    wall_seg = striped[0].room * len(SEGMENT_CLASSES) + SEGMENT_CLASSES.index(WALL_C)
    best = int((seg == wall_seg).flatten(1).sum(1).argmax())
    x = torch.from_numpy(rgb[best:best + 1]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    spectra = segment_spectra(x, uv[best:best + 1], seg[best:best + 1])[0, wall_seg]
    j = len(SPECTRUM)
    along = spectra[:j]      # a wall's first surface axis runs along it, the second is height
    peak = SPECTRUM[int(along.argmax())]
    assert abs(math.log(peak / f0)) < math.log(1.12), (peak, f0)
    assert along.max() > along.median() + 2.0, "a clear peak, not a flat spectrum"
    logf, clear = spectral_peaks(spectra[None, None])
    assert bool(clear[0, 0, 0]) and abs(float(logf[0, 0, 0]) - math.log(f0)) < math.log(1.12)
    assert along.max() > spectra[j:].max() + 0.5, "vertical stripes vary along the wall, not up it"
    # Refined between grid points, the frequency is within 4% of the level's. Drawn at it with the
    # measured phase, a cosine falls on the stripes the frame shows: it follows the wall's brightness
    # nearly as well as the best phase at the level's own frequency (the light's falloff across the
    # wall holds both to about 0.5), where the grid's frequency drawn from the coordinates' origin,
    # a few per cent off over metres of wall, does not follow it at all.
    lock = pattern_lock(x, uv[best:best + 1], seg[best:best + 1])[0, wall_seg]
    assert float(lock[0]) == 1.0 and abs(float(lock[2]) - math.log(f0)) < math.log(1.04), (lock, f0)
    mask = seg[best, 0] == wall_seg
    g = x[0].mean(0)[mask]
    u = uv[best, 0][mask]

    def fit(freq: float, phase: float) -> float:
        wave = torch.cos(2 * math.pi * (freq * u + phase))
        return float(torch.corrcoef(torch.stack([g, wave]))[0, 1])

    best_fit = max(fit(f0, k / 50) for k in range(50))
    assert best_fit > 0.4
    assert fit(math.exp(float(lock[2])), float(lock[4])) > 0.9 * best_fit
    assert abs(fit(peak, 0.0)) < 0.2 * best_fit


def test_the_high_pass_keeps_a_pattern_and_drops_the_light():
    """A wall lit from one side (brightness rising across it) with stripes 8 pixels apart: the high
    pass leaves the stripes and not the slope, and the detail loss tells the striped wall from the
    same wall without stripes but not from itself."""
    from engine.model.pattern_spectrum import high_pass
    from engine.train.decoder import detail_loss

    xs = torch.arange(128.0).view(1, 1, 1, 128).expand(1, 3, 128, 128)
    light = -0.6 + 1.2 * xs / 127.0
    stripes = 0.2 * torch.sign(torch.sin(2 * math.pi * xs / 8.0 + 0.1))
    seg = torch.zeros(1, 1, 128, 128, dtype=torch.long)
    seg[..., :, :10] = -1                              # a door at the left: no segment
    valid = (seg >= 0).float()
    inner = (slice(None), slice(None), slice(20, 108), slice(30, 108))   # away from the edges
    lit = high_pass(light + stripes, valid)[inner]
    assert float(high_pass(light, valid)[inner].abs().max()) < 0.02
    assert float((lit - stripes[inner]).abs().mean()) < 0.03
    assert float(high_pass(light, valid)[..., :10].abs().max()) == 0.0
    assert float(detail_loss(light + stripes, light + stripes, seg)) == 0.0
    assert float(detail_loss(light, light + stripes, seg)) > 0.02


def test_views_of_a_tiled_floor_lock_one_checker(egl):
    """A checker of tiles has almost no power along either surface axis (each row of it averages to
    grey), so reading the axes alone locks nothing. Read along the diagonals, every view of a tiled
    floor is locked as a checker at the level's frequency, and the texture field's checker of
    half-harmonic square waves, drawn with the lock's phases, falls on the level's own tiles (read
    here only to check) with the same sign in every view: one world, one checker."""
    from engine.camera import Pose
    from engine.model.pattern_spectrum import pattern_lock
    from engine.world.geometry import FLOOR, PAT_TILES

    for seed in range(200_000, 200_400):
        level = generate_level(seed)
        tiled = [b for b in level.boxes_at(0.0) if b.material == FLOOR and b.room >= 0 and int(b.pattern[0]) == PAT_TILES
                 and b.pattern[1] < 1.8]   # tiles large enough to count many pixels each at 128x128
        if tiled:
            break
    room = level.rooms[tiled[0].room]
    f0 = float(tiled[0].pattern[1])
    (x0, z0), (x1, z1) = room.lo, room.hi
    rng = np.random.default_rng(0)
    poses = [Pose((rng.uniform(x0 + 0.6, x1 - 0.6), 1.6, rng.uniform(z0 + 0.6, z1 - 0.6)), float(rng.uniform(-180, 180)), -45.0)
             for _ in range(6)]
    rgb, uv, seg = _rendered_views(level, poses)
    floor_seg = tiled[0].room * len(SEGMENT_CLASSES) + SEGMENT_CLASSES.index(FLOOR_C)
    x = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    lock = pattern_lock(x, uv, seg)[:, floor_seg]                        # (6, LOCK)
    signs = []
    for i in range(len(poses)):
        assert bool(lock[i, 0] > 0) and bool(lock[i, 1] > 0), ("both axes locked", i, lock[i])
        assert abs(float(lock[i, 2]) - math.log(f0)) < math.log(1.15), (i, float(lock[i, 2].exp()), f0)
        mask = seg[i, 0] == floor_seg
        u, v = uv[i, 0][mask], uv[i, 1][mask]
        drawn = (torch.tanh(4 * torch.sin(math.pi * (lock[i, 2].exp() * u + lock[i, 4])))
                 * torch.tanh(4 * torch.sin(math.pi * (lock[i, 3].exp() * v + lock[i, 5]))))
        # The renderer's checker: which tile of each pair, from the level's own frequency at phase 0.
        truth = ((torch.floor(u * f0) + torch.floor(v * f0)) % 2) * 2 - 1
        c = float(torch.corrcoef(torch.stack([drawn, truth]))[0, 1])
        assert abs(c) > 0.6, (i, c)
        signs.append(c > 0)
    assert len(set(signs)) == 1, signs


def test_views_of_a_brick_wall_lock_its_staggered_joints(egl):
    """A wall of bricks shows its courses along v, but its vertical joints move by half a brick from
    course to course and cancel along u. Read with the courses' alternate sign, the views of a brick
    wall lock as bricks at the courses' frequency (twice the level's bricks a metre), and the texture
    field's staggered basis drawn with the lock falls on the level's own joints (read here only to
    check). Walls of other patterns in the same worlds never lock as bricks."""
    from engine.camera import Pose
    from engine.model.appearance import periodic_bases
    from engine.model.pattern_spectrum import pattern_lock
    from engine.world.geometry import PAT_BRICK, WALL

    bricks, others = [], []
    for seed in range(200_000, 200_400):
        level = generate_level(seed)
        walls = {b.room: b for b in level.boxes_at(0.0) if b.material == WALL and b.room >= 0}
        # Bricks large enough to count a few pixels each course at 128x128 (the finest, 5 a metre, lie
        # courses 2-3 pixels apart at the distances a wall is seen from).
        if not any(int(b.pattern[0]) == PAT_BRICK and b.pattern[1] < 3.5 for b in walls.values()):
            continue
        rng = np.random.default_rng(seed)
        for room, box in walls.items():
            (x0, z0), (x1, z1) = level.rooms[room].lo, level.rooms[room].hi
            poses = [Pose((rng.uniform(x0 + 0.6, x1 - 0.6), 1.6, rng.uniform(z0 + 0.6, z1 - 0.6)),
                          float(rng.uniform(-180, 180)), 0.0) for _ in range(4)]
            rgb, uv, seg = _rendered_views(level, poses)
            x = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 127.5 - 1.0
            s = room * len(SEGMENT_CLASSES) + SEGMENT_CLASSES.index(WALL_C)
            lock = pattern_lock(x, uv, seg)[:, s]
            for i in range(len(poses)):
                mask = seg[i, 0] == s
                if int(mask.sum()) < 2000:
                    continue
                if int(box.pattern[0]) == PAT_BRICK and box.pattern[1] >= 3.5:
                    continue
                (bricks if int(box.pattern[0]) == PAT_BRICK else others).append(
                    (float(box.pattern[1]), lock[i], uv[i, 0][mask], uv[i, 1][mask]))
        if len(bricks) >= 12:
            break
    assert not any(bool(lk[7] > 0) for _, lk, _, _ in others), "only brick walls lock as bricks"
    locked = [b for b in bricks if bool(b[1][7] > 0)]
    assert len(locked) >= len(bricks) // 2, (len(locked), len(bricks))
    corr = []
    for f0, lk, u, v in locked:
        assert bool(lk[0] > 0) and bool(lk[1] > 0)
        for axis in (2, 3):
            assert abs(float(lk[axis]) - math.log(2 * f0)) < math.log(1.1), (float(lk[axis].exp()), f0)
        pu, pv = lk[2].exp() * u + lk[4], lk[3].exp() * v + lk[5]
        drawn = periodic_bases(pu.view(1, 1, 1, -1), pv.view(1, 1, 1, -1))[0, 10, 0]
        # The renderer's vertical joints: every 1 / f0 along u, shifted by half a brick on odd courses.
        course = torch.floor(2 * f0 * v)
        along = u * f0 + 0.5 * (course % 2)
        joints = ((torch.frac(along + 0.5) - 0.5).abs() < 0.09).float()
        c = float(torch.corrcoef(torch.stack([drawn, joints]))[0, 1])
        corr.append(c)
    # Measured: 9 of 12 views locked, 8 of them at 0.31-0.76 (a view whose courses' phase is read half
    # a course off draws its joints between the level's).
    assert sum(c > 0.3 for c in corr) >= 0.75 * len(corr) and float(np.median(corr)) > 0.4, corr
