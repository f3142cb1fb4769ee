"""The GPU training path, run on the CPU: batches from worker processes, history canvases built in
parallel processes, bf16 autocast, walk preparation alone (--steps 0), and a fine-tune keeping its
init's latent normalisation. Real tiny model, real rendered walks."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from model_fixtures import tiny_model_dir  # noqa: F401  (pytest fixture)

from engine.model.config import ModelConfig
from engine.model.world_model import WorldModel
from engine.train.checkpoint import run_args
from engine.train.history import build_history
from engine.train.world import WorldTrainArgs, _load_walks, train_world
from engine.train.world_data import WalkSampler
from engine.train.world_loader import WorkerBatches, default_workers


@pytest.fixture(scope="module")
def trained(tiny_model_dir):
    model = WorldModel.load(tiny_model_dir)
    return tiny_model_dir, model, _load_walks(tiny_model_dir.parent / "walks.safetensors")


def test_history_built_in_processes_equals_the_serial_build(trained):
    _, model, walks = trained
    cfg = model.cfg
    args = (cfg.latent_shift, cfg.latent_scale, cfg.fov_deg, cfg.memory.voxel_size, 65536)
    serial = build_history(walks, *args, progress=False)
    parallel = build_history(walks, *args, progress=False, workers=2)
    assert len(parallel) == len(serial) == len(walks)
    for a, b in zip(serial, parallel):
        assert a.canvas.dtype == b.canvas.dtype and a.mask.dtype == b.mask.dtype
        assert torch.equal(a.canvas, b.canvas) and torch.equal(a.mask, b.mask) and torch.equal(a.depth, b.depth)
    assert any(h.mask.any() for h in parallel)   # not trivially equal: memory covered cells


def test_worker_batches_are_real_reproducible_and_differ_between_workers(trained):
    _, model, walks = trained
    cfg = model.cfg
    kw = dict(cells=model.cells, fov_deg=cfg.fov_deg, shift=cfg.latent_shift, scale=cfg.latent_scale)

    def first(n: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        feed = WorkerBatches(walks, None, 4, seed, 2, torch.device("cpu"), **kw)
        try:
            return [feed.next() for _ in range(n)]
        finally:
            feed.close()

    a, b, other = first(4, 7), first(4, 7), first(2, 8)
    x0, cond = a[0]
    # The same shapes as the in-process sampler's batches: the trainer cannot tell them apart.
    ref_x0, ref_cond = WalkSampler(walks, rng=np.random.default_rng(0), **kw).batch(4, "cpu")
    assert x0.shape == ref_x0.shape and cond.shape == ref_cond.shape
    assert torch.isfinite(cond).all() and float(x0.std()) > 0.1
    for (xa, ca), (xb, cb) in zip(a, b):        # same seed and worker count: the same stream
        assert torch.equal(xa, xb) and torch.equal(ca, cb)
    assert not torch.equal(a[0][0], a[1][0])     # batches 0 and 1 come from workers 0 and 1
    assert not torch.equal(a[0][0], other[0][0])  # another run seed, other batches
    with pytest.raises(ValueError, match="worker"):
        WorkerBatches(walks, None, 4, 0, 0, torch.device("cpu"), **kw)


def test_worker_chains_are_consecutive_frames_of_one_walk(trained):
    """--self-rollout with workers: some items are chains of 2..K+1 links, and each link's target
    is the frame after the previous link's target in the same walk (what the rollout feeds back)."""
    _, model, walks = trained
    cfg = model.cfg
    kw = dict(cells=model.cells, fov_deg=cfg.fov_deg, shift=cfg.latent_shift, scale=cfg.latent_scale)
    feed = WorkerBatches(walks, None, 3, 11, 2, torch.device("cpu"), self_rollout=2, **kw)
    try:
        items = [feed.next() for _ in range(12)]
    finally:
        feed.close()
    chains = [it for it in items if isinstance(it, list)]
    plain = [it for it in items if isinstance(it, tuple)]
    assert chains and plain                     # half the items, drawn at random
    norm = [(w.z.float() - cfg.latent_shift) / cfg.latent_scale for w in walks]

    def where(z: torch.Tensor) -> set[tuple[int, int]]:
        # A walk that stands still shows the same latent twice: every frame it could be.
        hits = {(wi, t) for wi, zs in enumerate(norm) for t in range(len(zs)) if torch.allclose(zs[t], z)}
        assert hits
        return hits

    for chain in chains:
        assert 2 <= len(chain) <= 3
        for b in range(3):
            at = [where(x0[b]) for x0, _, _ in chain]
            assert any(all((w, t + j) in at[j] for j in range(len(chain))) for w, t in at[0])


def _fine_tune_with_workers(tiny_model_dir, out, steps: int, **options):
    """A short fine-tune of the tiny model with 2 batch workers, on a copy of its encoded walks and
    config (no re-rendering); returns the written model directory."""
    import shutil

    world = tiny_model_dir.parent
    out.mkdir()
    for name in ("walks.safetensors", "config.json"):
        shutil.copyfile(world / name, out / name)
    return train_world(WorldTrainArgs(autoencoder=str(world.parent / "ae"), out=str(out), steps=steps, batch=4,
                                      seeds=(5, 6), save_every=100, init=str(tiny_model_dir), workers=2, lr=1e-3,
                                      **options), progress=False)


def test_training_with_workers_and_self_rollout_runs(tiny_model_dir, tmp_path):
    out = tmp_path / "roll"
    model_dir = _fine_tune_with_workers(tiny_model_dir, out, 6, self_rollout=2, self_steps=1)
    assert json.loads((out / "state.json").read_text())["step"] == 6
    tuned = WorldModel.load(model_dir)
    assert all(torch.isfinite(p).all() for p in tuned.gen.parameters())


def test_training_with_workers_and_bf16_writes_a_model(tiny_model_dir, tmp_path):
    out = tmp_path / "par"
    model_dir = _fine_tune_with_workers(tiny_model_dir, out, 4, precision="bf16", history_canvas=0.5)
    state = json.loads((out / "state.json").read_text())
    assert state["step"] == 4
    tuned = WorldModel.load(model_dir)
    init = WorldModel.load(tiny_model_dir)
    with torch.no_grad():
        moved = max(float((p - q).abs().max()) for p, q in zip(tuned.gen.parameters(), init.gen.parameters()))
    assert 0 < moved < 0.1
    assert all(torch.isfinite(p).all() for p in tuned.gen.parameters())
    assert run_args(model_dir.parent)["history_canvas"] == 0.5


def test_steps_zero_prepares_walks_and_init_keeps_its_normalisation(tiny_model_dir, tmp_path):
    world = tiny_model_dir.parent
    out = tmp_path / "prep"
    # Other worlds than the init's walks: their latent statistics differ, and must not replace the init's.
    got = train_world(WorldTrainArgs(autoencoder=str(world.parent / "ae"), out=str(out), steps=0, seeds=(7, 8),
                                     init=str(tiny_model_dir)), progress=False)
    assert got == out
    assert (out / "walks.safetensors").stat().st_size > 0 and not (out / "model").exists()
    assert not (out / "state.json").exists()
    walks = _load_walks(out / "walks.safetensors")
    assert len(walks) == 4 and all(w.observe is not None for w in walks)
    init_cfg, cfg = ModelConfig.load(tiny_model_dir / "config.json"), ModelConfig.load(out / "config.json")
    assert (cfg.latent_shift, cfg.latent_scale) == (init_cfg.latent_shift, init_cfg.latent_scale)
    assert cfg.latent_mean_range == init_cfg.latent_mean_range
    own_mean = float(torch.cat([w.z.float().flatten() for w in walks]).mean())
    assert own_mean != pytest.approx(init_cfg.latent_shift, abs=1e-6)   # the test would show a recompute


@pytest.mark.parametrize("option, value", [("workers", -1), ("precision", "fp16"), ("save_every", 0), ("steps", -1)])
def test_bad_training_options_are_refused_by_name(tiny_model_dir, tmp_path, option, value):
    name = {"save_every": "save-every"}.get(option, option)
    with pytest.raises(ValueError, match=name):
        train_world(WorldTrainArgs(autoencoder=str(tiny_model_dir.parent.parent / "ae"), out=str(tmp_path / "x"),
                                   batch=2, seeds=(5, 6), **{option: value}), progress=False)


def test_default_workers():
    assert default_workers(torch.device("cpu")) == 0      # the step itself needs a CPU's cores
    assert 1 <= default_workers(torch.device("cuda")) <= 12
