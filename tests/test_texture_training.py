"""`mirage train texture` (engine/train/texture.py): the texture field alone learns, on real rendered
views of training worlds, to draw the patterns its locks describe; nothing else in the model moves."""
from __future__ import annotations

import csv

import pytest
import torch
from model_fixtures import tiny_model_dir  # noqa: F401  (pytest fixture; coded_dir comes from conftest)

from engine.model.world_model import WorldModel


def test_the_texture_stage_trains_the_field_alone(coded_dir, tmp_path, train_seed):
    from engine.train.texture import (
        TextureTrainArgs,
        field_loss,
        texture_examples,
        train_texture,
    )

    before = WorldModel.load(coded_dir)
    torch.manual_seed(0)
    out = train_texture(TextureTrainArgs(model=str(coded_dir), out=str(tmp_path / "tex"), steps=30, batch=4,
                                         seeds=(train_seed, train_seed + 1), views=4, save_every=15),
                        progress=False)
    after = WorldModel.load(out)
    old, new = before.ae.state_dict(), after.ae.state_dict()
    changed = {k for k in old if not torch.equal(old[k], new[k])}
    assert changed and all(k.startswith("decoder.texture.") for k in changed), sorted(changed)[:5]
    g0, g1 = before.gen.state_dict(), after.gen.state_dict()
    assert all(torch.equal(g0[k], g1[k]) for k in g0)
    # On the very views it trained on, the trained field's frames are closer to ground truth than
    # the untrained field's, measured with the same loss.
    data = texture_examples(before, (train_seed, train_seed + 1), 4, (0.2, 0.6), progress=False)
    with torch.no_grad():
        first, _ = field_loss(before.ae.decoder.texture, data["layout"], data["base"], data["x"], data["seg"], 3.0)
        last, _ = field_loss(after.ae.decoder.texture, data["layout"], data["base"], data["x"], data["seg"], 3.0)
    assert float(last) < float(first), (float(first), float(last))
    rows = list(csv.DictReader(open(tmp_path / "tex" / "texture_loss.csv")))
    assert rows and int(rows[-1]["step"]) == 20


def test_the_refine_stage_adds_a_refiner_and_trains_it_alone(coded_dir, tmp_path, train_seed):
    """`--part refine` gives a model without a refiner one (its config says so, and it loads), trains
    it alone on the frames the field draws, and brings those frames closer to ground truth; with the
    layout off the refiner changes nothing."""
    from engine.model.refine import Refiner
    from engine.train.texture import (
        TextureTrainArgs,
        field_loss,
        texture_examples,
        train_texture,
    )

    before = WorldModel.load(coded_dir)
    assert before.ae.decoder.refine is None
    torch.manual_seed(0)
    out = train_texture(TextureTrainArgs(model=str(coded_dir), out=str(tmp_path / "ref"), steps=30, batch=4, lr=3e-3,
                                         seeds=(train_seed, train_seed + 1), views=4, save_every=15, part="refine",
                                         refine_width=8, energy_weight=1.0), progress=False)
    after = WorldModel.load(out)
    assert after.cfg.autoencoder.refine_width == 8 and after.ae.decoder.refine is not None
    old, new = before.ae.state_dict(), after.ae.state_dict()
    assert all(torch.equal(old[k], new[k]) for k in old)
    assert any(k.startswith("decoder.refine.") for k in new)
    data = texture_examples(before, (train_seed, train_seed + 1), 4, (0.2, 0.6), progress=False, part="refine")
    with torch.no_grad():
        # An untrained refiner adds nothing (its last convolution starts at zero): the field's frame.
        untrained = Refiner(8)
        assert torch.equal(untrained(data["base"], data["layout"][:, :26]), data["base"])
        first, _ = field_loss(untrained, data["layout"], data["base"], data["x"], data["seg"], 3.0, "refine", 1.0)
        last, _ = field_loss(after.ae.decoder.refine, data["layout"], data["base"], data["x"], data["seg"], 3.0, "refine",
                             1.0)
        z = after.encode(data["x"][:2])
        assert torch.equal(after.ae.decoder(z, None)[0], before.ae.decoder(z, None)[0])
    assert float(last) < float(first), (float(first), float(last))
    assert (tmp_path / "ref" / "refine_loss.csv").is_file()


def test_the_energy_loss_asks_for_as_much_detail_as_ground_truth_wherever_it_falls(egl, train_seed):
    """On real rendered frames: a frame moved by a pixel (the same detail, elsewhere in each window) costs
    the energy term little and the pixel loss much; a blurred frame (less detail) and an over-sharpened
    one (more) both cost it much."""
    import torch.nn.functional as F

    from engine.model.autoencoder import to_model_image
    from engine.train.texture import TextureTrainArgs, energy_loss, train_texture
    from engine.trajectory import make_trajectory
    from engine.world.levels import generate_level
    from engine.world.renderer import Renderer

    traj = make_trajectory(train_seed, "explore", frames=16, resolution=(64, 64))
    r = Renderer(generate_level(train_seed), 64, 64, traj.fov_deg)
    rgb, _ = r.render(traj.frames[::4])
    r.close()
    x = to_model_image(torch.from_numpy(rgb))
    moved = torch.roll(x, 1, dims=-1)
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, 1)
    sharpened = x + (x - blurred)
    assert float(energy_loss(x, x)) < 1e-8
    shift, blur, sharp = (float(energy_loss(y, x)) for y in (moved, blurred, sharpened))
    assert shift < 0.25 * min(blur, sharp), (shift, blur, sharp)
    assert float(F.mse_loss(moved, x)) > float(F.mse_loss(blurred, x)), "the pixel loss prefers the blur"
    with pytest.raises(ValueError, match="--energy-weight"):
        train_texture(TextureTrainArgs(model="unused", out="unused", energy_weight=-1.0), progress=False)


def test_the_texture_stage_resumes_and_refuses_a_model_without_codes(coded_dir, tiny_model_dir, tmp_path, train_seed):
    from engine.train.texture import TextureTrainArgs, train_texture

    args = dict(model=str(coded_dir), out=str(tmp_path / "tex"), batch=2, seeds=(train_seed, train_seed + 1), views=2,
                save_every=2)
    train_texture(TextureTrainArgs(steps=2, **args), progress=False)
    state = (tmp_path / "tex" / "state.json").read_text()
    assert '"step": 2' in state
    train_texture(TextureTrainArgs(steps=4, **args), progress=False)
    assert '"step": 4' in (tmp_path / "tex" / "state.json").read_text()
    with pytest.raises(ValueError, match="appearance_dim"):
        train_texture(TextureTrainArgs(model=str(tiny_model_dir), out=str(tmp_path / "none"), steps=1), progress=False)


@pytest.mark.parametrize("missing", [1, 2])
def test_a_model_saved_before_the_lock_flags_loads_and_draws_as_it_did(coded_dir, tmp_path, train_seed, missing):
    """A coded model from before the pattern lock's brick flag (missing 1) or its checker flag too
    (missing 2): config layout_channels that many fewer, the field's code convs that many inputs
    fewer. It loads widened, with the flags read at zero weight: it decodes exactly as the same
    weights do today with the flags' weights at zero."""
    import json
    import shutil

    from safetensors.torch import load_file, save_file

    from engine.eval import render_trajectory
    from engine.model.appearance import own_look_layout
    from engine.model.autoencoder import to_model_image
    from engine.model.layout_cells import SceneLayout
    from engine.trajectory import make_trajectory
    from engine.world.levels import generate_level

    today = tmp_path / "today"
    shutil.copytree(coded_dir, today)
    state = load_file(str(today / "autoencoder.safetensors"))
    for name in ("freq", "cond", "film"):
        state[f"decoder.texture.{name}.weight"][:, -missing:] = 0.0   # the flags' columns at zero
    save_file(state, str(today / "autoencoder.safetensors"))
    (today / "checksums.json").unlink()
    old = tmp_path / "old"
    shutil.copytree(today, old)
    for name in ("freq", "cond", "film"):
        state[f"decoder.texture.{name}.weight"] = state[f"decoder.texture.{name}.weight"][:, :-missing].contiguous()
    save_file(state, str(old / "autoencoder.safetensors"))
    cfg = json.loads((old / "config.json").read_text())
    cfg["autoencoder"]["layout_channels"] -= missing
    (old / "config.json").write_text(json.dumps(cfg))

    a, b = WorldModel.load(today), WorldModel.load(old)
    assert b.cfg.autoencoder.layout_channels == a.cfg.autoencoder.layout_channels
    traj = make_trajectory(train_seed, "explore", frames=3, resolution=(a.image_size, a.image_size))
    gt, _ = render_trajectory(a, traj, {})
    source = SceneLayout.for_model(generate_level(train_seed), a)
    pixels, uv, seg = source.views_of(traj.frames)
    x = to_model_image(torch.from_numpy(gt))
    with torch.no_grad():
        lay = own_look_layout(a.ae.appearance, x, pixels, uv, seg, torch.Generator().manual_seed(0))
        z = a.encode(x)
        assert torch.equal(a.decode(z, lay)[0], b.decode(z, lay)[0])
