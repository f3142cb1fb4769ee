"""Rectified-flow process for the generator: training targets and a few-step sampler.

Path: x_t = t * x0 + (1 - t) * noise, t in [0, 1] (t = 1 is clean). The network
predicts x0 directly (x-prediction holds up better than velocity at 1-4 steps);
the Euler step uses the implied velocity (x0_hat - x_t) / (1 - t). The step
count is a runtime knob: the same weights run at 1, 2, 4 or 8 steps.

The starting noise can be drawn wider than the unit Gaussian the network was trained on
(`temperature` > 1). With x0-prediction at 4 steps the first prediction from pure noise is close
to the conditional mean, and on unseen walls that mean is flat colour; a wider start leaves the
network more to resolve and it resolves it into texture. Measured in docs/MODEL.md ("Sampling
temperature"); 1 is plain rectified flow.
"""
from __future__ import annotations

from typing import Callable

import torch


def sample_train_t(b: int, device, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flow times for training: a quarter exactly at t = 0 (every sampler's first step), the rest logit-normal."""
    t = torch.sigmoid(torch.randn(b, generator=generator) * 1.0 - 0.3)
    at_zero = torch.rand(b, generator=generator) < 0.25
    t = torch.where(at_zero, torch.zeros_like(t), t)
    return t.to(device)


def noisy(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    tt = t.view(-1, 1, 1, 1)
    return tt * x0 + (1 - tt) * noise


def schedule(steps: int) -> list[float]:
    if steps < 1:
        raise ValueError(f"sampling steps must be at least 1, got {steps}")
    return [i / steps for i in range(steps + 1)]


@torch.no_grad()
def sample(model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], shape: tuple[int, ...], steps: int,
           generator: torch.Generator | None, device, dtype=torch.float32, temperature: float = 1.0) -> torch.Tensor:
    """Integrate from noise (t = 0) to a clean latent (t = 1) in `steps` Euler steps.

    `model(x_t, t)` returns the x0 prediction; the conditioning is bound by the caller. The
    starting noise is scaled by `temperature` (the same draws for every temperature); callers
    validate it once (WorldSession does, with engine.model.config.check_temperature), not every frame.
    """
    x = torch.randn(shape, generator=generator, device="cpu", dtype=torch.float32).to(device, dtype)
    if temperature != 1.0:
        x = x * temperature
    ts = schedule(steps)
    x0 = x
    for i in range(steps):
        t0, t1 = ts[i], ts[i + 1]
        tvec = torch.full((shape[0],), t0, device=device, dtype=dtype)
        x0 = model(x, tvec)
        if t1 >= 1.0:
            return x0
        x = x + (t1 - t0) * (x0 - x) / (1.0 - t0)
    return x0
