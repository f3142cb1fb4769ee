"""Adversarial loss on the generator's latents (`mirage train world --adv-weight W`).

Why: the generator is trained to predict x0 with an MSE, so at every flow time its
prediction is the mean of the frames that fit the conditioning. Where the context
pins the frame down (memory, the warped previous frame) that mean is sharp; where
the view is new it is a smooth average, and a 2.5 M-parameter flow model trained
for hours, not weeks, does not sample the detail back in. Fed back as the next
frame's context, that smoothness compounds until long walks are flat colour
(docs/MODEL.md). A discriminator that tells the generator's x0 predictions from
encoder latents of real frames pushes the prediction towards latents that look
like real ones instead of their average, as adversarial diffusion distillation
does for few-step samplers and as our decoder stage (engine/train/decoder.py)
does for pixels. The MSE stays, so the prediction stays tied to the ground truth.

The discriminator is conditional: it sees the latent with the generator's
conditioning (context, warped context, memory canvas, rays), so it judges
"a plausible next frame here", not only "some frame". It works on the 16x16
latent grid, so it costs little beside the generator (no decoding in the loop).
Its weight is set from gradient norms at the generator's last layer, as VQGAN
does, so `--adv-weight` is a ratio to the reconstruction gradient, not a number
tied to the loss scale. Training-only: the shipped model never holds it.

Where it has something to judge: with clean (only noised) contexts the shipped
generator's one-step predictions are nearly as detailed as real latents (spatial
std 0.81 against 0.87, 64 examples of the training walks) and a discriminator
stayed at chance for 150 steps at learning rates 5e-4 and 2e-3. With the previous
latent blurred as the model's own frames are (`--context-blur`) they fall to 0.62
against 0.85 and it separates them within 150 steps (hinge loss 2.0 -> 1.0). So
the term is meant for that regime: it teaches the generator to put detail back
where its context has lost it, the step that compounds into flat frames.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

from engine.model.conditioning import channel
from engine.train import dist
from engine.train.checkpoint import load_optimizer, save_optimizer, save_tensors


def adaptive_weight(rec: torch.Tensor, adv: torch.Tensor, last_weight: torch.Tensor, scale: float) -> float:
    """VQGAN's balance: scale x |d rec / d last_weight| / |d adv / d last_weight|, so the adversarial
    gradient reaching the last layer is `scale` times the reconstruction's whatever the losses' scales.
    Also the decoder stage's (engine/train/decoder.py)."""
    g_rec = torch.autograd.grad(rec, last_weight, retain_graph=True)[0]
    g_adv = torch.autograd.grad(adv, last_weight, retain_graph=True)[0]
    return float((g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0, 1e4)) * scale


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's hinge loss (also the decoder stage's)."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


class LatentDiscriminator(nn.Module):
    """Convs on the latent grid with the conditioning stacked on, down to (S/2)^2 patch logits."""

    def __init__(self, latent_channels: int, cond_channels: int, width: int = 96) -> None:
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(latent_channels + cond_channels, w, 3, 1, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(w, w, 3, 1, 1), nn.GroupNorm(8, w), nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.GroupNorm(8, 2 * w), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 2 * w, 3, 1, 1), nn.GroupNorm(8, 2 * w), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 1, 3, 1, 1),
        )

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, cond], dim=1))


class LatentAdversary:
    """Owns the discriminator and its optimizer; the generator's trainer asks it for the
    generator's adversarial term and hands it each batch for one discriminator step."""

    def __init__(self, latent_channels: int, cond_channels: int, weight: float, start: int, lr: float,
                 device: torch.device, info: dist.DistInfo, covered: float = 1.0) -> None:
        self.weight, self.start, self.covered = float(weight), int(start), float(covered)
        self.latent_channels = latent_channels
        self.disc = LatentDiscriminator(latent_channels, cond_channels).to(device)
        self.disc_train = dist.wrap(self.disc, info)   # DDP averages its gradients across processes
        self.opt = torch.optim.Adam(self.disc.parameters(), lr=lr, betas=(0.5, 0.9))

    # The discriminator learns alone for a while first: an untrained one gives the
    # generator noise for gradients, and its adaptive weight would be meaningless.
    def generator_active(self, step: int) -> bool:
        return step >= self.start

    def discriminator_active(self, step: int) -> bool:
        return step >= max(0, self.start - 200)

    def generator_term(self, rec: torch.Tensor, pred: torch.Tensor, cond: torch.Tensor,
                       last_weight: torch.Tensor, step: int) -> tuple[torch.Tensor, float, float]:
        """(term to add to the generator's loss, the adversarial loss, its weight); zero before `start`."""
        if not self.generator_active(step):
            return torch.zeros((), device=pred.device), 0.0, 0.0
        # The plain module, frozen: the generator's backward must not fill the discriminator's grads,
        # and a second forward through its DDP wrapper before its own backward would confuse DDP.
        self.disc.requires_grad_(False)
        if self.covered != 1.0:
            # Where memory shows the place, the frame should repeat it, not be sharpened again:
            # generated frames go back into memory, and a push on every pass compounds into colour
            # drift on long walks (docs/MODEL.md, "Adversarial loss on blurred contexts"). The
            # discriminator still judges the whole latent, but its gradient reaches a covered cell
            # `covered` times (its receptive field spans the grid, so masking its patch logits
            # instead would not keep the push off covered cells).
            keep = 1.0 - (1.0 - self.covered) * channel(cond, "memory_mask", self.latent_channels).float()
            pred = pred.float()
            pred = pred * keep + pred.detach() * (1.0 - keep)
        g_adv = -self.disc(pred.float(), cond.float()).mean()
        self.disc.requires_grad_(True)
        # Balanced on the term as masked: the adversarial gradient at the last layer is `weight` times
        # the reconstruction's, all of it through the cells it may reach. (Balancing on the unmasked
        # term was tried first: the discriminator, unopposed on covered cells, grew confident, its
        # gradients large, and the weight fell to a 15-30th of the unmasked run's.)
        w = adaptive_weight(rec, g_adv, last_weight, self.weight)
        return w * g_adv, float(g_adv.detach()), w

    def discriminator_step(self, real: torch.Tensor, fake: torch.Tensor, cond: torch.Tensor, step: int) -> float:
        """One hinge-loss step on encoder latents (real) against the generator's x0 predictions (fake)."""
        if not self.discriminator_active(step):
            return 0.0
        cond = cond.float()
        both = self.disc_train(torch.cat([real.float(), fake.detach().float()]), torch.cat([cond, cond]))
        loss = hinge_d_loss(*both.chunk(2))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return float(loss.detach())

    def save(self, run_dir: Path) -> None:
        save_tensors(run_dir / "discriminator.safetensors", self.disc.state_dict())
        save_optimizer(run_dir / "discriminator_optim.safetensors", self.opt)

    def load(self, run_dir: Path) -> bool:
        """Restore a resumed run's discriminator; False when the run had none yet (--adv-weight added on resume)."""
        path = run_dir / "discriminator.safetensors"
        if not path.exists():
            return False
        self.disc.load_state_dict(load_file(str(path)))
        load_optimizer(run_dir / "discriminator_optim.safetensors", self.opt)
        return True
