"""A tiny world model trained for a few steps on real rendered frames, shared by the model tests.

Training it takes seconds; it is not good, but it is real: every test that uses it
exercises the same code paths as the shipped model.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from engine.model.config import tiny_config
    from engine.train.ae import AETrainArgs, train_autoencoder
    from engine.train.world import WorldTrainArgs, train_world

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("tiny_model")
    cfg = tiny_config()
    train_autoencoder(cfg, AETrainArgs(out=str(root / "ae"), steps=12, batch=8, pool_scenes=2, pool_frames=8,
                                       save_every=6), progress=False)
    return train_world(WorldTrainArgs(autoencoder=str(root / "ae"), out=str(root / "world"), steps=8, batch=8,
                                      seeds=(5, 6), save_every=4), progress=False)


def fine_tune_tiny(tiny_model_dir: Path, out: Path, **options) -> Path:
    """Three steps of `mirage train world` from the tiny model's generator, on a copy of its walks
    cache and config (no re-rendering), with extra WorldTrainArgs options. Returns the model dir."""
    import shutil

    from engine.train.world import WorldTrainArgs, train_world

    world = tiny_model_dir.parent
    out.mkdir(parents=True)
    for name in ("walks.safetensors", "config.json"):
        shutil.copyfile(world / name, out / name)
    return train_world(WorldTrainArgs(autoencoder=str(world.parent / "ae"), out=str(out), steps=3, batch=4,
                                      seeds=(5, 6), save_every=100, init=str(tiny_model_dir), **options),
                       progress=False)


def refuses_share(tiny_model_dir: Path, out: Path, match: str | None = None, **options) -> None:
    """`mirage train world` refuses an out-of-range option before any work, naming it (as `match`
    when the message spells it as its command-line flag)."""
    from engine.train.world import WorldTrainArgs, train_world

    (name,) = options
    with pytest.raises(ValueError, match=match or name):
        train_world(WorldTrainArgs(autoencoder=str(tiny_model_dir.parent.parent / "ae"), out=str(out), steps=1,
                                   batch=2, seeds=(5, 6), **options), progress=False)


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    from engine.model.world_model import WorldModel

    return WorldModel.load(tiny_model_dir)


def rendered_turnaround(seed: int, frames: int):
    """The first `frames` poses of a 64x64 turnaround in world `seed` with the real renderer's
    frames and depth: (trajectory, rgb (N, 64, 64, 3) uint8, depth (N, 64, 64) float32)."""
    from engine.trajectory import make_trajectory
    from engine.world.levels import generate_level
    from engine.world.renderer import Renderer

    traj = make_trajectory(seed, "turnaround", resolution=(64, 64))
    r = Renderer(generate_level(seed), 64, 64, traj.fov_deg)
    try:
        rgb, depth = r.render(traj.frames[:frames])
    finally:
        r.close()
    return traj, rgb, depth


@pytest.fixture(scope="session")
def coded_dir(tiny_model_dir, tmp_path_factory, egl, train_seed):
    """The tiny model's decoder given the layout and 4-dimensional appearance codes, trained a few
    steps on rendered frames and on pairs it generated with the layout on."""
    from engine.model.world_model import WorldModel
    from engine.train.decoder import DecoderTrainArgs, train_decoder
    from engine.train.generated_pairs import PairArgs, collect_pairs, save_pairs

    root = tmp_path_factory.mktemp("coded")
    model = WorldModel.load(tiny_model_dir)
    pairs = collect_pairs(model, PairArgs(seeds=(train_seed, train_seed + 1), every=2, explore_frames=12,
                                          kinds=("explore",)), progress=False)
    save_pairs(root / "pairs.safetensors", pairs, "tiny")
    torch.manual_seed(0)
    return train_decoder(DecoderTrainArgs(model=str(tiny_model_dir), out=str(root / "dec"), steps=8, batch=4,
                                          gan_start=4, save_every=8, pairs=str(root / "pairs.safetensors"),
                                          layout="on", appearance_dim=4, kl_weight=1e-3, detail_weight=1.0),
                           progress=False)


def render_with_layout(level, poses, size: int, fov_deg: float):
    """The real renderer's frames (N, size, size, 3) uint8 and depth of `poses` in `level`, and the
    layout's G-buffer there (engine/world/layout.LayoutRenderer), both renderers closed after."""
    from engine.world.layout import LayoutRenderer
    from engine.world.renderer import Renderer

    r, lr = Renderer(level, size, size, fov_deg), LayoutRenderer(level, size, size, fov_deg)
    try:
        rgb, depth = r.render(poses)
        return rgb, depth, lr.layout(poses)
    finally:
        r.close()
        lr.close()
