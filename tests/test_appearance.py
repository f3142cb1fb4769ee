"""The appearance groups (issue "World model v2", the step after the layout decoder): the observed
palette, per material class the mean latent of the session's observations of that class, spread
over the target view by its layout. Checked on hand-made cells, then a tiny model fine-tuned with them
runs in a real session with the real layout renderer and exports to ONNX."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.model_fixtures import fine_tune_tiny, tiny_model_dir  # noqa: F401 - fixtures


def _shares(classes: torch.Tensor, k: int = 5) -> torch.Tensor:
    """Class index per cell (B, S, S) -> one-hot shares (B, K, S, S)."""
    return torch.nn.functional.one_hot(classes, k).permute(0, 3, 1, 2).float()


def _layout(classes: torch.Tensor) -> torch.Tensor:
    """Layout cells (B, 9, S, S) whose class shares are one-hot `classes` (B, S, S)."""
    lay = torch.zeros(classes.shape[0], 9, *classes.shape[1:])
    lay[:, 4:] = _shares(classes)
    return lay


def test_each_class_takes_the_look_of_its_own_observed_cells():
    from engine.model.conditioning import palette_of, spread_palette

    c, s = 3, 4
    floor, wall = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([-1.0, 0.0, 5.0])
    # An observation: the top half wall, the bottom half floor.
    src_cls = torch.ones(1, s, s, dtype=torch.long)
    src_cls[:, s // 2:] = 0
    z = torch.where(src_cls[:, None] == 0, floor[None, :, None, None], wall[None, :, None, None])
    z = z + 0.01 * torch.randn(1, c, s, s)
    palette = palette_of(z, _layout(src_cls))
    # A second observation of floor only adds to the floor's mean.
    more = palette_of(torch.zeros(1, c, s, s) + floor[None, :, None, None], _layout(torch.zeros(1, s, s).long()))
    palette = tuple(a + b for a, b in zip(palette, more))
    # Target: the left half floor, the right half wall, one cell ceiling (class 2, never observed).
    tgt_cls = torch.zeros(1, s, s, dtype=torch.long)
    tgt_cls[:, :, s // 2:] = 1
    tgt_cls[0, 0, 0] = 2
    look, have = spread_palette(palette, _layout(tgt_cls), c)
    assert look.shape == (1, c, s, s) and have.shape == (1, 1, s, s)
    assert torch.allclose(look[0, :, 1, 0], floor, atol=0.02)
    assert torch.allclose(look[0, :, 2, 3], wall, atol=0.02)
    # The unobserved class has no look and says so.
    assert have[0, 0, 0, 0] == 0 and torch.equal(look[0, :, 0, 0], torch.zeros(c))
    assert (have.flatten()[1:] == 1).all()
    # No palette (memory off, nothing observed) or layout off: zeros.
    for pal, lay in ((None, _layout(tgt_cls)), (palette, torch.zeros(1, 9, s, s))):
        look, have = spread_palette(pal, lay, c)
        assert look.shape == (1, c, s, s) and not look.any() and not have.any()


def test_appearance_refused_without_the_layout():
    from engine.model.conditioning import cond_channels
    from engine.model.config import ModelConfig

    with pytest.raises(ValueError, match="appearance"):
        cond_channels(4, 0, appearance=True)
    d = ModelConfig().to_dict()
    d["generator"].update(layout_channels=0, appearance=True)
    with pytest.raises(ValueError, match="generator.appearance"):
        ModelConfig.from_dict(d)


@pytest.mark.usefixtures("egl")
def test_a_generator_given_appearance_starts_as_it_was_and_runs_everywhere(tiny_model_dir, tmp_path):  # noqa: F811
    from engine.backends.onnx_export import export_onnx
    from engine.backends.ort_backend import OnnxRuntimeBackend, network_parity
    from engine.model.layout_cells import SceneLayout
    from engine.model.world_model import WorldModel
    from engine.session import WorldSession
    from engine.trajectory import make_trajectory
    from engine.world.levels import generate_level

    out = fine_tune_tiny(tiny_model_dir, tmp_path / "look", appearance="on", lr=0.0)
    assert json.loads((out / "config.json").read_text())["generator"]["appearance"] is True
    model, base = WorldModel.load(out), WorldModel.load(tiny_model_dir)
    assert model.takes_appearance and not base.takes_appearance
    # At learning rate 0 the added input is still zero: the same frames as the model it came from.
    seed = 1_000_004
    size = model.image_size
    poses = make_trajectory(seed, "explore", frames=5, resolution=(size, size)).frames
    scene = SceneLayout.for_model(generate_level(seed), model)
    try:
        from engine.eval import render_trajectory

        gt, _ = render_trajectory(model, make_trajectory(seed, "explore", frames=5, resolution=(size, size)), {})
        a = WorldSession(model, memory=True, steps=1, seed=0, layout=scene)
        b = WorldSession(base, memory=True, steps=1, seed=0, layout=scene)
        a.observe(gt[0], poses[0])
        b.observe(gt[0], poses[0])
        assert a._palette is not None and b._palette is None   # only a model that takes it keeps one
        for p in poses[1:]:
            fa, fb = a.step(p), b.step(p)
            assert np.array_equal(fa.frame, fb.frame)
        off = WorldSession(model, memory=False, steps=1, seed=0, layout=scene)
        off.observe(gt[0], poses[0])
        assert off._palette is None                             # the palette is part of memory
        # Trained a few steps at a real rate, the appearance input moves and a session runs on it,
        # on onnxruntime too, with the same conditioning width as torch.
        trained = WorldModel.load(fine_tune_tiny(tiny_model_dir, tmp_path / "look2", appearance="on",
                                                 appearance_lr_mult=10.0))
        assert trained.gen.look.weight.abs().sum() > 0
        export_onnx(trained, tmp_path / "onnx")
        worst = network_parity(trained, tmp_path / "onnx")
        assert max(worst.values()) < 1e-3, worst
        frames = {}
        for name in ("torch", "onnxruntime"):
            backend = OnnxRuntimeBackend(trained, tmp_path / "onnx") if name == "onnxruntime" else "torch"
            s = WorldSession(trained, memory=True, steps=1, seed=0, layout=scene, backend=backend)
            s.observe(gt[0], poses[0])
            frames[name] = np.stack([s.step(p).frame for p in poses[1:]]).astype(np.float32)
        # The trained palette input changes what is made: the same session without its palette differs.
        s = WorldSession(trained, memory=True, steps=1, seed=0, layout=scene)
        s.observe(gt[0], poses[0])
        s._palette = None
        blind = np.stack([s.step(p).frame for p in poses[1:]]).astype(np.float32)
        assert np.abs(blind - frames["torch"]).max() > 0
        assert np.abs(frames["torch"] - frames["onnxruntime"]).max() <= 2.0
    finally:
        scene.close()


def test_appearance_stays_what_the_run_was_built_with(tiny_model_dir, tmp_path):  # noqa: F811
    from engine.train.world import WorldTrainArgs, train_world

    out = fine_tune_tiny(tiny_model_dir, tmp_path / "run", appearance="on").parent
    with pytest.raises(ValueError, match="appearance"):
        train_world(WorldTrainArgs(autoencoder=str(tiny_model_dir.parent.parent / "ae"), out=str(out), steps=5,
                                   batch=4, seeds=(5, 6), appearance="off"), progress=False)


def test_training_palette_holds_only_the_observed_frames_before_the_target(tiny_model_dir):  # noqa: F811
    """In training an example's palette is what a session would hold at its target frame: the walk's
    observed frames before it (never the target itself, never a generated frame), none without memory."""
    from engine.model.conditioning import channel
    from engine.model.config import ModelConfig
    from engine.train.world import _load_walks
    from engine.train.world_data import WalkSampler

    world = tiny_model_dir.parent
    cfg = ModelConfig.load(world / "config.json")
    walks = _load_walks(world / "walks.safetensors")
    for w in walks:
        w.observe = min(3, len(w.z) - 1)
    sampler = WalkSampler(walks, cells=cfg.autoencoder.latent_size, fov_deg=cfg.fov_deg, shift=cfg.latent_shift,
                          scale=cfg.latent_scale, rng=np.random.default_rng(0), layout=True, appearance=True,
                          p_drop_layout=0.0, p_drop_memory=0.0)
    c = walks[0].z.shape[1]
    for wi, w in enumerate(walks):
        sums, weight = sampler._palettes[wi]
        assert len(weight) == w.observe + 1 and not weight[0].any()
        assert torch.allclose(weight[1], w.layout[0, 4:].float().sum(dim=(1, 2)))   # frame 0's cells, by class
    # Target 1 sees frame 0's palette only; a target after the observations sees all of them.
    _, cond, _ = sampler.batch_at([(0, 1), (0, 2), (0, len(walks[0].z) - 1)], "cpu")
    look = channel(cond, "appearance", c)
    z0 = (walks[0].z[:1].float() - cfg.latent_shift) / cfg.latent_scale
    from engine.model.conditioning import palette_of, spread_palette

    want, _ = spread_palette(palette_of(z0, walks[0].layout[:1].float()), walks[0].layout[1:2].float(), c)
    assert torch.allclose(look[0], want[0], atol=1e-4)
    n, last = walks[0].observe, len(walks[0].z) - 1
    zs = (walks[0].z[:n].float() - cfg.latent_shift) / cfg.latent_scale
    sums, weight = palette_of(zs, walks[0].layout[:n].float())
    want, _ = spread_palette((sums.sum(0, keepdim=True), weight.sum(0, keepdim=True)),
                             walks[0].layout[last:last + 1].float(), c)
    assert torch.allclose(look[2], want[0], atol=1e-4)
    # Memory dropped: no palette.
    sampler.p_drop = 1.0
    _, cond, _ = sampler.batch_at([(0, 2)], "cpu")
    assert not channel(cond, "appearance_mask", c).any()
