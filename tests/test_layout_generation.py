"""Generation grounded in the scene layout (issue "World model v2"): the layout's cells, the
conditioning stack with and without them, a layout-free generator widened without changing what
it computes, and WorldSession's layout modes, on the real layout renderer and a tiny trained model."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.model_fixtures import tiny_model, tiny_model_dir  # noqa: F401 - fixtures

pytestmark = pytest.mark.usefixtures("egl")


def _walk(seed: int, frames: int, size: int):
    from engine.trajectory import make_trajectory

    return make_trajectory(seed, "explore", frames=frames, resolution=(size, size)).frames


def test_layout_cells_are_the_levels_geometry(level):
    from engine.model.autoencoder import cell_depth
    from engine.model.layout_cells import LAYOUT_CHANNELS, layout_cells
    from engine.trajectory import make_trajectory
    from engine.world.layout import LayoutRenderer
    from engine.world.renderer import Renderer

    poses = make_trajectory(level, "turnaround", resolution=(64, 64)).frames[::8][:6]
    lr, r = LayoutRenderer(level, 64, 64, 70.0), Renderer(level, 64, 64, 70.0)
    try:
        feats, cd = layout_cells(lr.layout(poses), 8)
        _, depth = r.render(poses)
    finally:
        lr.close()
        r.close()
    assert feats.shape == (6, LAYOUT_CHANNELS, 8, 8) and cd.shape == (6, 1, 8, 8)
    # Class shares cover every pixel inside a closed level; normals are unit-ish averages.
    assert torch.allclose(feats[:, 4:].sum(1), torch.ones(6, 8, 8), atol=1e-5)
    assert feats[:, 1:4].norm(dim=1).max() <= 1.0 + 1e-4
    # The cell depth memory lifts with is the renderer's own, from geometry alone.
    want = cell_depth(torch.from_numpy(depth)[:, None], 8)
    assert torch.allclose(cd, want, rtol=1e-3, atol=1e-3)
    assert torch.allclose(feats[:, :1], want.clamp(min=0.05).log(), atol=1e-3)
    # Classes and normals agree: floor faces up, ceiling down, walls sideways (camera y is up, pitch 0).
    ny = feats[:, 2]
    floor, wall, ceiling = feats[:, 4] == 1, feats[:, 5] == 1, feats[:, 6] == 1
    assert floor.any() and wall.any() and ceiling.any()
    assert (ny[floor] > 0.99).all() and (ny[ceiling] < -0.99).all() and (ny[wall].abs() < 0.01).all()


def test_stack_keeps_every_offset_with_or_without_the_layout():
    from engine.model.conditioning import (
        channel,
        channel_widths,
        cond_channels,
        has_layout,
        with_channels,
    )

    c = 4
    assert cond_channels(c, 0) + 9 == cond_channels(c, 9)
    with_l = torch.randn(2, cond_channels(c, 9), 3, 3)
    without = with_l[:, :cond_channels(c, 0)]
    assert has_layout(with_l, c) and not has_layout(without, c)
    for name, _ in channel_widths(c, False):
        assert torch.equal(channel(with_l, name, c), channel(without, name, c))
    swapped = with_channels(with_l, c, prev=torch.zeros(2, c, 3, 3))
    assert torch.equal(channel(swapped, "layout", c), channel(with_l, "layout", c))
    with pytest.raises(ValueError, match="layout_channels"):
        cond_channels(c, 5)


def test_widened_generator_computes_what_the_layout_free_one_did(tiny_model):  # noqa: F811
    import copy

    from engine.model.conditioning import cond_channels
    from engine.model.generator import Generator
    from engine.train.world import widen_input

    cfg = copy.deepcopy(tiny_model.cfg.generator)
    c = tiny_model.latent_channels
    cfg.layout_channels = 0
    old = Generator(cfg, c).eval()
    with torch.no_grad():
        for p in old.parameters():
            p.normal_(0, 0.1)
    cfg.layout_channels = 9
    new = Generator(cfg, c).eval()
    new.load_state_dict(widen_input(old.state_dict(), new))
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(2, c, 8, 8, generator=g), torch.rand(2, generator=g)
    cond = torch.randn(2, cond_channels(c, 0), 8, 8, generator=g)
    layout = torch.randn(2, 9, 8, 8, generator=g)
    with torch.no_grad():
        assert torch.allclose(old(x, t, cond), new(x, t, torch.cat([cond, layout], 1)), atol=1e-5)


def test_session_with_layout_makes_a_first_frame_and_lifts_memory_with_exact_depth(tiny_model):  # noqa: F811
    from engine.model.layout_cells import SceneLayout
    from engine.session import WorldSession
    from engine.world.levels import generate_level

    assert tiny_model.takes_layout
    seed = 1_000_003
    size = tiny_model.image_size
    poses = _walk(seed, 6, size)
    scene = SceneLayout(generate_level(seed), size, tiny_model.cells, tiny_model.cfg.fov_deg)
    try:
        blind = WorldSession(tiny_model, memory=True, steps=1, seed=0)
        with pytest.raises(RuntimeError, match="layout"):
            blind.step(poses[0])
        s = WorldSession(tiny_model, memory=True, steps=1, seed=0, layout=scene)
        first = s.step(poses[0])            # no observation at all: the layout grounds it
        assert not first.observed and first.finite and "layout" in first.timings
        # The memory's points are the layout's cells lifted with the layout's depth: on the level's surfaces.
        _, depth = scene.cells_at(poses[0])
        assert torch.allclose(s._prev[1], depth)
        for p in poses[1:]:
            s.step(p)
        # Layout off mid-walk: the same network, memory lifting with the model's own depth again.
        s.set_layout(False)
        off = s.step(poses[-1])
        assert off.timings["layout"] < 1.0 and not torch.allclose(s._prev[1], scene.cells_at(poses[-1])[1])
        s.set_layout(True)
        assert s.layout_on
    finally:
        scene.close()


def test_layout_free_model_refuses_a_layout(tiny_model_dir, tmp_path):  # noqa: F811
    import json
    import shutil

    from engine.model.layout_cells import SceneLayout
    from engine.model.world_model import WorldModel
    from engine.session import WorldSession
    from engine.world.levels import generate_level

    # A v1-style model: the same weights less the layout inputs.
    d = tmp_path / "v1"
    shutil.copytree(tiny_model_dir, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["generator"]["layout_channels"] = 0
    (d / "config.json").write_text(json.dumps(cfg))
    from safetensors.torch import load_file, save_file

    state = load_file(str(d / "generator.safetensors"))
    state["inp.weight"] = state["inp.weight"][:, :-9].contiguous()
    save_file(state, str(d / "generator.safetensors"))
    from engine.model.world_model import write_checksums

    write_checksums(d)
    m = WorldModel.load(d)
    assert not m.takes_layout
    scene = SceneLayout(generate_level(1_000_003), m.image_size, m.cells, m.cfg.fov_deg)
    try:
        with pytest.raises(ValueError, match="takes no scene layout"):
            WorldSession(m, layout=scene)
    finally:
        scene.close()
    WorldSession(m).reset()   # layout off works as v1 did


def test_trajectory_may_observe_nothing(tmp_path):
    from engine.trajectory import make_trajectory, read_trajectory, write_trajectory

    t = make_trajectory(1_000_003, "explore", frames=5, resolution=(64, 64))
    t.observe = 0
    write_trajectory(t, tmp_path / "t.json")
    assert read_trajectory(tmp_path / "t.json").observe == 0


def test_eval_refuses_layout_off_for_a_walk_that_observes_nothing(tiny_model_dir):  # noqa: F811
    from engine.eval import run_eval
    from engine.trajectory import make_trajectory

    t = make_trajectory(1_000_003, "explore", frames=4, resolution=(64, 64))
    t.observe = 0
    with pytest.raises(ValueError, match="observe is 0"):
        run_eval([("blind", t)], tiny_model_dir, steps=1, progress=False, layout=False)
    out = run_eval([("blind", t)], tiny_model_dir, steps=1, progress=False, layout=True)
    assert out["layout"] == "on" and np.isfinite(out["summary"]["memory_on"]["psnr_gt"])
