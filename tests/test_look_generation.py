"""A generator that takes the looks (engine/model/look_cells.py): each latent cell's share of its
segments' codes and pattern locks, read from the decoder's own input; the conditioning stack with
them; walks whose frames carry their walk's looks; and a session feeding a look-taking generator,
on the real renderer, the real layout and a tiny model trained for a few steps."""
from __future__ import annotations

import math

import pytest
import torch

from tests.model_fixtures import coded_dir, tiny_model_dir  # noqa: F401 - fixtures

pytestmark = pytest.mark.usefixtures("egl")


def _views(level, poses, size: int):
    from engine.model.layout_cells import PIXEL_CHANNELS, SceneLayout

    source = SceneLayout(level, size, size // 8, 70.0)
    try:
        pixels, uv, seg = source.views_of(poses)
    finally:
        source.close()
    return pixels[:, :PIXEL_CHANNELS], uv, seg


def test_look_cells_carry_each_segments_look_where_the_layout_draws_it(level):
    from engine.model.appearance import look_layout
    from engine.model.look_cells import look_cell_channels, look_cells
    from engine.model.pattern_spectrum import LOCK
    from engine.model.segments import MAX_SEGMENTS
    from engine.trajectory import make_trajectory

    d, size, cells = 4, 64, 8
    poses = make_trajectory(level, "turnaround", resolution=(size, size)).frames[::10][:4]
    geometry, uv, seg = _views(level, poses, size)
    g = torch.Generator().manual_seed(0)
    codes = torch.randn(1, MAX_SEGMENTS, d, generator=g)
    locks = torch.zeros(1, MAX_SEGMENTS, LOCK)
    locks[..., 0] = 1.0                                   # every segment striped along u ...
    locks[..., 2] = math.log(2.0)                         # ... twice a metre
    locks[..., 4:6] = torch.rand(1, MAX_SEGMENTS, 2, generator=g)
    looks = torch.cat([locks, codes], dim=-1).expand(len(poses), -1, -1)
    cellsd = look_cells(look_layout(geometry, uv, seg, looks), cells, d)
    assert cellsd.shape == (len(poses), look_cell_channels(d), cells, cells)
    k = size // cells
    blocks = seg.unfold(2, k, k).unfold(3, k, k).reshape(len(poses), cells, cells, k * k)
    pure = (blocks == blocks[..., :1]).all(-1)
    one = pure & (blocks[..., 0] >= 0)
    none = pure & (blocks[..., 0] < 0)                    # ceiling, corridor: no segment, no look
    assert one.sum() > 20 and none.sum() > 5
    # A cell inside one segment holds that segment's code and lock flags exactly.
    n, y, x = one.nonzero(as_tuple=True)
    want = codes[0, blocks[n, y, x, 0]]
    assert torch.allclose(cellsd[n, :d, y, x], want, atol=1e-5)
    assert torch.allclose(cellsd[n, d, y, x], torch.ones(len(n))) and torch.all(cellsd[n, d + 1, y, x] == 0)
    assert torch.allclose(cellsd[n, d + 2, y, x], torch.full((len(n),), math.log(2.0)), atol=1e-5)
    # The phase channels: the stripe's cosine and sine, averaged over the cell (at most 1) and at its centre.
    pooled, centre = cellsd[:, d + 6:d + 10], cellsd[:, d + 10:]
    assert pooled.abs().max() <= 1.0 + 1e-5 and centre.abs().max() <= 1.0 + 1e-5
    c = k // 2
    phase = 2 * math.pi * (2.0 * uv[n, 0, y * k + c, x * k + c] + locks[0, seg[n, 0, y * k + c, x * k + c], 4])
    assert torch.allclose(centre[n, 0, y, x], torch.cos(phase), atol=1e-3)
    assert torch.allclose(centre[n, 2, y, x], torch.sin(phase), atol=1e-3)
    # The v axis holds no pattern: nothing of it reaches the cells.
    assert torch.all(centre[:, 1] == 0) and torch.all(pooled[:, 1] == 0)
    assert torch.all(cellsd[n[:1], :, y[:1], x[:1]].isfinite())
    assert torch.all(cellsd.permute(0, 2, 3, 1)[none] == 0)
    # Memory off (every look zero): nothing at all.
    assert torch.all(look_cells(look_layout(geometry, uv, seg, torch.zeros_like(looks)), cells, d) == 0)
    with pytest.raises(ValueError, match="channel"):
        look_cells(geometry, cells, d)


def test_stack_with_looks_keeps_every_other_offset():
    from engine.model.conditioning import (
        channel,
        channel_widths,
        cond_channels,
        has_layout,
        with_channels,
    )

    c, look = 4, 18
    assert cond_channels(c, 9, look) == cond_channels(c, 9) + look
    full = torch.randn(2, cond_channels(c, 9, look), 3, 3)
    plain = full[:, :cond_channels(c, 9)]
    assert has_layout(full, c) and has_layout(plain, c)
    for name, _ in channel_widths(c, True):
        assert torch.equal(channel(full, name, c), channel(plain, name, c))
    assert channel(full, "look", c).shape[1] == look
    swapped = with_channels(full, c, prev=torch.zeros(2, c, 3, 3))
    assert swapped.shape == full.shape and torch.equal(channel(swapped, "look", c), channel(full, "look", c))
    with pytest.raises(ValueError, match="look_channels"):
        cond_channels(c, 0, look)


def test_a_walks_frames_carry_one_look_per_segment(coded_dir, train_seed):  # noqa: F811
    from engine.model.world_model import WorldModel
    from engine.train.encoded_walks import build_walks

    model = WorldModel.load(coded_dir)
    walks = build_walks(model, [train_seed], model.cfg.fov_deg, "cpu", progress=False, looks=True)
    d = model.cfg.autoencoder.appearance_dim
    for w in walks:
        assert w.look.shape == (len(w.z), d + 14, model.cells, model.cells) and w.look.dtype == torch.float16
    w = walks[0]
    code = w.look[:, :d].float()
    drawn = code.abs().sum(1) > 0                          # (L, S, S) cells with a look
    assert drawn.float().mean() > 0.2
    # The same code wherever it appears, whatever the frame: one look per segment for the walk.
    distinct = torch.unique(code.permute(0, 2, 3, 1)[drawn].round(decimals=2), dim=0)
    assert 1 <= len(distinct) <= 3 * 10 * 8               # segments' codes, plus cells mixing two segments
    assert len(distinct) < drawn.sum() / 20


def test_a_look_taking_generator_trains_and_its_session_draws_the_looks_into_it(coded_dir, tmp_path):  # noqa: F811
    import shutil

    from engine.model.layout_cells import SceneLayout
    from engine.model.world_model import WorldModel
    from engine.session import WorldSession
    from engine.train.world import WorldTrainArgs, train_world
    from engine.trajectory import make_trajectory
    from engine.world.levels import generate_level

    src = WorldModel.load(coded_dir)
    assert not src.takes_looks
    ae = tmp_path / "ae"
    shutil.copytree(coded_dir, ae)
    with pytest.raises(ValueError, match="--looks on needs --layout on"):
        train_world(WorldTrainArgs(autoencoder=str(ae), out=str(tmp_path / "bad"), steps=1, batch=2, seeds=(5, 6),
                                   layout=False, looks=True), progress=False)
    torch.manual_seed(0)
    out = train_world(WorldTrainArgs(autoencoder=str(ae), out=str(tmp_path / "w"), steps=4, batch=4, seeds=(5, 6),
                                     save_every=100, init=str(coded_dir), looks=True), progress=False)
    model = WorldModel.load(out)
    d = model.cfg.autoencoder.appearance_dim
    assert model.takes_looks and model.cfg.generator.look_channels == d + 14
    # The new inputs started at zero and training gave them weight.
    assert model.gen.inp.weight[:, -(d + 14):].abs().sum() > 0
    # Resuming with the looks off is refused: the run's generator takes them.
    with pytest.raises(ValueError, match="--looks on"):
        train_world(WorldTrainArgs(autoencoder=str(ae), out=str(tmp_path / "w"), steps=5, batch=4, seeds=(5, 6),
                                   looks=False), progress=False)
    seed = 1_000_002
    size = model.image_size
    pose = make_trajectory(seed, "explore", frames=4, resolution=(size, size)).frames[0]
    scene = SceneLayout.for_model(generate_level(seed), model)
    g = torch.Generator().manual_seed(1)
    try:
        latents = {}
        for memory in (True, False):
            for name, scale in (("plain", 0.0), ("drawn", 3.0)):
                s = WorldSession(model, memory=memory, steps=1, seed=0, layout=scene)
                # Every segment's look set beforehand: no draw from the prior, so the sampler's noise is the same.
                s.code_known[:] = True
                s.codes[:] = scale * torch.randn(s.codes.shape, generator=g)
                assert s.step(pose).finite
                latents[memory, name] = s.last_latent
        # With memory on the looks reach the generator: other looks, another latent for the same pose and noise
        # (a tiny model trained four steps moves it little, but it moves).
        assert not torch.equal(latents[True, "plain"], latents[True, "drawn"])
        # Memory off keeps and draws no looks: whatever a session holds, the generator sees none.
        assert torch.equal(latents[False, "plain"], latents[False, "drawn"])
    finally:
        scene.close()
