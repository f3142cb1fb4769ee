"""The field for invented latents (engine/model/autoencoder.textured) and what trains it: the level's
pattern-free twin (engine/world/plain.py) drawn by the real renderer, the decoder mixing its two fields
by where a latent came from, and `mirage train texture --part invented` on a tiny coded model."""
from __future__ import annotations

import numpy as np
import torch
from model_fixtures import tiny_model_dir  # noqa: F401  (pytest fixture; coded_dir comes from conftest)

from engine.model.world_model import WorldModel


def test_the_plain_twin_keeps_geometry_light_and_colour_and_drops_every_pattern(egl, train_seed):
    from engine.model.layout_cells import SceneLayout
    from engine.train.ae import random_free_poses
    from engine.world.levels import generate_level
    from engine.world.plain import plain_level
    from engine.world.renderer import Renderer

    level = generate_level(train_seed)
    twin = plain_level(level)
    assert [(b.lo, b.hi, b.material, b.room) for b in twin.static_boxes] == \
        [(b.lo, b.hi, b.material, b.room) for b in level.static_boxes]
    assert any(b.pattern[0] != 0 for b in level.static_boxes if b.material != 4)
    assert all(b.pattern[0] == 0 for b in twin.static_boxes if b.material != 4)   # posters (4) stay
    poses = random_free_poses(level, 12, np.random.default_rng(0))
    r = Renderer(level, 64, 64)
    try:
        rgb, depth = r.render(poses)
        r.set_level(twin)
        flat, flat_depth = r.render(poses)
    finally:
        r.close()
    np.testing.assert_array_equal(depth, flat_depth)
    src = SceneLayout(level, 64, 8, 70.0)
    try:
        _, _, seg = src.views_of(poses)
    finally:
        src.close()
    seg = seg[:, 0].numpy()
    # Inside each segment: the twin's frames hold far less detail (a pattern's edges) and about the
    # same mean colour (its pattern's mean albedo under the same light).
    real_detail = flat_detail = 0.0
    mean_gaps = []
    for i in range(len(poses)):
        a, b = rgb[i].astype(np.float32), flat[i].astype(np.float32)
        for s in np.unique(seg[i]):
            m = seg[i] == s
            if s < 0 or m.sum() < 200:
                continue
            inner = m & np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1) & np.roll(m, -1, 1)
            real_detail += (np.abs(np.diff(a, axis=1))[inner[:, 1:]]).sum()
            flat_detail += (np.abs(np.diff(b, axis=1))[inner[:, 1:]]).sum()
            mean_gaps.append(np.abs(a[m].mean(0) - b[m].mean(0)).max())
    assert flat_detail < 0.5 * real_detail, (flat_detail, real_detail)
    assert np.median(mean_gaps) < 12.0, np.median(mean_gaps)


def test_matching_segment_means_moves_each_segment_to_ground_truths_mean_and_keeps_its_detail():
    from engine.train.views import match_segment_means

    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 16, 16, generator=g)
    plain = torch.rand(2, 3, 16, 16, generator=g)
    seg = torch.randint(-1, 3, (2, 1, 16, 16), generator=g)
    out = match_segment_means(plain, x, seg)
    for n in range(2):
        for s in (-1, 0, 1, 2):
            m = (seg[n, 0] == s)
            torch.testing.assert_close(out[n][:, m].mean(1), x[n][:, m].mean(1))
            d = out[n][:, m] - plain[n][:, m]
            torch.testing.assert_close(d, d[:, :1].expand_as(d))   # one shift a segment: detail untouched


def test_the_decoder_mixes_its_fields_by_where_each_latent_came_from(coded_dir):
    from engine.backends.networks import decoder_args, example_inputs
    from engine.model.autoencoder import with_seen
    from engine.train.texture import _with_invented_field

    model = _with_invented_field(WorldModel.load(coded_dir))
    assert model.cfg.autoencoder.invented_field
    with torch.no_grad():
        for p in model.ae.decoder.invented.out.parameters():   # a head of its own, not the copy it started as
            p.add_(0.05 * torch.randn_like(p))
    z, layout = example_inputs(model, 2)["decoder"]
    coded = layout[:, :-1]
    n, _, h, w = coded.shape
    with torch.no_grad():
        observed = model.ae.decoder(z, with_seen(coded, torch.ones(n, 1, h, w)))[0]
        invented = model.ae.decoder(z, with_seen(coded, torch.zeros(n, 1, h, w)))[0]
        # A layout without the provenance channel is a frame's own encoding: every pixel observed.
        torch.testing.assert_close(model.ae.decoder(z, coded)[0], observed)
        torch.testing.assert_close(model.ae.decoder(*decoder_args(model, z, coded))[0], observed)
        assert (observed - invented).abs().max() > 1e-3
        # Per latent cell, blended across cells: the left half observed decodes as the observed
        # field there and as the invented one on the right.
        cells = torch.zeros(n, 1, model.cells, model.cells)
        cells[..., : model.cells // 2] = 1.0
        mixed = model.ae.decoder(z, with_seen(coded, cells))[0]
    q = w // 4
    torch.testing.assert_close(mixed[..., :q], observed[..., :q])
    torch.testing.assert_close(mixed[..., -q:], invented[..., -q:])


def test_the_invented_stage_trains_that_field_alone_on_the_plain_twins_latents(coded_dir, tmp_path, train_seed):
    from engine.model.autoencoder import with_seen
    from engine.train.texture import (
        InventedOnly,
        TextureTrainArgs,
        field_loss,
        texture_examples,
        train_texture,
    )

    before = WorldModel.load(coded_dir)
    torch.manual_seed(0)
    out = train_texture(TextureTrainArgs(model=str(coded_dir), out=str(tmp_path / "inv"), steps=30, batch=4, lr=3e-3,
                                         seeds=(train_seed, train_seed + 1), views=4, save_every=15, part="invented",
                                         energy_weight=1.0), progress=False)
    after = WorldModel.load(out)
    assert after.cfg.autoencoder.invented_field
    old, new = before.ae.state_dict(), after.ae.state_dict()
    assert all(torch.equal(old[k], new[k]) for k in old)              # every weight it had, unchanged
    assert {k for k in new if k not in old} == {f"decoder.invented.{n}.{p}" for n in ("mid", "out")
                                                for p in ("weight", "bias")}
    assert all(torch.equal(before.gen.state_dict()[k], v) for k, v in after.gen.state_dict().items())
    data = texture_examples(before, (train_seed, train_seed + 1), 4, (0.2, 0.6), progress=False, part="invented")
    real = texture_examples(before, (train_seed, train_seed + 1), 4, (0.2, 0.6), progress=False)
    # The plain twin's latents decode with less detail than the real frames' (what the field must add).
    assert not torch.equal(data["base"], real["base"])
    with torch.no_grad():
        first, _ = field_loss(before.ae.decoder.texture, data["layout"], data["base"], data["x"], data["seg"], 3.0,
                              energy_weight=1.0)
        # The head on the field's features, every pixel invented; it started as a copy of the field's own.
        last, _ = field_loss(InventedOnly(after.ae.decoder.texture, after.ae.decoder.invented), data["layout"],
                             data["base"], data["x"], data["seg"], 3.0, energy_weight=1.0)
        # With every pixel observed the decoder is the model it was trained from.
        z = after.encode(real["x"][:2])
        lay = real["layout"][:2]
        torch.testing.assert_close(after.ae.decoder(z, with_seen(lay, None))[0], before.ae.decoder(z, lay)[0])
    assert float(last) < float(first), (float(first), float(last))


def test_a_session_draws_observed_places_with_the_field_and_invented_ones_with_the_head(
        coded_dir, train_seed, tmp_path, monkeypatch):
    """WorldSession gives the decoder the provenance memory reads: stepping where it has just observed,
    a model with a head decodes as the same model without one; facing away (nothing observed there),
    the head draws. ONNX Runtime runs the same 45-channel decoder."""
    from engine.backends.onnx_export import export_onnx
    from engine.backends.ort_backend import OnnxRuntimeBackend
    from engine.camera import Pose
    from engine.eval import render_trajectory
    from engine.model.layout_cells import SceneLayout
    from engine.session import WorldSession
    from engine.train.texture import _with_invented_field
    from engine.trajectory import make_trajectory
    from engine.world.levels import generate_level

    monkeypatch.setenv("MIRAGE_CACHE_DIR", str(tmp_path / "cache"))
    plain = WorldModel.load(coded_dir)
    headed = _with_invented_field(WorldModel.load(coded_dir))
    with torch.no_grad():
        for p in headed.ae.decoder.invented.out.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    traj = make_trajectory(train_seed, "explore", frames=2, resolution=(plain.image_size, plain.image_size))
    gt, depth = render_trajectory(plain, traj, {})
    here = traj.frames[0]
    away = Pose(here.position, yaw=here.yaw + 180.0, pitch=here.pitch)
    source = SceneLayout.for_model(generate_level(train_seed), plain)
    export_onnx(headed, tmp_path / "onnx")
    frames = {}
    for name, model, backend in (("plain", plain, "torch"), ("headed", headed, "torch"),
                                 ("headed-ort", headed, OnnxRuntimeBackend(headed, tmp_path / "onnx"))):
        sess = WorldSession(model, memory=True, seed=3, layout=source, backend=backend)
        sess.observe(gt[0], here, depth[0])
        frames[name] = [sess.step(here).frame.astype(np.float32), sess.step(away).frame.astype(np.float32)]
    source.close()
    # Where memory shows the observation (all of the view, but for a cell or two at its edges).
    same = np.abs(frames["plain"][0] - frames["headed"][0]).mean(-1)
    assert np.median(same) == 0.0 and np.mean(same) < 1.0, np.mean(same)
    assert np.abs(frames["plain"][1] - frames["headed"][1]).mean() > 1.0
    for a, b in zip(frames["headed"], frames["headed-ort"]):
        assert np.abs(a - b).max() <= 2.0
