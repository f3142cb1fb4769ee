"""Can a latent discriminator tell the generator's one-step predictions from real latents?

    python docs/scripts/disc_regime.py [MODEL|default] [--blur P]

Trains a fresh engine/train/latent_adv.LatentAdversary for 150 steps (batch 32) on the shipped
model's training walks (runs/walks48/walks.safetensors: `mirage train world --autoencoder
assets/models/default --out runs/walks48 --init assets/models/default --seeds 100000:100048
--steps 0`), first 40 walks, against the generator's x0 predictions at random flow times, with
the previous latent blurred in a share P of examples (`--context-blur`). Prints the hinge loss
every 25 steps, then the discriminator's scores and the per-channel spatial std of real latents
and of one-step (t = 0) predictions. About a minute on 2 cores. docs/MODEL.md, "Adversarial loss".
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch

from engine.model.generator import cond_channels
from engine.model.sampler import noisy, sample_train_t
from engine.model.world_model import WorldModel
from engine.train import dist
from engine.train.latent_adv import LatentAdversary
from engine.train.world import _load_walks
from engine.train.world_data import WalkSampler

ap = argparse.ArgumentParser()
ap.add_argument("model", nargs="?", default="default")
ap.add_argument("--blur", type=float, default=0.0)
ap.add_argument("--lr", type=float, default=5e-4)
ap.add_argument("--walks", default="runs/walks48/walks.safetensors")
a = ap.parse_args()
torch.set_num_threads(2)
torch.manual_seed(0)
m = WorldModel.load(None if a.model == "default" else a.model)
cfg = m.cfg
walks = _load_walks(Path(a.walks))[:40]
s = WalkSampler(walks, cells=m.cells, fov_deg=cfg.fov_deg, shift=cfg.latent_shift, scale=cfg.latent_scale,
                rng=np.random.default_rng(0), context_noise=cfg.generator.context_noise, context_blur=a.blur)
c = m.latent_channels
adv = LatentAdversary(c, cond_channels(c), 0.5, 0, a.lr, torch.device("cpu"), dist.setup("cpu"))
t0, losses = time.time(), []
for step in range(150):
    x0, cond = s.batch(32, "cpu")
    t = sample_train_t(32, "cpu")
    with torch.no_grad():
        pred = m.gen(noisy(x0, t, torch.randn_like(x0)), t, cond)
    losses.append(adv.discriminator_step(x0, pred, cond, step))
    if step % 25 == 24:
        print(f"step {step + 1}: hinge loss {np.mean(losses[-25:]):.3f} ({time.time() - t0:.0f} s)", flush=True)
with torch.no_grad():
    x0, cond = s.batch(64, "cpu")
    t = torch.zeros(64)
    pred = m.gen(noisy(x0, t, torch.randn_like(x0)), t, cond)
    print(f"D real {adv.disc(x0, cond).mean().item():.3f}, one-step predictions {adv.disc(pred, cond).mean().item():.3f}")
    print(f"spatial std real {x0.std(dim=(2, 3)).mean().item():.3f}, one-step predictions {pred.std(dim=(2, 3)).mean().item():.3f}")
