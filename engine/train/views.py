"""Views of training worlds with the looks a session would read off them, for the stages that teach
or measure appearance (engine/train/texture.py, engine/train/look_prior.py).

Each world is drawn from random free poses by the ground-truth renderer (training worlds only: these
frames are training data) and its layout by the layout's own G-buffer pass; the looks are what
appearance.read_look reads from an observation: the posterior's mean code, which segments the view
shows enough of, and the pattern lock.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from engine.model.appearance import read_look
from engine.model.autoencoder import to_model_image
from engine.model.layout_cells import PIXEL_CHANNELS, SceneLayout
from engine.model.world_model import WorldModel
from engine.train.ae import random_free_poses
from engine.world.geometry import TRAIN_SEED_LIMIT


@dataclass
class LookedViews:
    """One world's views: ground truth (N, 3, H, W) in [-1, 1], layout geometry (N, 26, H, W), surface
    coordinates (N, 2, H, W), segments (N, 1, H, W), and per segment the posterior's mean code (N, S, D),
    whether it is shown enough to read (N, S) bool, and its pattern lock (N, S, LOCK)."""
    seed: int
    x: torch.Tensor
    geometry: torch.Tensor
    uv: torch.Tensor
    seg: torch.Tensor
    code: torch.Tensor
    present: torch.Tensor
    lock: torch.Tensor
    plain: torch.Tensor | None = None   # the same views of the level's pattern-free twin (N, 3, H, W), or None


@torch.no_grad()
def looked_views(model: WorldModel, seeds: tuple[int, int], views: int, generator: torch.Generator | None = None,
                 plain: bool = False) -> Iterator[LookedViews]:
    """`views` views of each training world in range(*seeds), one world at a time, on the model's device;
    with `plain`, each also drawn in the level's pattern-free twin (engine/world/plain.py)."""
    from engine.world.levels import generate_level
    from engine.world.plain import plain_level
    from engine.world.renderer import Renderer

    if model.ae.appearance is None:
        raise ValueError("this model has no appearance codes (config.json autoencoder.appearance_dim is 0)")
    if not (0 <= seeds[0] < seeds[1] <= TRAIN_SEED_LIMIT):
        raise ValueError(f"seeds {seeds[0]}:{seeds[1]} must be training worlds (below {TRAIN_SEED_LIMIT})")
    dev = next(model.ae.parameters()).device
    size = model.image_size
    renderer = source = None
    try:
        for s in range(*seeds):
            level = generate_level(s)
            if renderer is None:
                renderer = Renderer(level, size, size, model.cfg.fov_deg)
                source = SceneLayout.for_model(level, model)
            else:
                renderer.set_level(level)
                source.set_level(level)
            poses = random_free_poses(level, views, np.random.default_rng(s))
            rgb, _ = renderer.render(poses)
            pixels, uv, seg = (t.to(dev) for t in source.views_of(poses))
            x = to_model_image(torch.from_numpy(rgb)).to(dev)
            geometry = pixels[:, :PIXEL_CHANNELS]
            code, present, lock = read_look(model.ae.appearance, x, geometry, uv, seg, generator)
            flat = None
            if plain:
                renderer.set_level(plain_level(level))
                flat = match_segment_means(to_model_image(torch.from_numpy(renderer.render(poses)[0])).to(dev), x, seg)
            yield LookedViews(s, x, geometry, uv, seg, code, present, lock, flat)
    finally:
        if renderer is not None:
            renderer.close()
            source.close()


def match_segment_means(plain: torch.Tensor, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    """`plain` (N, 3, H, W) shifted segment by segment (`seg`, N, 1, H, W) to the mean colour of `x` there:
    a pattern's mean albedo is only estimated (engine/world/plain.py), and a colour error in the twin's
    frames would teach the texture field to tint what it draws."""
    ids = seg.long() + 1   # -1 (nothing drawn) is a bucket of its own
    k = int(ids.max()) + 1
    n = plain.shape[0]
    flat = ids.view(n, 1, -1).expand(-1, 3, -1)
    count = torch.zeros(n, 3, k, device=x.device).scatter_add_(2, flat, torch.ones_like(x.view(n, 3, -1)))
    diff = torch.zeros(n, 3, k, device=x.device).scatter_add_(2, flat, (x - plain).view(n, 3, -1))
    shift = diff / count.clamp(min=1.0)
    return plain + shift.gather(2, flat).view_as(plain)
