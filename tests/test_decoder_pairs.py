"""Decoder training on latents the generator really made (engine/train/generated_pairs.py).

The pairs are collected with the tiny model on a real renderer; what a pair holds is checked
against the session and the renderer, not against itself.
"""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from model_fixtures import tiny_model, tiny_model_dir  # noqa: F401  (pytest fixtures)

from engine.eval import render_trajectory
from engine.metrics import psnr
from engine.model.autoencoder import to_model_image, to_uint8_image
from engine.model.world_model import WorldModel
from engine.train.generated_pairs import (
    PairArgs,
    anchor_of,
    collect_pairs,
    load_pairs,
    save_pairs,
)
from engine.trajectory import KINDS, make_trajectory


@pytest.fixture(scope="module")
def pairs(tiny_model, egl, train_seed):
    return collect_pairs(tiny_model, PairArgs(seeds=(train_seed, train_seed + 1), every=2, explore_frames=16,
                                              memory_share=0.5, kinds=("retrace", "explore")), progress=False)


@pytest.mark.slow
def test_pairs_hold_the_generated_latent_and_the_ground_truth_at_its_pose(tiny_model, pairs, train_seed):
    m = tiny_model
    n = len(pairs["psnr"])
    assert n > 4 and pairs["latent"].shape == (n, m.latent_channels, m.cells, m.cells)
    assert set(pairs["kind"].tolist()) == {KINDS.index("retrace"), KINDS.index("explore")}
    assert set(pairs["scene"].tolist()) == {train_seed}
    cache: dict = {}
    for kind in ("retrace", "explore"):
        traj = make_trajectory(train_seed, kind, frames=16 if kind == "explore" else None,
                               resolution=(m.image_size, m.image_size))
        gt, _ = render_trajectory(m, traj, cache)
        sel = torch.nonzero(pairs["kind"] == KINDS.index(kind))[:, 0]
        frames = pairs["frame"][sel]
        assert bool((frames >= traj.observe).all()), "only generated frames are kept, never observations"
        assert bool((torch.diff(frames) == 2).all()), "every 2nd generated frame"
        assert np.array_equal(pairs["rgb"][sel].numpy(), gt[frames.numpy()])
    # The latent is the one the session decoded: decoding it again gives the frame it showed,
    # whose cell colours are the anchor and whose PSNR against ground truth is stored.
    with torch.no_grad():
        rgb = m.ae.decode(pairs["latent"])[0]
    shown = to_uint8_image(rgb)
    assert torch.allclose(anchor_of(to_model_image(shown), m.cells), pairs["anchor"], atol=1e-5)
    p = [psnr(a, b) for a, b in zip(shown.numpy(), pairs["rgb"].numpy())]
    assert np.allclose(p, pairs["psnr"].numpy(), atol=1e-3)


def test_pairs_refuse_eval_worlds_and_files_that_do_not_fit(tiny_model, pairs, tmp_path, eval_seed):
    with pytest.raises(ValueError, match="training worlds"):
        collect_pairs(tiny_model, PairArgs(seeds=(eval_seed, eval_seed + 1)), progress=False)
    with pytest.raises(ValueError, match="kinds"):
        collect_pairs(tiny_model, PairArgs(seeds=(5, 6), kinds=("loop",)), progress=False)
    path = tmp_path / "p.safetensors"
    save_pairs(path, pairs, "tiny")
    m = tiny_model
    back = load_pairs(path, (m.latent_channels, m.cells, m.cells), m.image_size)
    assert all(torch.equal(back[k], pairs[k]) for k in pairs)
    with pytest.raises(ValueError, match=r"p\.safetensors: latent shape"):
        load_pairs(path, (m.latent_channels + 1, m.cells, m.cells), m.image_size)
    with pytest.raises(ValueError, match="frames of shape"):
        load_pairs(path, (m.latent_channels, m.cells, m.cells), 2 * m.image_size)
    with pytest.raises(FileNotFoundError, match="decoder-pairs"):
        load_pairs(tmp_path / "missing.safetensors", (m.latent_channels, m.cells, m.cells), m.image_size)


def test_generated_loss_targets_aligned_pairs_and_holds_only_colour_elsewhere():
    from engine.train.decoder import generated_terms, reconstruction_terms

    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    y = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    depth = torch.full((2, 32, 32), 2.0)
    logd = torch.full((2, 1, 32, 32), float(np.log(2.0)))
    anchor = anchor_of(y, 4)
    loss, mse = generated_terms(y, logd, x, depth, anchor, torch.tensor([True, False]))
    rec = reconstruction_terms(y, logd, x, depth)[0]
    assert torch.allclose(loss[0], rec[0]) and len(mse) == 1
    assert float(loss[1]) < 1e-6, "detail that keeps each cell's colour costs nothing where unaligned"
    moved = generated_terms(y + 0.5, logd, x, depth, anchor, torch.tensor([False, False]))[0]
    assert torch.allclose(moved, torch.full((2,), 0.5), atol=1e-5), "a colour shift is what it holds"


@pytest.mark.slow
def test_decoder_trains_on_pairs_and_keeps_the_latent_space(tiny_model_dir, pairs, tmp_path):
    from engine.train.decoder import DecoderTrainArgs, train_decoder

    path = tmp_path / "p.safetensors"
    save_pairs(path, pairs, "tiny")
    out = train_decoder(DecoderTrainArgs(model=str(tiny_model_dir), out=str(tmp_path / "dec"), steps=12, batch=4,
                                         gan_start=2, save_every=12, pairs=str(path), aligned_psnr=0.0),
                        progress=False)
    before, after = WorldModel.load(tiny_model_dir), WorldModel.load(out)
    for k, v in before.ae.encoder.state_dict().items():
        assert torch.equal(v, after.ae.encoder.state_dict()[k])
    rows = list(csv.DictReader(open(tmp_path / "dec" / "decoder_loss.csv")))
    assert len(rows) == 2 and all(np.isfinite(float(r["gen_mse"])) and float(r["gen_loss"]) > 0 for r in rows)
    # Every pair is a target at aligned_psnr 0: the decoder's error on them falls in 12 steps.
    with torch.no_grad():
        err = [float(((m.ae.decode(pairs["latent"])[0] - to_model_image(pairs["rgb"])) ** 2).mean())
               for m in (before, after)]
    assert err[1] < err[0]
    with pytest.raises(ValueError, match="pairs-share"):
        train_decoder(DecoderTrainArgs(model=str(tiny_model_dir), out=str(tmp_path / "d2"), steps=1, batch=4,
                                       pairs=str(path), pairs_share=1.0), progress=False)


def test_cli_writes_a_pairs_file(tiny_model_dir, egl, tmp_path, train_seed, capsys):
    from explorer.cli import main

    out = tmp_path / "cli.safetensors"
    assert main(["train", "decoder-pairs", "--model", str(tiny_model_dir), "--out", str(out), "--seeds",
                 f"{train_seed}:{train_seed + 1}", "--kinds", "explore", "--explore-frames", "10", "--every", "3",
                 "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "explore" in text and f"pairs written to {out}" in text
    m = WorldModel.load(tiny_model_dir)
    assert len(load_pairs(out, (m.latent_channels, m.cells, m.cells), m.image_size)["psnr"]) == 3


def test_several_pair_files_join_and_snapshots_are_loadable_models(tiny_model_dir, pairs, tmp_path, capsys):
    """Pairs collected by parallel processes train as one set, and --snapshot-every leaves a directory
    per snapshot (config + autoencoder) that loads and holds the decoder of that step."""
    from explorer.cli import main

    m = WorldModel.load(tiny_model_dir)
    shape = (m.latent_channels, m.cells, m.cells)
    half = len(pairs["psnr"]) // 2
    paths = []
    for i, sel in enumerate((slice(0, half), slice(half, None))):
        paths.append(tmp_path / f"part{i}.safetensors")
        save_pairs(paths[-1], {k: v[sel] for k, v in pairs.items()}, "tiny")
    joined = load_pairs([str(p) for p in paths], shape, m.image_size)
    for k, v in pairs.items():
        assert torch.equal(joined[k], v), k
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        load_pairs([str(paths[0]), str(tmp_path / "missing.safetensors")], shape, m.image_size)
    out = tmp_path / "dec"
    assert main(["train", "decoder", "--model", str(tiny_model_dir), "--out", str(out), "--steps", "6",
                 "--batch", "4", "--gan-start", "2", "--pairs", *map(str, paths), "--snapshot-every", "3",
                 "--no-progress"]) == 0
    snaps = sorted((out / "snapshots").iterdir())
    assert [s.name for s in snaps] == ["step0000003", "step0000006"]
    from safetensors.torch import load_file

    s3, s6 = (load_file(str(s / "autoencoder.safetensors")) for s in snaps)
    final = load_file(str(out / "autoencoder.safetensors"))
    assert all(torch.equal(s6[k], final[k]) for k in final), "the last snapshot is the final decoder"
    assert any(not torch.equal(s3[k], s6[k]) for k in s3 if k.startswith("decoder")), "step 3 is not step 6"
    assert (snaps[0] / "config.json").read_text() == (out / "config.json").read_text()
    from engine.model.autoencoder import Autoencoder
    from engine.model.config import ModelConfig

    Autoencoder(ModelConfig.load(snaps[0] / "config.json").autoencoder).load_state_dict(s3)
    assert main(["train", "decoder", "--model", str(tiny_model_dir), "--out", str(tmp_path / "d2"), "--steps", "1",
                 "--snapshot-every", "-1", "--no-progress"]) != 0
    assert "--snapshot-every must be 0 or more, got -1" in capsys.readouterr().err
