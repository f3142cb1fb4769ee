"""Encoded training walks: one walk of every trajectory kind per training world, rendered on
the machine that trains and encoded once by the frozen autoencoder. Latents (fp16), latent-cell
depth and poses stay in RAM; the pixels are dropped. The sampler (world_data.py) and the
history canvases (history.py) read them."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engine.model.autoencoder import cell_depth, to_model_image
from engine.model.world_model import WorldModel
from engine.trajectory import make_trajectory
from engine.world.geometry import TRAIN_SEED_LIMIT
from engine.world.levels import generate_level

KINDS_FRAMES = (("turnaround", None), ("retrace", None), ("out-and-back", None), ("explore", 300))


@dataclass
class Walk:
    z: torch.Tensor       # (L, C, S, S) float16 raw (unnormalised) latents
    depth: torch.Tensor   # (L, S, S) float32 latent-cell depth in metres
    c2w: torch.Tensor     # (L, 4, 4) float32
    fwd: np.ndarray       # (L, 3) forward vectors, for choosing relevant memory frames
    pos: np.ndarray       # (L, 3)
    # Leading frames a session observes (the trajectory's `observe`); the rest are generated at
    # inference. None for walks cached before it was stored (walk_observe_counts rebuilds it).
    observe: int | None = None
    # (L, 9, S, S) float16 scene layout of each frame (engine/model/layout_cells.py); None in walk
    # caches from before the layout, which only layout-free (v1) generators can train on.
    layout: torch.Tensor | None = None


@torch.no_grad()
def build_walks(model: WorldModel, seeds: list[int], fov_deg: float, device, progress: bool = True,
                encode_batch: int = 64) -> list[Walk]:
    """Render and encode one walk of each kind per training seed, with its scene layout."""
    from tqdm import tqdm

    from engine.model.layout_cells import layout_cells
    from engine.world.layout import LayoutRenderer
    from engine.world.renderer import Renderer

    bad = [s for s in seeds if not 0 <= s < TRAIN_SEED_LIMIT]
    if bad:
        raise ValueError(f"training seeds must be in [0, {TRAIN_SEED_LIMIT}), got {bad[:5]}")
    size, cells = model.image_size, model.cells
    renderer = layouts = None
    walks: list[Walk] = []
    for seed in tqdm(seeds, desc="render+encode walks", disable=not progress):
        level = generate_level(seed)
        if renderer is None:
            renderer = Renderer(level, size, size, fov_deg)
            layouts = LayoutRenderer(level, size, size, fov_deg)
        else:
            renderer.set_level(level)
            layouts.set_level(level)
        for traj in _walk_trajectories(level, seed, fov_deg, size):
            poses = traj.frames
            rgb, depth = renderer.render(poses)
            zs = []
            for i in range(0, len(poses), encode_batch):
                x = to_model_image(torch.from_numpy(rgb[i:i + encode_batch])).to(device)
                zs.append(model.ae.encode(x).half().cpu())
            d = cell_depth(torch.from_numpy(depth)[:, None], cells)[:, 0]
            lay, _ = layout_cells(layouts.layout(poses), cells)
            c2w = torch.from_numpy(np.stack([p.c2w() for p in poses]).astype(np.float32))
            walks.append(Walk(torch.cat(zs), d, c2w, np.stack([p.forward() for p in poses]),
                              np.stack([p.xyz for p in poses]), traj.observe, lay.half()))
    return walks


def _walk_trajectories(level, seed: int, fov_deg: float, size: int) -> list:
    """The trajectories a training world's walks follow, one per kind (KINDS_FRAMES order)."""
    return [make_trajectory(level, kind, frames=frames, fov_deg=fov_deg, resolution=(size, size),
                            rng_seed=seed * 7 + k) for k, (kind, frames) in enumerate(KINDS_FRAMES)]


def walk_observe_counts(seeds: list[int], fov_deg: float, size: int) -> list[int]:
    """Observed-frame counts of the walks build_walks makes for these seeds, without rendering
    (trajectories are cheap to rebuild): for walk caches written before Walk.observe existed."""
    return [t.observe for seed in seeds for t in _walk_trajectories(generate_level(seed), seed, fov_deg, size)]


def latent_stats(walks: list[Walk]) -> tuple[float, float]:
    """Mean and std over all latents: the normalisation the generator and memory use."""
    allz = torch.cat([w.z.float().flatten() for w in walks])
    return float(allz.mean()), float(allz.std())
