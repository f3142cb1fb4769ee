"""--history-canvas: training canvases read from a real LatentMemory holding the walk so far."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from model_fixtures import fine_tune_tiny, refuses_share, tiny_model_dir  # noqa: F401  (pytest fixture)

from engine.model.conditioning import channel
from engine.model.world_model import WorldModel
from engine.train.checkpoint import run_args
from engine.train.encoded_walks import KINDS_FRAMES, walk_observe_counts
from engine.train.history import build_history, history_canvases
from engine.train.world import _load_walks
from engine.train.world_data import WalkSampler


@pytest.fixture(scope="module")
def trained(tiny_model_dir):
    model = WorldModel.load(tiny_model_dir)
    return tiny_model_dir, model, _load_walks(tiny_model_dir.parent / "walks.safetensors")


def test_retrace_canvas_reads_back_the_outbound_frame(trained):
    """On the return of a retrace (the outbound poses in reverse) memory holds the frame observed at
    that very pose, and the centre-preferring depth test reads most cells back from it exactly."""
    _, model, walks = trained
    cfg = model.cfg
    w = walks[[k for k, _ in KINDS_FRAMES].index("retrace")]   # one walk of each kind per world, in this order
    assert torch.equal(w.c2w[0], w.c2w[-1])
    assert 1 < w.observe < len(w.z)                 # the outbound half is observed, the return generated
    # The default capacity: the tiny config's holds 16 frames' points, so the oldest outbound frames
    # would be evicted before the return reaches them (as they should be in so small a memory).
    h = history_canvases(w.z, w.depth, w.c2w, w.observe, cfg.latent_shift, cfg.latent_scale, cfg.fov_deg,
                         cfg.memory.voxel_size, capacity=65536)
    n, c, s, _ = w.z.shape
    assert h.canvas.shape == (n, c, s, s) and h.mask.shape == (n, s, s) and h.depth.shape == (n, s, s)
    assert not h.mask[0].any() and float(h.canvas[0].abs().max()) == 0.0   # nothing is held before frame 0
    assert h.mask[1:].float().mean() > 0.5
    zn = ((w.z.float() - cfg.latent_shift) / cfg.latent_scale).half()
    shares = []
    for t in range(n // 2 + 1, n):
        u = next(u for u in range(t) if torch.equal(w.c2w[u], w.c2w[t]))    # the same pose, observed earlier
        same = (h.canvas[t] == zn[u]).all(dim=0) & h.mask[t]
        shares.append(float(same.float().mean()))
    assert np.mean(shares) > 0.45, shares          # 0.57 here: later outbound frames merged the rest
    # And entry t never holds frame t itself: outbound poses are new, so their own cells are absent.
    own = [float(((h.canvas[t] == zn[t]).all(dim=0) & h.mask[t]).float().mean()) for t in range(1, w.observe)]
    assert max(own) < 0.1, own
    # Depth read back is that of the surfaces in view: positive where covered, zero elsewhere.
    assert (h.depth[h.mask] > 0).all() and (h.depth[~h.mask] == 0).all()


def test_sampler_uses_history_canvases_and_training_stores_the_share(trained, tmp_path):
    model_dir, model, walks = trained
    cfg, c = model.cfg, model.latent_channels
    hist = build_history(walks, cfg.latent_shift, cfg.latent_scale, cfg.fov_deg, cfg.memory.voxel_size,
                         cfg.memory.capacity, progress=False)
    sampler = WalkSampler(walks, model.cells, cfg.fov_deg, cfg.latent_shift, cfg.latent_scale,
                          np.random.default_rng(0), p_drop_memory=0.0, context_noise=0.0,
                          history=hist, history_share=1.0)
    picks = [(0, 3), (1, 5), (1, len(walks[1].z) - 2)]
    _, cond, _ = sampler.batch_at(picks, "cpu")
    for i, (wi, t) in enumerate(picks):
        m = hist[wi].mask[t].float()
        assert torch.equal(channel(cond, "memory_mask", c)[i, 0], m)                              # the memory's own coverage
        diff = (channel(cond, "memory", c)[i] - hist[wi].canvas[t].float()) * m
        assert float(diff.abs().max()) < 1.0 and float(diff.std()) < 0.16       # its canvas, lightly noised
        assert float((channel(cond, "memory", c)[i] * (1 - m)).abs().max()) == 0.0
    with pytest.raises(ValueError, match="history"):
        WalkSampler(walks, model.cells, cfg.fov_deg, cfg.latent_shift, cfg.latent_scale,
                    np.random.default_rng(0), history_share=0.5)

    # Caches written before walks stored their observed count get it rebuilt from the trajectories alone.
    assert walk_observe_counts([5], cfg.fov_deg, model.image_size) == [w.observe for w in walks]

    trained_dir = fine_tune_tiny(model_dir, tmp_path / "hist", history_canvas=0.5)
    assert run_args(trained_dir.parent)["history_canvas"] == 0.5
    refuses_share(model_dir, tmp_path / "bad", history_canvas=-0.1)
