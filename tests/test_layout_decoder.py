"""The decoder that takes the full-resolution scene layout (engine/model/autoencoder.LayoutInput).

Checked against the real layout pass and renderer of a training world: the layout pixels hold
the level's geometry, a decoder given the new input decodes exactly as before until it trains,
its depth with the layout on is the layout's, and every backend feeds it the same layout.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from model_fixtures import render_with_layout, tiny_model, tiny_model_dir  # noqa: F401  (pytest fixtures)

from engine.model.autoencoder import Autoencoder, widen_layout_input
from engine.model.config import tiny_config
from engine.model.layout_cells import (
    LAYOUT_CHANNELS,
    PIXEL_CHANNELS,
    UV_FREQS,
    SceneLayout,
    layout_pixels,
)
from engine.model.world_model import WorldModel
from engine.trajectory import make_trajectory
from engine.world.levels import generate_level


def _turnaround_views(seed: int, n: int, size: int = 64):
    traj = make_trajectory(seed, "turnaround", resolution=(size, size))
    poses = traj.frames[:n]
    rgb, depth, lay = render_with_layout(generate_level(seed), poses, size, traj.fov_deg)
    return poses, rgb, depth, lay


def test_layout_pixels_hold_the_levels_geometry_and_no_colour(egl, train_seed):
    poses, rgb, depth, lay = _turnaround_views(train_seed, 6)
    px = layout_pixels(lay, 30.0)
    assert px.shape == (6, PIXEL_CHANNELS, 64, 64)
    classes = px[:, 4:LAYOUT_CHANNELS]
    assert torch.equal(classes.sum(1), torch.ones(6, 64, 64)), "inside a level every pixel shows one class"
    assert set(classes.unique().tolist()) == {0.0, 1.0}
    rel = (px[:, 0].exp().numpy() - depth) / depth
    assert np.abs(rel).mean() < 0.01, "the layout's depth is the renderer's depth"
    assert torch.allclose(px[:, 1:4].norm(dim=1), torch.ones(6, 64, 64), atol=1e-3)
    # Surface coordinates: a floor or ceiling pixel's are its world point's x and z, a wall's the
    # two world axes along it (x or z, and height), as the renderer anchors its patterns.
    from engine.projection import lift

    c2w = torch.stack([torch.as_tensor(np.asarray(p.c2w()), dtype=torch.float32) for p in poses])
    fov = make_trajectory(train_seed, "turnaround", resolution=(64, 64)).fov_deg
    world = lift(torch.from_numpy(np.ascontiguousarray(lay.depth)), c2w, fov).reshape(6, 64, 64, 3).numpy()
    uv, mat = lay.uv, lay.material
    flat = (mat == 0) | (mat == 2)                       # floor, ceiling: normal along y
    assert np.abs(uv[flat] - world[flat][:, [0, 2]]).max() < 0.05
    wall = mat == 1
    n_world = np.einsum("nij,nhwj->nhwi", c2w[:, :3, :3].numpy(), lay.normal)
    along_x = wall & (np.abs(n_world[..., 2]) > 0.9)     # a wall facing z runs along x
    assert along_x.any() and np.abs(uv[along_x] - world[along_x][:, [0, 1]]).max() < 0.05
    # Its features are the sines and cosines of those coordinates, zero where nothing is drawn.
    f0 = UV_FREQS[0]
    sin_u = px[:, LAYOUT_CHANNELS].numpy()
    assert np.allclose(sin_u, np.sin(2 * np.pi * f0 * uv[..., 0]), atol=1e-4)
    # Nothing in it follows the frame's colours: two views with the same geometry and any
    # colours would give the same pixels, since the pass never reads a material's colour.
    assert not any(k in ("rgb", "colour", "color") for k in vars(lay))


def test_a_new_layout_input_decodes_as_the_decoder_did(egl, train_seed):
    cfg = tiny_config().autoencoder
    torch.manual_seed(0)
    old = Autoencoder(cfg).eval()
    # Make the old decoder's output non-trivial everywhere (its last convs start at zero).
    for p in old.decoder.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    new = Autoencoder(replace(cfg, layout_channels=LAYOUT_CHANNELS)).eval()
    missing = new.load_state_dict(old.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("decoder.layout.") for k in missing)
    _, rgb, depth, lay = _turnaround_views(train_seed, 4)
    px = layout_pixels(lay, cfg.max_depth)
    z = torch.randn(4, cfg.latent_channels, cfg.latent_size, cfg.latent_size)
    with torch.no_grad():
        rgb_old, d_old = old.decode(z)
        rgb_new, d_new = new.decode(z, px)
        rgb_off, d_off = new.decode(z)
    assert torch.equal(rgb_old, rgb_new) and torch.equal(rgb_old, rgb_off)
    assert torch.equal(d_old, d_off), "layout off: the depth head's own depth"
    # Layout on: depth is the layout's (its correction starts at zero), so it is the renderer's.
    rel = np.abs(d_new[:, 0].numpy() - depth) / depth
    assert rel.mean() < 0.01
    half = px.clone()
    half[:, :, :, 32:] = 0.0   # the layout off on the right half of every view
    with torch.no_grad():
        d_half = new.decode(z, half)[1]
    assert torch.allclose(d_half[..., 32:], d_old[..., 32:]) and torch.allclose(d_half[..., :32], d_new[..., :32])
    # A geometry-only input (as v2 stages 2-3 shipped it) widened to the surface coordinates decodes
    # as it did: their weights start at zero.
    for p in new.decoder.layout.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    wide = Autoencoder(replace(cfg, layout_channels=PIXEL_CHANNELS)).eval()
    wide.load_state_dict(widen_layout_input(new.state_dict(), LAYOUT_CHANNELS, PIXEL_CHANNELS))
    with torch.no_grad():
        before, after = new.decode(z, px), wide.decode(z, px)
        moved = wide.decode(z, px + 0.5 * (torch.arange(PIXEL_CHANNELS) >= LAYOUT_CHANNELS).float()[None, :, None, None])
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(before, after))
    assert torch.allclose(moved[0], after[0], atol=1e-6), "the new channels do nothing until trained"


@pytest.fixture(scope="module")
def layout_decoder_dir(tiny_model_dir, tmp_path_factory, egl, train_seed):
    """The tiny model with its decoder given the layout and trained on it for a few steps, on
    pairs the tiny model generated with the layout on."""
    from engine.train.decoder import DecoderTrainArgs, train_decoder
    from engine.train.generated_pairs import PairArgs, collect_pairs, save_pairs

    root = tmp_path_factory.mktemp("layout_decoder")
    model = WorldModel.load(tiny_model_dir)
    pairs = collect_pairs(model, PairArgs(seeds=(train_seed, train_seed + 1), every=2, explore_frames=12,
                                          kinds=("explore",)), progress=False)
    save_pairs(root / "pairs.safetensors", pairs, "tiny")
    torch.manual_seed(0)
    return train_decoder(DecoderTrainArgs(model=str(tiny_model_dir), out=str(root / "dec"), steps=10, batch=4,
                                          gan_start=4, save_every=10, pairs=str(root / "pairs.safetensors"),
                                          layout="on"), progress=False)


@pytest.mark.slow
def test_the_trained_layout_decoder_runs_in_a_session_on_every_backend(layout_decoder_dir, tiny_model_dir, tmp_path,
                                                                        monkeypatch, train_seed):
    from engine.backends.onnx_export import export_onnx
    from engine.backends.ort_backend import OnnxRuntimeBackend, network_parity
    from engine.session import WorldSession

    monkeypatch.setenv("MIRAGE_CACHE_DIR", str(tmp_path / "cache"))
    m = WorldModel.load(layout_decoder_dir)
    before = WorldModel.load(tiny_model_dir)
    assert m.decoder_takes_layout and not before.decoder_takes_layout
    for k, v in before.ae.encoder.state_dict().items():
        assert torch.equal(v, m.ae.encoder.state_dict()[k]), "the latent space does not move"
    assert any(not torch.equal(v, torch.zeros_like(v)) for k, v in m.ae.state_dict().items()
               if k.startswith("decoder.layout.to_")), "the layout input trained"
    export_onnx(m, tmp_path / "onnx")
    worst = network_parity(m, tmp_path / "onnx")
    assert max(worst.values()) < 1e-3, worst
    traj = make_trajectory(train_seed, "explore", frames=5, resolution=(m.image_size, m.image_size))
    source = SceneLayout.for_model(generate_level(train_seed), m)
    from engine.eval import render_trajectory

    _, gt_depth = render_trajectory(m, traj, {})
    frames = {}
    for name in ("torch", "onnxruntime"):
        backend = OnnxRuntimeBackend(m, tmp_path / "onnx") if name == "onnxruntime" else "torch"
        sess = WorldSession(m, memory=True, seed=3, layout=source, backend=backend)
        res = [sess.step(p) for p in traj.frames]
        frames[name] = np.stack([r.frame for r in res]).astype(np.float32)
        depth = np.stack([r.depth for r in res])
        rel = np.abs(depth - gt_depth) / gt_depth
        assert rel.mean() < 0.05, f"{name}: with the layout on the decoder's depth is the level's ({rel.mean():.3f})"
        sess.set_layout(False)
        off = sess.step(traj.frames[-1])
        assert np.abs(off.depth - gt_depth[-1]).mean() > np.abs(res[-1].depth - gt_depth[-1]).mean()
    assert np.abs(frames["torch"] - frames["onnxruntime"]).max() <= 2.0


def test_pairs_keep_their_poses_and_give_the_layout_there(tiny_model, egl, train_seed, tmp_path):
    from safetensors.torch import load_file, save_file

    from engine.train.generated_pairs import (
        PairArgs,
        collect_pairs,
        load_pairs,
        pair_layouts,
        save_pairs,
    )

    m = tiny_model
    pairs = collect_pairs(m, PairArgs(seeds=(train_seed, train_seed + 1), every=3, explore_frames=10,
                                      kinds=("explore",)), progress=False)
    assert bool(pairs["layout"].all()), "the tiny generator takes the layout: its walks ran with it"
    traj = make_trajectory(train_seed, "explore", frames=10, resolution=(m.image_size, m.image_size))
    for pose, frame in zip(pairs["pose"], pairs["frame"]):
        want = traj.frames[int(frame)]
        assert np.allclose(pose.numpy(), [*want.position, want.yaw, want.pitch], atol=1e-4)
    px, surface = pair_layouts(pairs, m.image_size, m.cfg.fov_deg, m.cfg.autoencoder.max_depth)
    source = SceneLayout.for_model(generate_level(train_seed), m)
    want = source.pixels_at(traj.frames[int(pairs["frame"][0])])
    assert torch.allclose(px[0].float(), want[0], atol=1e-2)
    # A file of format 1 (no poses) still loads, its pairs with the layout off.
    path = tmp_path / "p.safetensors"
    save_pairs(path, pairs, "tiny")
    old = {k: v for k, v in load_file(str(path)).items() if k not in ("pose", "layout")}
    save_file(old, str(tmp_path / "old.safetensors"), metadata={"format": "mirage-decoder-pairs/1"})
    back = load_pairs(tmp_path / "old.safetensors", (m.latent_channels, m.cells, m.cells), m.image_size)
    assert not bool(back["layout"].any())
    px_off, surface_off = pair_layouts(back, m.image_size, m.cfg.fov_deg, 30.0)
    assert torch.equal(px_off, torch.zeros_like(px)) and torch.equal(surface_off, torch.zeros_like(surface))


def test_more_blur_passes_leave_blurred_latents_only_colour_fields():
    from engine.train.decoder import degrade_latents

    z = torch.randn(64, 8, 8, 8, generator=torch.Generator().manual_seed(1))

    def tv(x: torch.Tensor) -> float:
        return float((x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean())

    torch.manual_seed(0)
    one, blurred = degrade_latents(z, 1.0, passes=1)
    torch.manual_seed(0)
    four, blurred4 = degrade_latents(z, 1.0, passes=4)
    assert torch.equal(blurred, blurred4) and 0 < int(blurred.sum()) < 64
    assert tv(four[blurred]) < tv(one[blurred]) < tv(z[blurred])
    assert torch.equal(four[~blurred], one[~blurred]), "latents left sharp get the same noise either way"


def test_layout_options_of_the_decoder_stage_are_checked_first(tiny_model_dir, tmp_path):
    from engine.train.decoder import DecoderTrainArgs, train_decoder

    for opts, match in (({"layout": "sideways"}, "--layout must be on, off or auto"),
                        ({"blur_passes": 0}, "--blur-passes must be at least 1"),
                        ({"p_drop_layout": 1.0}, "--p-drop-layout"),
                        ({"layout_lr_mult": 0.0}, "--layout-lr-mult must be above 0")):
        with pytest.raises(ValueError, match=match):
            train_decoder(DecoderTrainArgs(model=str(tiny_model_dir), out=str(tmp_path / "d"), steps=1, batch=2,
                                           **{"layout": "on", **opts}), progress=False)


def test_the_trainer_widens_a_geometry_only_layout_input(tiny_model_dir, tmp_path, egl):
    """A decoder of v2 stages 2-3 (nine layout channels) given to `mirage train decoder` gains the
    surface-coordinate channels: the model it writes takes 25, and their weights, added at zero, train."""
    import shutil

    from safetensors.torch import load_file, save_file

    from engine.model.config import ModelConfig
    from engine.model.world_model import write_checksums
    from engine.train.decoder import DecoderTrainArgs, train_decoder

    src = tmp_path / "nine"
    shutil.copytree(tiny_model_dir, src)
    cfg = ModelConfig.load(src / "config.json")
    cfg.autoencoder = replace(cfg.autoencoder, layout_channels=LAYOUT_CHANNELS)
    cfg.save(src / "config.json")
    torch.manual_seed(0)
    nine = Autoencoder(cfg.autoencoder)
    state = {**load_file(str(src / "autoencoder.safetensors")),
             **{k: v + 0.05 * torch.randn_like(v) for k, v in nine.state_dict().items() if k.startswith("decoder.layout.")}}
    save_file(state, str(src / "autoencoder.safetensors"))
    write_checksums(src)
    out = train_decoder(DecoderTrainArgs(model=str(src), out=str(tmp_path / "dec"), steps=3, batch=4, gan_start=100,
                                         save_every=3, layout="on"), progress=False)
    m = WorldModel.load(out)
    assert m.cfg.autoencoder.layout_channels == PIXEL_CHANNELS
    w = m.ae.decoder.layout.embed[1].weight
    cut = LAYOUT_CHANNELS * m.cfg.autoencoder.unshuffle ** 2
    assert w.shape[1] == PIXEL_CHANNELS * m.cfg.autoencoder.unshuffle ** 2
    assert w[:, cut:].abs().max() > 0, "the surface-coordinate weights started at zero and trained"
