"""ST-LPIPS and fd_alex (engine/perceptual.py) on real rendered frames: our own network with the
weights of the stlpips-pytorch wheel, whose modules are never imported."""
from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

from engine import perceptual


@pytest.fixture(scope="module")
def frames(egl):
    from engine.trajectory import make_trajectory
    from engine.world.levels import generate_level
    from engine.world.renderer import Renderer

    out = []
    for seed in (1_000_000, 1_000_001):
        level = generate_level(seed)
        traj = make_trajectory(level, "explore", frames=48, resolution=(96, 96))
        r = Renderer(level, 96, 96, 70.0)
        out.append(r.render(traj.frames)[0])
        r.close()
    return out


def test_lpips_is_zero_on_itself_tolerates_a_shift_and_ranks_damage(frames):
    a = frames[0][:8]
    assert np.allclose(perceptual.lpips(a, a), 0.0, atol=1e-7)
    shifted = np.roll(a, 1, axis=2)
    blurred = np.stack([cv2.GaussianBlur(x, (0, 0), 3) for x in a])
    flat = np.broadcast_to(a.reshape(-1, 3).mean(0).astype(np.uint8), a.shape).copy()
    d_shift, d_blur, d_flat = (perceptual.lpips(x, a).mean() for x in (shifted, blurred, flat))
    assert d_shift < 0.1 < d_blur < d_flat, (d_shift, d_blur, d_flat)
    assert "stlpips_pytorch" not in sys.modules


def test_fd_alex_orders_the_same_world_another_world_and_flat_colour(frames):
    a, b = frames
    fa = perceptual.alex_features(a[:24])
    assert fa.shape == (24, 512)
    same = perceptual.frechet_distance(perceptual.alex_features(a[24:]), fa)
    other = perceptual.frechet_distance(perceptual.alex_features(b[:24]), fa)
    flat = perceptual.frechet_distance(perceptual.alex_features(
        np.broadcast_to(a.reshape(-1, 3).mean(0).astype(np.uint8), a[:24].shape).copy()), fa)
    assert perceptual.frechet_distance(fa, fa) == pytest.approx(0.0, abs=1e-6)
    assert same < flat and other < flat, (same, other, flat)


def test_compare_matches_the_separate_functions(frames):
    a, b = frames[0][:6], frames[1][:6]
    dists, feats = perceptual.compare(a, {"b": b})
    np.testing.assert_allclose(dists["b"], perceptual.lpips(b, a), rtol=1e-5)
    np.testing.assert_allclose(feats[""], perceptual.alex_features(a), rtol=1e-5)
    np.testing.assert_allclose(feats["b"], perceptual.alex_features(b), rtol=1e-5)
    empty_d, empty_f = perceptual.compare(a[:0], {"b": b[:0]})
    assert empty_d["b"].shape == (0,) and empty_f[""].shape == (0, 512)
