"""A pixel-space L1 term for the generator's x0 predictions, through the frozen decoder.

Why: the generator is trained with latent MSE, whose optimum is the conditional mean. Where the
next frame is uncertain (an edge that may sit a few pixels either way, content entering the view)
the mean of the possible frames is a ramp or a smear, and on long walks each frame comes out a
little smoother than its context (docs/MODEL.md, "Blurred context"). The per-pixel L1 optimum is
the conditional median instead, and the median of step edges at uncertain positions is still a
step, at the median position: the reason image autoencoders and super-resolution nets train with
L1 rather than MSE. The latent MSE stays, so the flow's x0 targets keep their meaning; this term
only pulls each prediction towards latents that decode to the median frame.

No gradient-L1 here (the decoder stage has one): under positional uncertainty the median image
gradient at a pixel is zero, so it would favour flat predictions, the opposite of what is wanted.
The decoder is frozen; gradients flow through it into the generator only.

Measured once (docs/MODEL.md, "A decoded-frame L1 term for the generator"): a 60-minute CPU
fine-tune with W = 1 raised PSNR and lowered sharpness (0.393 / 0.284 -> 0.315 / 0.141 on training
world 500). The small generator answered the term by being more faithful, not sharper, so it is
off by default and not in the shipped weights.
"""
from __future__ import annotations

import torch

from engine.model.world_model import WorldModel


def pixel_l1(model: WorldModel, pred: torch.Tensor, x0: torch.Tensor, n: int) -> torch.Tensor:
    """Mean absolute difference between the decoded first `n` x0 predictions and their decoded
    targets (normalised latents (B, C, S, S); images in [-1, 1]). Targets decode as encoder
    latents, predictions as generated ones, as the session decodes them."""
    if n <= 0:
        raise ValueError(f"pixel_l1 needs at least one example, got n={n}")
    pred, x0 = pred[:n].float(), x0[:n].float()
    with torch.no_grad():
        target, _ = model.ae.decoder(model.ae_latent(x0), 0.0)
    image, _ = model.ae.decoder(model.ae_latent(pred), 1.0)
    return (image - target).abs().mean()
