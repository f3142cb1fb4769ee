"""The generator's adversarial loss (engine/train/latent_adv.py), on the tiny model's real encoded walks."""
from __future__ import annotations

import csv

import pytest
import torch
from safetensors.torch import load_file

from tests.model_fixtures import fine_tune_tiny, tiny_model_dir  # noqa: F401  (session fixture)


def _walk_latents(tiny_model_dir) -> torch.Tensor:
    from engine.train.world import _load_walks

    walks = _load_walks(tiny_model_dir.parent / "walks.safetensors")
    return torch.cat([w.z.float() for w in walks])


@pytest.mark.slow
def test_discriminator_learns_real_latents_from_smoothed_ones_and_steers_the_generator(tiny_model_dir):
    """Real encoder latents against their 3x3-smoothed copies (what the generator's averages look like):
    the discriminator learns to score the real ones higher, and the generator's term then moves a
    smoothed latent towards a higher score."""
    from engine.train import dist
    from engine.train.decoder import soften
    from engine.train.latent_adv import LatentAdversary

    torch.manual_seed(0)
    z = _walk_latents(tiny_model_dir)
    z = (z - z.mean()) / z.std()
    c = z.shape[1]
    cond = torch.zeros(len(z), 5, z.shape[2], z.shape[3])
    info = dist.setup("cpu")
    adv = LatentAdversary(c, 5, weight=1.0, start=0, lr=1e-3, device=torch.device("cpu"), info=info)
    g = torch.Generator().manual_seed(0)
    losses = []
    for step in range(60):
        idx = torch.randint(0, len(z), (16,), generator=g)
        real = z[idx]
        losses.append(adv.discriminator_step(real, soften(real, 1.0, passes=2), cond[idx], step))
    assert sum(losses[-10:]) / 10 < 0.6 * sum(losses[:10]) / 10
    real = z[:32]
    fake = soften(real, 1.0, passes=2)
    with torch.no_grad():
        assert adv.disc(real, cond[:32]).mean() > adv.disc(fake, cond[:32]).mean() + 0.5

    # The generator's term: a stand-in "last layer" delta is added to the smoothed latent; the
    # reconstruction loss ties it to the real one and sets the term's weight. Small gradient steps on
    # the term raise the discriminator's score. (Steps on rec + term need not: the adaptive weight makes
    # the two gradients equal in size, and where they point opposite ways the latent barely moves; an
    # earlier version of this test asserted on that sum with one scalar as the layer, and failed on
    # a fall of 4e-6 in -D.)
    d_grads = [p.grad.clone() for p in adv.disc.parameters()]   # left by its last own step
    delta = torch.zeros_like(fake, requires_grad=True)
    before = None
    for step in range(5):
        pred = fake + delta
        rec = (pred - real).pow(2).mean()
        term, g_adv, weight = adv.generator_term(rec, pred, cond[:32], delta, step)
        assert weight > 0 and term.requires_grad
        before = g_adv if before is None else before
        term.backward()
        with torch.no_grad():
            delta -= 0.02 * delta.grad.sign()
            delta.grad = None
    assert g_adv < before - 0.05   # -D(pred) fell: the prediction scores as more real
    # The generator's backward leaves the discriminator's gradients as its own step left them.
    assert all(torch.equal(p.grad, g0) for p, g0 in zip(adv.disc.parameters(), d_grads))


def test_covered_factor_takes_the_push_off_cells_memory_shows(tiny_model_dir):
    """--adv-covered 0: where the memory mask covers the view the generator gets no adversarial push,
    where it covers nothing the push is the unmasked one, and a half-covered view is pushed on its
    uncovered half only (a discriminator trained a few steps on real latents against smoothed ones)."""
    from engine.model.conditioning import channel, cond_channels
    from engine.train import dist
    from engine.train.decoder import soften
    from engine.train.latent_adv import LatentAdversary

    torch.manual_seed(0)
    z = _walk_latents(tiny_model_dir)[:16]
    z = (z - z.mean()) / z.std()
    c, s = z.shape[1], z.shape[2]
    k = cond_channels(c)
    info = dist.setup("cpu")
    make = lambda covered: LatentAdversary(c, k, weight=1.0, start=0, lr=1e-3, device=torch.device("cpu"),  # noqa: E731
                                           info=info, covered=covered)
    even, masked = make(1.0), make(0.0)
    masked.disc.load_state_dict(even.disc.state_dict())
    fake = soften(z, 1.0, passes=2)
    for step in range(5):
        even.discriminator_step(z, fake, torch.zeros(len(z), k, s, s), step)
    masked.disc.load_state_dict(even.disc.state_dict())

    def push(adv, coverage: torch.Tensor) -> torch.Tensor:
        cond = torch.zeros(len(z), k, s, s)
        channel(cond, "memory_mask", c)[:, 0] = coverage
        pred = fake.clone().requires_grad_(True)
        rec = (pred - z).pow(2).mean()
        term, _, w = adv.generator_term(rec, pred, cond, pred, 0)
        assert w > 0
        (grad,) = torch.autograd.grad(term, pred)
        return grad

    none, full = torch.zeros(s, s), torch.ones(s, s)
    assert push(masked, full).abs().max() == 0
    assert torch.allclose(push(masked, none), push(even, none))
    half = torch.zeros(s, s)
    half[:, : s // 2] = 1
    g = push(masked, half).abs()
    assert g[..., : s // 2].abs().max() == 0 and g[..., s // 2:].abs().sum() > 0


def test_world_training_with_adversarial_loss_logs_saves_and_resumes(tiny_model_dir, tmp_path):
    from engine.train.world import WorldTrainArgs, train_world

    out = tmp_path / "adv"
    model_dir = fine_tune_tiny(tiny_model_dir, out, adv_weight=0.5, adv_start=1)
    with open(out / "world_loss.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"g_adv", "d_loss", "adv_w"} <= set(rows[0])
    assert float(rows[0]["d_loss"]) > 0            # the discriminator trains from the first step
    # The shipped model holds the generator only; the discriminator stays in the run directory.
    assert set(load_file(str(model_dir / "generator.safetensors"))) == set(load_file(str(tiny_model_dir / "generator.safetensors")))
    assert not (model_dir / "discriminator.safetensors").exists()
    saved = load_file(str(out / "discriminator.safetensors"))
    assert (out / "discriminator_optim.safetensors").exists()

    # Resume: the discriminator comes back from the run directory, not from scratch.
    from engine.train import latent_adv

    loaded = {}
    orig = latent_adv.LatentAdversary.load

    def spy(self, run_dir):
        ok = orig(self, run_dir)
        loaded.update({k: v.clone() for k, v in self.disc.state_dict().items()}, ok=ok)
        return ok

    latent_adv.LatentAdversary.load = spy
    try:
        world = tiny_model_dir.parent
        train_world(WorldTrainArgs(autoencoder=str(world.parent / "ae"), out=str(out), steps=5, batch=4, seeds=(5, 6),
                                   save_every=100, init=str(tiny_model_dir), adv_weight=0.5, adv_start=1),
                    progress=False)
    finally:
        latent_adv.LatentAdversary.load = orig
    assert loaded.pop("ok") is True
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)
    assert not torch.equal(load_file(str(out / "discriminator.safetensors"))["net.0.weight"], saved["net.0.weight"])


def test_negative_adversarial_weight_is_refused(tiny_model_dir, tmp_path):
    from engine.train.world import WorldTrainArgs, train_world

    with pytest.raises(ValueError, match="adv-weight"):
        train_world(WorldTrainArgs(autoencoder=str(tiny_model_dir.parent.parent / "ae"), out=str(tmp_path / "x"),
                                   steps=1, batch=2, seeds=(5, 6), adv_weight=-1.0), progress=False)


@pytest.mark.slow
def test_two_process_ddp_training_with_adversarial_loss(tiny_model_dir, tmp_path):
    """torchrun, 2 CPU processes (gloo): the discriminator trains under DDP and the generator's
    adaptive weight (autograd.grad through the DDP-wrapped generator) does not upset its reducer."""
    import json
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp_adv"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "explorer.cli", "train", "world", "--autoencoder", str(tiny_model_dir.parent.parent / "ae"),
           "--out", str(out), "--steps", "3", "--batch", "2", "--seeds", "5:6", "--device", "cpu", "--no-progress",
           "--adv-weight", "0.5", "--adv-start", "1", "--context-blur", "0.5"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "state.json").read_text())["step"] == 3
    with open(out / "world_loss.csv") as f:
        assert float(list(csv.DictReader(f))[0]["d_loss"]) > 0
    assert (out / "discriminator.safetensors").exists()
