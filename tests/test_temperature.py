"""Sampling temperature: the scale of the sampler's starting noise, a runtime knob of WorldSession with
the model's default in its config. Real sampler, real tiny model, real rendered walk."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from model_fixtures import rendered_turnaround, tiny_model, tiny_model_dir  # noqa: F401  (pytest fixtures)

from engine.model.sampler import sample
from engine.model.world_model import WorldModel
from engine.session import WorldSession
from engine.trajectory import make_trajectory


@pytest.fixture(scope="module")
def walk(egl, eval_seed):
    return rendered_turnaround(eval_seed, 12)


def _frames(model, walk, **options) -> list[np.ndarray]:
    traj, rgb, depth = walk
    s = WorldSession(model, memory=True, steps=2, seed=5, **options)
    s.observe(rgb[0], traj.frames[0], depth[0])
    return [s.step(p).frame for p in traj.frames[1:12]]


def test_temperature_scales_the_starting_noise_and_nothing_else():
    # A network that returns its input unchanged leaves the Euler path where it started, so the
    # sample is the starting noise itself: the same draws, scaled.
    def same(x, t):
        return x

    base = sample(same, (2, 4, 8, 8), 4, torch.Generator().manual_seed(1), "cpu")
    warm = sample(same, (2, 4, 8, 8), 4, torch.Generator().manual_seed(1), "cpu", temperature=1.5)
    assert torch.allclose(warm, 1.5 * base)
    assert abs(float(base.std()) - 1.0) < 0.2


def test_session_temperature_changes_frames_and_stays_deterministic(tiny_model, walk):
    import copy

    assert tiny_model.cfg.inference.temperature == 1.0
    # The tiny model's 8 training steps (at warm-up learning rates) leave its output convolution
    # near its zero start, so its samples barely depend on the noise; give that layer weights of
    # a trained network's scale so the starting noise reaches the frames.
    tiny_model = copy.deepcopy(tiny_model)
    with torch.no_grad():
        tiny_model.gen.out.weight.normal_(0.0, 0.05, generator=torch.Generator().manual_seed(0))
    default = _frames(tiny_model, walk)
    assert all(np.array_equal(a, b) for a, b in zip(default, _frames(tiny_model, walk, temperature=1.0)))
    warm = _frames(tiny_model, walk, temperature=1.6)
    assert any(not np.array_equal(a, b) for a, b in zip(default, warm))
    assert all(np.array_equal(a, b) for a, b in zip(warm, _frames(tiny_model, walk, temperature=1.6)))


def test_the_model_config_sets_the_default_and_a_missing_one_means_one(tiny_model_dir, tmp_path, walk):
    warm_dir = tmp_path / "warm"
    shutil.copytree(tiny_model_dir, warm_dir)
    cfg = json.loads((warm_dir / "config.json").read_text())
    cfg["inference"]["temperature"] = 1.6
    (warm_dir / "config.json").write_text(json.dumps(cfg))
    warm = WorldModel.load(warm_dir)
    assert WorldSession(warm).temperature == 1.6
    assert all(np.array_equal(a, b) for a, b in zip(_frames(warm, walk), _frames(WorldModel.load(tiny_model_dir),
                                                                                  walk, temperature=1.6)))
    cfg["inference"]["temperature"] = "hot"   # a hand-edited config is named as the culprit
    (warm_dir / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="config.json: inference.temperature"):
        WorldSession(WorldModel.load(warm_dir))
    del cfg["inference"]["temperature"]   # a config that leaves it out means 1.0
    (warm_dir / "config.json").write_text(json.dumps(cfg))
    assert WorldSession(WorldModel.load(warm_dir)).temperature == 1.0


def test_bad_temperatures_are_refused_by_name(tiny_model):
    for bad in (0.0, -1.0, 5.0, float("nan")):
        with pytest.raises(ValueError, match="temperature"):
            WorldSession(tiny_model, temperature=bad)


@pytest.mark.slow
def test_eval_records_the_temperature_it_ran_at(tiny_model_dir, egl, eval_seed):
    from engine.eval import run_eval

    traj = make_trajectory(eval_seed, "turnaround", resolution=(64, 64))
    out = run_eval([("t", traj)], tiny_model_dir, steps=1, progress=False, temperature=1.3)
    assert out["temperature"] == 1.3
    assert np.isfinite(out["summary"]["memory_on"]["psnr_gt"])
