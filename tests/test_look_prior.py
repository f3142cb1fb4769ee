"""The appearance prior (engine/model/look_prior.py, `mirage train look-prior`): measured on real
rendered training views, kept with the autoencoder, and what a session draws unseen segments from."""
from __future__ import annotations

import pytest
import torch
from model_fixtures import tiny_model_dir  # noqa: F401  (pytest fixture; coded_dir comes from conftest)

from engine.model.layout_cells import SceneLayout
from engine.model.segments import SEGMENT_CLASSES
from engine.model.world_model import WorldModel
from engine.trajectory import make_trajectory
from engine.world.levels import generate_level


@pytest.fixture(scope="module")
def prior_dir(coded_dir, tmp_path_factory, train_seed):
    from engine.train.look_prior import build_look_prior

    return build_look_prior(coded_dir, tmp_path_factory.mktemp("prior") / "model", (train_seed, train_seed + 3), 12,
                            progress=False)


def test_the_look_prior_holds_the_looks_training_views_show(prior_dir, coded_dir, train_seed):
    from engine.train.look_prior import measure_looks

    m = WorldModel.load(prior_dir)
    prior = m.ae.prior
    assert prior is not None and m.cfg.autoencoder.look_prior == len(prior.klass) > 0
    assert set(prior.klass.tolist()) == set(range(len(SEGMENT_CLASSES)))
    klass, code, lock = measure_looks(WorldModel.load(coded_dir), (train_seed, train_seed + 3), 12, progress=False)
    assert torch.equal(prior.klass, klass) and torch.allclose(prior.code, code) and torch.allclose(prior.lock, lock)
    assert code.abs().sum() > 0, "real posterior codes, not zeros"
    # Everything but the table is the source model's.
    src = WorldModel.load(coded_dir).ae.state_dict()
    assert all(torch.equal(src[k], v) for k, v in m.ae.state_dict().items() if not k.startswith("prior."))


def test_a_session_draws_unseen_segments_from_the_look_prior(prior_dir, train_seed):
    from engine.eval import render_trajectory
    from engine.session import WorldSession

    m = WorldModel.load(prior_dir)
    prior = m.ae.prior
    traj = make_trajectory(train_seed + 7, "explore", frames=30, resolution=(m.image_size, m.image_size))
    gt, _ = render_trajectory(m, traj, {})
    sess = WorldSession(m, memory=True, seed=3, layout=SceneLayout.for_model(generate_level(train_seed + 7), m))
    sess.observe(gt[0], traj.frames[0])
    for pose in traj.frames[1:]:
        sess.step(pose)
    drawn = (sess.code_known & ~sess.code_observed).nonzero()[:, 0]
    assert len(drawn), "the walk reaches segments the observation did not show"
    for s in drawn.tolist():
        # Its code is one entry's, of its own class; so are the lock's pattern kind and frequency.
        same = (prior.code == sess.codes[0, s]).all(-1) & (prior.klass == s % len(SEGMENT_CLASSES))
        assert bool(same.any()), s
        entry = prior.lock[same.nonzero()[0, 0]]
        assert torch.equal(sess.locks[0, s, :4], entry[:4]) and torch.equal(sess.locks[0, s, 6:], entry[6:])
    phases = sess.locks[0, drawn, 4:6]
    assert bool(((phases >= 0) & (phases < 1)).all())


def test_a_look_prior_saved_before_the_brick_flag_loads_with_the_flag_off(prior_dir, tmp_path):
    """A model whose table's locks have seven entries (before the brick flag) loads with an eighth at
    zero: each entry is the look it was, and no drawn look is a wall of bricks."""
    import json
    import shutil

    from safetensors.torch import load_file, save_file

    old = tmp_path / "old"
    shutil.copytree(prior_dir, old)
    (old / "checksums.json").unlink(missing_ok=True)
    state = load_file(str(old / "autoencoder.safetensors"))
    state["prior.lock"][:, 7] = 0.0
    table = state["prior.lock"].clone()
    state["prior.lock"] = table[:, :7].contiguous()
    for name in ("freq", "cond", "film"):
        state[f"decoder.texture.{name}.weight"] = state[f"decoder.texture.{name}.weight"][:, :-1].contiguous()
    save_file(state, str(old / "autoencoder.safetensors"))
    cfg = json.loads((old / "config.json").read_text())
    cfg["autoencoder"]["layout_channels"] -= 1
    (old / "config.json").write_text(json.dumps(cfg))
    m = WorldModel.load(old)
    assert m.ae.prior.lock.shape == table.shape and torch.equal(m.ae.prior.lock, table)


def test_the_look_prior_refuses_a_model_without_codes_and_its_own_directory(tiny_model_dir, coded_dir, train_seed):
    from engine.train.look_prior import build_look_prior

    with pytest.raises(ValueError, match="appearance"):
        build_look_prior(tiny_model_dir, tiny_model_dir.parent / "x", (train_seed, train_seed + 1), 2, progress=False)
    with pytest.raises(ValueError, match="source model"):
        build_look_prior(coded_dir, coded_dir, (train_seed, train_seed + 1), 2, progress=False)
    with pytest.raises(ValueError, match="training worlds"):
        build_look_prior(coded_dir, coded_dir.parent / "y", (999_999, 1_000_001), 2, progress=False)
