"""WorldSession, model files, training and eval on a tiny model trained on real rendered frames."""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from model_fixtures import fine_tune_tiny, refuses_share, tiny_model, tiny_model_dir  # noqa: F401  (pytest fixtures)

from engine.model.world_model import ModelFileError, WorldModel
from engine.session import WorldSession
from engine.train.checkpoint import run_args
from engine.trajectory import make_trajectory


@pytest.fixture(scope="module")
def walk(egl, eval_seed):
    from engine.world.levels import generate_level
    from engine.world.renderer import Renderer

    traj = make_trajectory(eval_seed, "turnaround", resolution=(64, 64))
    r = Renderer(generate_level(eval_seed), 64, 64, traj.fov_deg)
    rgb, depth = r.render(traj.frames)
    r.close()
    return traj, rgb, depth


def _rollout(model, walk, memory: bool, seed: int, n: int = 25):
    traj, rgb, depth = walk
    s = WorldSession(model, memory=memory, steps=2, seed=seed)
    s.observe(rgb[0], traj.frames[0], depth[0])
    return [s.step(p) for p in traj.frames[1:n]], s


@pytest.mark.slow
def test_session_is_deterministic_for_a_seed(tiny_model, walk):
    a, _ = _rollout(tiny_model, walk, True, seed=3)
    b, _ = _rollout(tiny_model, walk, True, seed=3)
    c, _ = _rollout(tiny_model, walk, True, seed=4)
    assert all(np.array_equal(x.frame, y.frame) for x, y in zip(a, b))
    assert any(not np.array_equal(x.frame, y.frame) for x, y in zip(a, c))


def test_step_result_contents(tiny_model, walk):
    res, sess = _rollout(tiny_model, walk, True, seed=0, n=6)
    last = res[-1]
    assert last.frame.dtype == np.uint8 and last.frame.shape == (64, 64, 3)
    assert last.depth.dtype == np.float32 and last.depth.shape == (64, 64) and (last.depth > 0).all()
    assert set(last.timings) >= {"memory_read", "generator", "decode", "memory_write", "total"}
    assert last.memory["points"] > 0 and 0 < last.memory["fill"] <= 1
    assert last.index == 5 and not last.observed


def test_memory_off_reads_and_writes_nothing(tiny_model, walk):
    res, sess = _rollout(tiny_model, walk, False, seed=0, n=6)
    assert len(sess.memory) == 0
    assert all(r.coverage == 0.0 for r in res)


def test_memory_covers_a_revisited_view(tiny_model, walk):
    traj, rgb, depth = walk
    s = WorldSession(tiny_model, memory=True, steps=1, seed=0)
    s.observe(rgb[0], traj.frames[0], depth[0])
    res = s.step(traj.frames[0])  # the same pose again: memory must cover nearly all of it
    assert res.coverage > 0.9


def test_bad_input_is_refused(tiny_model, walk):
    traj, rgb, _ = walk
    s = WorldSession(tiny_model)
    with pytest.raises(RuntimeError, match="observe"):
        s.step(traj.frames[0])
    with pytest.raises(ValueError, match=r"uint8 of shape \(64, 64, 3\)"):
        s.observe(rgb[0].astype(np.float32), traj.frames[0])
    with pytest.raises(ValueError, match="steps"):
        WorldSession(tiny_model, steps=0)


def test_model_round_trips_and_bad_files_are_named(tiny_model_dir, tmp_path):
    m = WorldModel.load(tiny_model_dir)
    m.save(tmp_path / "copy")
    m2 = WorldModel.load(tmp_path / "copy")
    for a, b in zip(m.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ModelFileError, match="config.json"):
        WorldModel.load(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "generator.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelFileError, match="generator.safetensors"):
        WorldModel.load(broken)
    cfg = json.loads((broken / "config.json").read_text())
    cfg["generator"]["bogus"] = 1
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError, match="bogus"):
        WorldModel.load(broken)


def test_autoencoder_learns_a_fixed_batch(egl, level):
    """A few steps on one batch of rendered frames must lower the loss: the training signal is real."""
    from engine.model.autoencoder import Autoencoder, to_model_image
    from engine.model.config import tiny_config
    from engine.train.ae import ae_loss, random_free_poses
    from engine.world.renderer import Renderer

    torch.manual_seed(0)
    r = Renderer(level, 64, 64)
    rgb, depth = r.render(random_free_poses(level, 8, np.random.default_rng(0)))
    r.close()
    ae = Autoencoder(tiny_config().autoencoder)
    opt = torch.optim.Adam(ae.parameters(), lr=2e-3)
    x, d = to_model_image(torch.from_numpy(rgb)), torch.from_numpy(depth)[:, None]
    losses = []
    for _ in range(40):
        loss, _ = ae_loss(ae, x, d, latent_noise=0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_training_resumes_from_its_checkpoint(tiny_model_dir):
    state = json.loads((tiny_model_dir.parent / "state.json").read_text())
    assert state["step"] == 8
    from engine.train.world import WorldTrainArgs, train_world

    world = tiny_model_dir.parent
    train_world(WorldTrainArgs(autoencoder=str(world.parent / "ae"), out=str(world), steps=10, batch=4,
                               seeds=(5, 6), save_every=100), progress=False)
    state = json.loads((world / "state.json").read_text())
    assert state["step"] == 10  # continued from 8, did not restart
    rows = (world / "world_loss.csv").read_text().splitlines()
    assert rows[0].startswith("step,loss") and len(rows) >= 2
    assert (world / "world_loss.png").stat().st_size > 1000


def test_fine_tuning_on_own_rollouts(tiny_model_dir, tmp_path):
    """--init + --self-rollout: starts from the given generator, trains on batches whose context
    the model generated itself, and the rebuilt conditioning matches the sampler's own."""
    import shutil

    from safetensors.torch import load_file

    from engine.train.world import WorldTrainArgs, _load_walks, train_world
    from engine.train.world_data import WalkSampler, replace_prev

    world = tiny_model_dir.parent
    out = tmp_path / "ft"
    out.mkdir()
    for name in ("walks.safetensors", "config.json"):          # reuse the encoded walks
        shutil.copyfile(world / name, out / name)
    init = load_file(str(tiny_model_dir / "generator.safetensors"))
    model_dir = train_world(WorldTrainArgs(autoencoder=str(world.parent / "ae"), out=str(out), steps=6, batch=4,
                                           seeds=(5, 6), save_every=100, init=str(tiny_model_dir),
                                           self_rollout=2, self_steps=1, lr=1e-3), progress=False)
    tuned = load_file(str(model_dir / "generator.safetensors"))
    assert set(tuned) == set(init)
    diffs = [float((tuned[k] - init[k]).abs().max()) for k in init]
    assert max(diffs) > 0 and max(diffs) < 0.1                  # moved a little from the init, not re-initialised

    model = WorldModel.load(model_dir)
    cfg = model.cfg
    sampler = WalkSampler(_load_walks(out / "walks.safetensors"), model.cells, cfg.fov_deg, cfg.latent_shift,
                          cfg.latent_scale, np.random.default_rng(0), context_noise=0.0)
    links = sampler.chain(3, 2, "cpu")
    assert len(links) == 2
    x0, cond, geo = links[1]
    c = model.latent_channels
    assert torch.allclose(replace_prev(cond, geo, cond[:, :c]), cond, atol=1e-5)
    assert torch.allclose(links[0][0], cond[:, :c], atol=1e-5)  # frame t-1 is the next link's context


def test_blurred_context_teaches_on_softened_frames(tiny_model_dir, tmp_path):
    """--context-blur: the sampler softens the context (never the target), the share is stored in the
    model's config, and soften itself leaves flat latents alone and damps detail."""
    from engine.train.decoder import soften
    from engine.train.world import _load_walks
    from engine.train.world_data import WalkSampler

    flat = torch.full((1, 2, 6, 6), 0.7)
    assert torch.allclose(soften(flat, 1.0, 2), flat)
    checker = (torch.arange(36).reshape(6, 6) % 2 * 2 - 1).float()[None, None]
    tv = lambda z: float((z[..., 1:, :] - z[..., :-1, :]).abs().mean() + (z[..., 1:] - z[..., :-1]).abs().mean())  # noqa: E731
    assert torch.equal(soften(checker, 0.0), checker)
    assert tv(soften(checker, 1.0, 2)) < tv(soften(checker, 0.5)) < tv(checker)

    world = tiny_model_dir.parent
    model = WorldModel.load(tiny_model_dir)
    cfg, c = model.cfg, model.latent_channels
    walks = _load_walks(world / "walks.safetensors")
    picks = [(0, 3), (1, 5), (0, 8)]
    outs = []
    for share in (0.0, 1.0):
        sampler = WalkSampler(walks, model.cells, cfg.fov_deg, cfg.latent_shift, cfg.latent_scale,
                              np.random.default_rng(0), context_noise=0.0, context_blur=share)
        outs.append(sampler.batch_at(picks, "cpu")[:2])
    (x_clean, cond_clean), (x_blur, cond_blur) = outs
    assert torch.equal(x_clean, x_blur)                           # the target stays sharp
    assert tv(cond_blur[:, :c]) < 0.9 * tv(cond_clean[:, :c])     # the previous frame came softened

    model_dir = fine_tune_tiny(tiny_model_dir, tmp_path / "blur", context_blur=0.5)
    assert run_args(model_dir.parent)["context_blur"] == 0.5   # the run's record, not the model's config
    refuses_share(tiny_model_dir, tmp_path / "bad", context_blur=1.5)


def test_eval_reports_every_required_key(tiny_model_dir, egl, eval_seed):
    from engine.eval import run_eval

    traj = make_trajectory(eval_seed, "turnaround", resolution=(64, 64))
    out = run_eval([("t", traj)], tiny_model_dir, steps=1, progress=False)
    s = out["summary"]
    for mode in ("memory_on", "memory_off"):
        for k in ("psnr_gt", "ssim_gt", "psnr_revisit", "sharpness_ratio"):
            assert math.isfinite(s[mode][k]), (mode, k)
    assert 5 < s["ae_ceiling_psnr"] < 60
    # The autoencoder's own sharpness on the same frames: a blurry tiny decoder keeps some, not all.
    assert 0 < s["ae_ceiling_sharpness"] < 1.5
    assert "turnaround" in out["by_kind"]
    assert out["by_kind"]["turnaround"]["ae_ceiling_sharpness"] == s["ae_ceiling_sharpness"]
    assert out["trajectories"][0]["frames"] == len(traj.frames)
    # Realism and geometry: perceptual distance, feature distance, the model's depth; the baselines
    # on the same frames; the distance's noise floor; which mode of the model ran.
    assert out["layout"] == "on"   # the tiny model takes the scene layout, and eval's default is on
    for mode in ("memory_on", "memory_off"):
        assert 0 < s[mode]["lpips_gt"] < 1.5 and s[mode]["fd_alex"] > 0 and 0 < s[mode]["depth_abs_rel"] < 5
    for name in ("flat", "layout"):
        b = s["baselines"][name]
        assert set(b) == {"psnr_gt", "ssim_gt", "lpips_gt", "fd_alex"} and all(math.isfinite(v) for v in b.values())
    # The untextured layout is nearer the world than one flat colour, and both are further than the
    # world's own frames are from each other.
    assert s["baselines"]["layout"]["lpips_gt"] < s["baselines"]["flat"]["lpips_gt"]
    assert s["fd_alex_floor"] < s["baselines"]["layout"]["fd_alex"] < s["baselines"]["flat"]["fd_alex"]
    assert "_feat" not in out["trajectories"][0]
    json.dumps(out, allow_nan=True)


def test_eval_flags_nan_that_uint8_frames_would_hide(tiny_model_dir, egl, eval_seed, tmp_path):
    """any_nan looks at the model's float output: NaN becomes 0 in a uint8 frame, so a check on the
    shown frames could never fire. A generator with one bias at 3e38 (finite, so load accepts it;
    a NaN weight is refused at load) overflows every generated frame to inf and NaN."""
    import shutil

    from safetensors.torch import load_file, save_file

    from engine.eval import run_eval

    traj = make_trajectory(eval_seed, "explore", resolution=(64, 64), frames=8)
    clean = run_eval([("t", traj)], tiny_model_dir, steps=1, progress=False)
    assert not clean["trajectories"][0]["memory_on"]["any_nan"]
    broken = tmp_path / "nan"
    shutil.copytree(tiny_model_dir, broken)
    w = load_file(str(broken / "generator.safetensors"))
    w["out.bias"][0] = 3e38
    save_file(w, str(broken / "generator.safetensors"))
    from engine.model.world_model import write_checksums

    write_checksums(broken)   # a consistent file whose values overflow, not a damaged one
    row = run_eval([("t", traj)], broken, steps=1, progress=False)["trajectories"][0]
    assert row["memory_on"]["any_nan"] and row["memory_off"]["any_nan"]


@pytest.mark.slow
def test_two_process_ddp_training_on_cpu(tiny_model_dir, tmp_path):
    """torchrun with 2 CPU processes (gloo): gradients are averaged and rank 0 writes the model."""
    import os
    import subprocess
    import sys

    ae_dir = tiny_model_dir.parent.parent / "ae"
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "explorer.cli", "train", "world", "--autoencoder", str(ae_dir), "--out", str(out),
           "--steps", "3", "--batch", "2", "--seeds", "5:6", "--device", "cpu", "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "state.json").read_text())["step"] == 3
    WorldModel.load(out / "model")  # rank 0 wrote a loadable model


def test_bench_step_reports_stages_and_percentiles(tiny_model_dir, egl, tmp_path):
    from explorer.cli import main

    out = tmp_path / "bench.json"
    assert main(["bench", "--model", str(tiny_model_dir), "--step-frames", "6", "--steps", "1",
                 "--no-memory-bench", "--backends", "torch,onnxruntime,tensorrt", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    step = res["step"]
    assert step["frames"] == 6 and step["fps"] > 0
    assert step["latency_ms_p99"] >= step["latency_ms_p50"] > 0
    assert set(step["stages_ms"]) == {"layout", "memory_read", "generator", "decode", "memory_write", "total"}
    for name in ("torch-cpu", "onnxruntime"):       # both run on any CPU machine
        b = res["backends"][name]
        assert b["fps"] > 0 and b["latency_ms_p99"] >= b["latency_ms_p50"] > 0 and b["frames"] == 6
    try:
        import tensorrt  # noqa: F401
    except ImportError:                                  # said why, did not time a fallback under its name
        assert "tensorrt" in res["skipped_backends"] and "tensorrt" not in res["backends"]


def test_decoder_sharpening_keeps_the_latent_space(tiny_model_dir, tmp_path):
    """The decoder stage trains only the decoder: encoder and generator come out bit-identical."""
    from engine.train.decoder import DecoderTrainArgs, train_decoder

    out = train_decoder(DecoderTrainArgs(model=str(tiny_model_dir), out=str(tmp_path / "dec"), steps=4, batch=4,
                                         gan_start=2, save_every=2), progress=False)
    before, after = WorldModel.load(tiny_model_dir), WorldModel.load(out)
    for k, v in before.ae.encoder.state_dict().items():
        assert torch.equal(v, after.ae.encoder.state_dict()[k])
    for k, v in before.gen.state_dict().items():
        assert torch.equal(v, after.gen.state_dict()[k])
    assert any(not torch.equal(v, after.ae.decoder.state_dict()[k]) for k, v in before.ae.decoder.state_dict().items())
    rows = (tmp_path / "dec" / "decoder_loss.csv").read_text().splitlines()
    assert rows[0].startswith("step,mse,grad_l1")


@pytest.mark.slow
def test_decoder_adversarial_weight_is_capped(tiny_model_dir, tmp_path):
    """The adaptive weight never exceeds max_adv_w: a discriminator near chance would otherwise have
    its small, noisy gradients scaled up by the ratio and stamped into the decoder as halos."""
    import csv

    from engine.train.decoder import DecoderTrainArgs, train_decoder

    train_decoder(DecoderTrainArgs(model=str(tiny_model_dir), out=str(tmp_path / "dec"), steps=12, batch=4,
                                   gan_start=0, save_every=12, max_adv_w=1e-6), progress=False)
    ws = [float(r["adv_w"]) for r in csv.DictReader(open(tmp_path / "dec" / "decoder_loss.csv"))]
    assert len(ws) == 2 and all(0 < w <= 1e-6 for w in ws)
    assert (tmp_path / "dec" / "discriminator_optim.safetensors").exists()   # a resume keeps D's Adam moments
    train_decoder(DecoderTrainArgs(model=str(tiny_model_dir), out=str(tmp_path / "dec"), steps=24, batch=4,
                                   gan_start=0, save_every=12, max_adv_w=1e-6), progress=False)
    steps = [int(r["step"]) for r in csv.DictReader(open(tmp_path / "dec" / "decoder_loss.csv"))]
    assert steps == [0, 10, 20]


def test_latent_guard_moves_only_out_of_range_channel_means():
    from engine.model.latent_range import channel_mean_range, clamp_channel_means

    g = torch.Generator().manual_seed(0)
    real = torch.randn(50, 4, 8, 8, generator=g) * 0.5 + torch.tensor([0.0, 1.0, -1.0, 0.3]).view(1, 4, 1, 1)
    bounds = channel_mean_range(real)
    assert all(lo < hi for lo, hi in bounds) and bounds[1][0] > 0.5 and bounds[2][1] < -0.5
    inside = real[:1]
    assert torch.equal(clamp_channel_means(inside, bounds), inside)        # a real frame is left alone
    drifted = inside.clone()
    drifted[:, 2] += 5.0                                                    # one channel's colour cast
    fixed = clamp_channel_means(drifted, bounds)
    assert torch.allclose(fixed[:, 2].mean(), torch.tensor(bounds[2][1]), atol=1e-5)
    assert torch.allclose(fixed[:, 2] - fixed[:, 2].mean(), drifted[:, 2] - drifted[:, 2].mean(), atol=1e-5)
    assert torch.equal(fixed[:, [0, 1, 3]], drifted[:, [0, 1, 3]])
    assert clamp_channel_means(drifted, None) is drifted


def test_latent_range_is_measured_on_rendered_training_worlds(tiny_model_dir, egl, tmp_path, eval_seed):
    import shutil

    from explorer.cli import main

    model_dir = tmp_path / "m"
    shutil.copytree(tiny_model_dir, model_dir)
    assert main(["train", "latent-range", "--model", str(model_dir), "--seeds", "3:5", "--frames", "20"]) == 0
    from engine.model.world_model import WorldModel

    m = WorldModel.load(model_dir)
    assert len(m.cfg.latent_mean_range) == m.latent_channels
    assert all(lo <= hi for lo, hi in m.cfg.latent_mean_range)
    assert main(["train", "latent-range", "--model", str(model_dir), "--seeds", f"{eval_seed}:{eval_seed + 1}"]) == 2
    # The session holds a generated latent's channel means inside the measured range.
    from engine.world.levels import generate_level
    from engine.world.renderer import Renderer

    traj = make_trajectory(eval_seed, "explore", frames=12, resolution=(64, 64))
    r = Renderer(generate_level(eval_seed), 64, 64, traj.fov_deg)
    rgb, depth = r.render(traj.frames[:1])
    r.close()
    s = WorldSession(m, steps=1)
    s.observe(rgb[0], traj.frames[0], depth[0])
    b = torch.tensor(m.cfg.latent_mean_range)
    for p in traj.frames[1:]:
        s.step(p)
        mu = s._prev[0].mean(dim=(2, 3))[0]
        assert bool(((mu >= b[:, 0] - 1e-5) & (mu <= b[:, 1] + 1e-5)).all())
