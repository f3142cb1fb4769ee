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


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    from engine.model.world_model import WorldModel

    return WorldModel.load(tiny_model_dir)
