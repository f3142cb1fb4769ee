"""The shipped weights themselves (assets/models/default), not a tiny stand-in: they load, their
config is the one the docs describe, and memory does what it is for on a world they never saw."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT / "assets" / "eval"


def test_shipped_config_is_the_documented_one():
    from engine.model.config import MemoryConfig, ModelConfig

    cfg = ModelConfig.load(ROOT / "assets" / "models" / "default" / "config.json")
    assert cfg.memory == MemoryConfig(), "LatentMemory()'s defaults must be the shipped memory"
    # v2 stage 3: one sampling step (the generator's conditional mean), the decoder adds the detail.
    assert cfg.inference.steps == 1 and cfg.inference.temperature == pytest.approx(1.08)
    assert cfg.latent_mean_range is not None and len(cfg.latent_mean_range) == cfg.autoencoder.latent_channels
    assert cfg.generator.layout_channels == 9, "the shipped generator is grounded in the scene layout (v2)"


def test_shipped_weights_match_their_checksums():
    from engine.model.world_model import CHECKSUMS, WorldModel

    d = ROOT / "assets" / "models" / "default"
    assert (d / CHECKSUMS).is_file()
    assert WorldModel.load(d).takes_layout   # load() verifies every weights file against checksums.json


@pytest.mark.slow
def test_shipped_model_memory_wins_the_turnaround_revisit(egl):
    """Eval of the turnaround of world 1,000,000 (one observed frame, two full turns): with memory
    the view after each turn comes back, so revisit PSNR is at least 5 dB above memory off."""
    from engine.eval import run_eval
    from engine.trajectory import read_trajectory

    traj = read_trajectory(EVAL / "turnaround-1000000.json")
    result = run_eval([("turnaround-1000000", traj)], None, progress=False)
    row = result["trajectories"][0]
    on, off = row["memory_on"], row["memory_off"]
    assert not on["any_nan"] and not off["any_nan"]
    assert on["psnr_revisit"] >= off["psnr_revisit"] + 5.0, (on["psnr_revisit"], off["psnr_revisit"])
    # And what the docs quote for this trajectory is what the weights give (docs/eval_default.json).
    doc = {Path(r["name"]).stem: r for r in json.loads((ROOT / "docs" / "eval_default.json").read_text())["trajectories"]}
    assert on["psnr_revisit"] == pytest.approx(doc["turnaround-1000000"]["memory_on"]["psnr_revisit"], abs=0.5)
