"""`mirage train average`: the weight-by-weight mean of two generators on one autoencoder.
Real tiny model, a real 3-step fine-tune of it, a real rendered walk through WorldSession."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from model_fixtures import fine_tune_tiny, rendered_turnaround, tiny_model_dir  # noqa: F401  (pytest fixture)
from safetensors.torch import load_file

from engine.model.world_model import WorldModel
from engine.session import WorldSession
from engine.train.average import AverageError, average_models


@pytest.fixture(scope="module")
def tuned(tiny_model_dir, tmp_path_factory):
    return fine_tune_tiny(tiny_model_dir, tmp_path_factory.mktemp("avg") / "tuned", lr=1e-2)


@pytest.fixture(scope="module")
def walk(egl, eval_seed):
    return rendered_turnaround(eval_seed, 8)


def _frames(model_dir, walk) -> list[np.ndarray]:
    traj, rgb, depth = walk
    s = WorldSession(WorldModel.load(model_dir), memory=True, steps=2, seed=3)
    s.observe(rgb[0], traj.frames[0], depth[0])
    return [s.step(p).frame for p in traj.frames[1:8]]


def test_average_is_the_weighted_mean_and_a_working_model(tiny_model_dir, tuned, walk, tmp_path):
    a, b = load_file(str(tiny_model_dir / "generator.safetensors")), load_file(str(tuned / "generator.safetensors"))
    moved = [k for k in a if a[k].is_floating_point() and not torch.equal(a[k], b[k])]
    assert moved, "the fine-tune changed no weight: nothing to average"
    out = average_models([tiny_model_dir, tuned], tmp_path / "mix", shares=[1, 3])
    m = load_file(str(out / "generator.safetensors"))
    for k in a:
        if a[k].is_floating_point():
            torch.testing.assert_close(m[k], 0.25 * a[k] + 0.75 * b[k], rtol=1e-5, atol=1e-6)
        else:
            assert torch.equal(m[k], a[k])
    # The other network and the settings are the first model's, byte for byte.
    assert (out / "autoencoder.safetensors").read_bytes() == (tiny_model_dir / "autoencoder.safetensors").read_bytes()
    assert json.loads((out / "config.json").read_text()) == json.loads((tiny_model_dir / "config.json").read_text())
    assert json.loads((out / "averaged.json").read_text())["shares"] == [0.25, 0.75]

    mixed = _frames(out, walk)
    assert all(f.shape == (64, 64, 3) and f.dtype == np.uint8 for f in mixed)
    assert mixed[-1].std() > 0                                 # not a flat image
    # Between the two: it draws neither model's frames (their generators differ).
    first, second = _frames(tiny_model_dir, walk), _frames(tuned, walk)
    assert not np.array_equal(mixed[-1], first[-1]) and not np.array_equal(mixed[-1], second[-1])
    # A share of (1, 0) is the first model itself: the same frames, bit for bit.
    same = average_models([tiny_model_dir, tuned], tmp_path / "first", shares=[1, 0])
    assert all(np.array_equal(x, y) for x, y in zip(_frames(same, walk), first))


def test_average_refuses_what_cannot_be_averaged(tiny_model_dir, tuned, tmp_path):
    with pytest.raises(AverageError, match="at least two"):
        average_models([tiny_model_dir], tmp_path / "o1")
    with pytest.raises(AverageError, match="3 shares for 2 models"):
        average_models([tiny_model_dir, tuned], tmp_path / "o2", shares=[1, 1, 1])
    with pytest.raises(AverageError, match="non-negative"):
        average_models([tiny_model_dir, tuned], tmp_path / "o3", shares=[1, -1])
    with pytest.raises(AverageError, match="one of the inputs"):
        average_models([tiny_model_dir, tuned], tuned)
    # A generator on another latent space: same architecture, different autoencoder weights.
    other = tmp_path / "other_ae"
    shutil.copytree(tuned, other)
    ae = load_file(str(other / "autoencoder.safetensors"))
    from engine.train.checkpoint import save_tensors

    save_tensors(other / "autoencoder.safetensors", {k: v + 0.01 if v.is_floating_point() else v for k, v in ae.items()})
    with pytest.raises(AverageError, match="different autoencoder"):
        average_models([tiny_model_dir, other], tmp_path / "o4")
    assert not (tmp_path / "o4").exists()                     # refused before anything is written
    # A missing weights file is named.
    gone = tmp_path / "no_generator"
    shutil.copytree(tuned, gone)
    (gone / "generator.safetensors").unlink()
    with pytest.raises(AverageError, match="no_generator/generator.safetensors: weights file not found"):
        average_models([tiny_model_dir, gone], tmp_path / "o5")


def test_cli_average_sets_the_temperature(tiny_model_dir, tuned, tmp_path, capsys):
    from explorer.cli import main

    out = tmp_path / "cli"
    assert main(["train", "average", "--models", str(tiny_model_dir), str(tuned), "--temperature", "1.08",
                 "--out", str(out)]) == 0
    assert "averaged generator of 2 models" in capsys.readouterr().out
    assert WorldModel.load(out).cfg.inference.temperature == 1.08
    # Refusals exit 2 with the message, as every other bad input does (they exited 1 before).
    capsys.readouterr()
    assert main(["train", "average", "--models", str(tiny_model_dir), str(tuned), "--temperature", "9",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "mirage train average:" in capsys.readouterr().err
    assert main(["train", "average", "--models", str(tiny_model_dir), str(tuned), "--shares", "nan", "1",
                 "--out", str(tmp_path / "nan")]) == 2
    assert "shares" in capsys.readouterr().err and not (tmp_path / "nan").exists()
