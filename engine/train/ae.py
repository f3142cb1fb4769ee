"""`mirage train autoencoder`: reconstruction of RGB and metric depth.

Frames are rendered on the fly from training seeds into a pool that is refreshed
every few hundred steps, so no dataset sits on disk and each step sees many
worlds. The renderer runs on the same machine as training (CPU or GPU box).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.camera import Pose
from engine.device import resolve_device
from engine.model.autoencoder import Autoencoder, to_model_image
from engine.model.config import ModelConfig
from engine.train.checkpoint import (
    LossLog,
    load_checkpoint,
    save_checkpoint,
    save_run_args,
    save_tensors,
)
from engine.world.geometry import EYE_HEIGHT, TRAIN_SEED_LIMIT
from engine.world.levels import Level, generate_level


@dataclass
class AETrainArgs:
    out: str
    steps: int = 3000
    batch: int = 32
    lr: float = 1e-3
    seeds: tuple[int, int] = (0, 100_000)
    pool_scenes: int = 48
    pool_frames: int = 32          # frames per scene in the pool
    refresh_every: int = 150
    save_every: int = 200
    device: str = "auto"
    seed: int = 0
    time_limit_s: float = 0.0      # stop (with a checkpoint) after this wall time; 0 = no limit


def random_free_poses(level: Level, n: int, rng: np.random.Generator, margin: float = 0.4) -> list[Pose]:
    """Eye poses in free space (rooms and corridors, clear of solid furniture), any heading."""
    rects = level.walkable_rects()
    areas = np.array([(hi[0] - lo[0]) * (hi[1] - lo[1]) for lo, hi in rects])
    solids = [b for b in level.static_boxes if b.solid and b.material != 1]
    poses = []
    while len(poses) < n:
        lo, hi = rects[rng.choice(len(rects), p=areas / areas.sum())]
        if hi[0] - lo[0] < 2 * margin or hi[1] - lo[1] < 2 * margin:
            continue
        x, z = rng.uniform(lo[0] + margin, hi[0] - margin), rng.uniform(lo[1] + margin, hi[1] - margin)
        if any(b.lo[0] - margin < x < b.hi[0] + margin and b.lo[2] - margin < z < b.hi[2] + margin for b in solids):
            continue
        pitch = float(np.clip(rng.normal(0.0, 8.0), -30, 30))
        poses.append(Pose((x, EYE_HEIGHT + rng.normal(0, 0.03), z), rng.uniform(-180, 180), pitch))
    return poses


class FramePool:
    """A refreshable pool of rendered (rgb, depth) frames from random training worlds; with
    `max_depth` set, also the full-resolution scene layout of each (for a decoder that takes it),
    drawn by the layout's own G-buffer pass, never from the frame."""

    def __init__(self, size: int, seeds: tuple[int, int], scenes: int, frames: int, rng: np.random.Generator,
                 fov_deg: float = 70.0, max_depth: float | None = None) -> None:
        from engine.world.renderer import Renderer

        if seeds[1] > TRAIN_SEED_LIMIT:
            raise ValueError(f"training seeds must be below {TRAIN_SEED_LIMIT}, got {seeds}")
        self.seeds, self.scenes, self.frames, self.rng = seeds, scenes, frames, rng
        self.renderer = Renderer(generate_level(seeds[0]), size, size, fov_deg)
        self.layout_renderer, self.max_depth = None, max_depth
        if max_depth is not None:
            from engine.world.layout import LayoutRenderer

            self.layout_renderer = LayoutRenderer(generate_level(seeds[0]), size, size, fov_deg)
        self.layout: torch.Tensor | None = None
        self.refresh()

    def refresh(self) -> None:
        rgbs, depths, layouts, surfaces = [], [], [], []
        for s in self.rng.integers(self.seeds[0], self.seeds[1], self.scenes):
            level = generate_level(int(s))
            self.renderer.set_level(level)
            poses = random_free_poses(level, self.frames, self.rng)
            rgb, depth = self.renderer.render(poses)
            rgbs.append(rgb)
            depths.append(depth)
            if self.layout_renderer is not None:
                from engine.model.layout_cells import (
                    Planes,
                    layout_pixels,
                    surface_planes,
                )

                self.layout_renderer.set_level(level)
                planes = Planes(self.layout_renderer.layout(poses))
                layouts.append(layout_pixels(planes, self.max_depth).half())
                surfaces.append(surface_planes(planes))
        self.rgb = torch.from_numpy(np.concatenate(rgbs))
        self.depth = torch.from_numpy(np.concatenate(depths))
        self.layout = torch.cat(layouts) if layouts else None
        self.surface = torch.cat(surfaces) if surfaces else None

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.batch_with_layout(n)[:2]

    def batch_with_layout(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """rgb uint8 (n, H, W, 3), depth (n, H, W) metres, layout float (n, 26, H, W) and its surface
        planes (n, 3, H, W) (engine/model/layout_cells.surface_planes), or None and None."""
        idx = torch.from_numpy(self.rng.integers(0, len(self.rgb), n))
        if self.layout is None:
            return self.rgb[idx], self.depth[idx], None, None
        return self.rgb[idx], self.depth[idx], self.layout[idx].float(), self.surface[idx]


def pick_device(name: str) -> torch.device:
    """The training device (engine/device.py: a device this machine lacks is refused by name)."""
    return resolve_device(name)


def ae_loss(ae: Autoencoder, rgb: torch.Tensor, depth: torch.Tensor, latent_noise: float = 0.03
            ) -> tuple[torch.Tensor, dict]:
    """rgb (B, 3, H, W) in [-1, 1], depth (B, 1, H, W) metres."""
    z = ae.encoder(rgb)
    zn = z + latent_noise * torch.randn_like(z)  # robustness to the generator's small errors
    out, logd = ae.decoder(zn)
    mse = F.mse_loss(out, rgb)
    l1 = (out - rgb).abs().mean()
    dl = (logd - depth.clamp(min=0.05).log()).abs().mean()
    reg = z.pow(2).mean()
    loss = mse + 0.1 * l1 + 0.1 * dl + 1e-4 * reg
    psnr = 10 * math.log10(4.0 / max(mse.item(), 1e-10))
    return loss, {"loss": loss.item(), "mse": mse.item(), "psnr": psnr, "depth_l1log": dl.item(),
                  "latent_rms": reg.sqrt().item()}


def train_autoencoder(cfg: ModelConfig, args: AETrainArgs, progress: bool = True) -> Path:
    """Train (or resume) the autoencoder; returns the checkpoint directory."""
    from tqdm import tqdm

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    dev = pick_device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / "config.json")
    ae = Autoencoder(cfg.autoencoder).to(dev)
    opt = torch.optim.AdamW(ae.parameters(), lr=args.lr, weight_decay=0.0)
    start, elapsed0 = 0, 0.0
    if (out / "state.json").exists():
        state = load_checkpoint(out, {"autoencoder": ae}, opt)
        start, elapsed0 = state["step"], float(state.get("wall_s", 0.0))
    save_run_args(out, args, start)
    log = LossLog(out / "ae_loss.csv", ["step", "loss", "psnr", "depth_l1log", "latent_rms", "sec"])
    pool = FramePool(cfg.autoencoder.image_size, args.seeds, args.pool_scenes, args.pool_frames, rng, cfg.fov_deg)
    t0 = time.time()
    bar = tqdm(range(start, args.steps), initial=start, total=args.steps, disable=not progress, desc="autoencoder")
    stats: dict = {}
    for step in bar:
        if step > start and step % args.refresh_every == 0:
            pool.refresh()
        frac = step / args.steps  # cosine over steps or the wall-clock budget, whichever runs out first
        if args.time_limit_s:
            frac = max(frac, (time.time() - t0 + elapsed0) / args.time_limit_s)
        lr = args.lr * min(1.0, (step + 1) / 100) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))
        for g in opt.param_groups:
            g["lr"] = lr
        rgb_u8, depth = pool.batch(args.batch)
        loss, stats = ae_loss(ae, to_model_image(rgb_u8).to(dev), depth[:, None].to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ae.parameters(), 1.0)
        opt.step()
        if step % 20 == 0:
            bar.set_postfix(psnr=f"{stats['psnr']:.2f}", depth=f"{stats['depth_l1log']:.3f}")
            log.append({"step": step, **stats, "sec": time.time() - t0})
        done = step + 1 == args.steps or bool(args.time_limit_s and time.time() - t0 + elapsed0 > args.time_limit_s)
        if (step + 1) % args.save_every == 0 or done:
            save_checkpoint(out, {"autoencoder": ae}, opt, step + 1, {"wall_s": time.time() - t0 + elapsed0})
            log.plot()
        if done:
            break
    save_tensors(out / "autoencoder.safetensors", ae.state_dict())
    return out
