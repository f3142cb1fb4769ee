"""Timing of the whole WorldSession step and of each stage, p50/p99 (`mirage bench`).

The walk is an explore trajectory of an eval world: a first observation, then
generated frames with memory on, so memory read/write costs grow as they would
for a person walking. Warm-up frames are excluded from the statistics.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np
import torch

def machine_info(device: str = "cpu") -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": device}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def percentiles(values: list[float]) -> dict:
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99))}


def explore_walk(size: int, fov_deg: float, frames: int, scene_seed: int):
    """An explore trajectory of `frames` poses in an eval world and its rendered first view
    (rgb, depth): the one real observation every benchmark walk starts from."""
    from engine.trajectory import make_trajectory
    from engine.world.levels import generate_level
    from engine.world.renderer import Renderer

    traj = make_trajectory(scene_seed, "explore", frames=frames, fov_deg=fov_deg, resolution=(size, size))
    r = Renderer(generate_level(scene_seed), size, size, fov_deg)
    rgb, depth = r.render(traj.frames[:1])
    r.close()
    return traj, rgb[0], depth[0]


def bench_step(model_dir: str | Path | None = None, frames: int = 200, warmup: int = 20, steps: int | None = None,
               memory: bool = True, scene_seed: int = 1_000_007, device: str = "cpu") -> dict:
    """Frames/s and per-stage latency of WorldSession.step at the model's resolution, on torch.

    The torch run of engine.backends.bench with the machine described; `mirage bench` also
    reports it as the torch backend's row instead of timing torch a second time.
    """
    from engine.backends.bench import bench_backend

    r = bench_backend("torch", frames=frames, model_dir=model_dir, steps=steps, warmup=warmup, memory=memory,
                      device=device, scene_seed=scene_seed)
    return {**r, "resolution": r["image_size"], "machine": machine_info(device)}


def format_table(result: dict) -> str:
    lines = [f"WorldSession.step at {result['resolution']}x{result['resolution']}, {result['steps']} sampling steps, "
             f"memory {'on' if result['memory'] else 'off'}, {result['frames']} frames",
             f"  whole step: {result['fps']:.1f} frames/s, p50 {result['latency_ms_p50']:.1f} ms, "
             f"p99 {result['latency_ms_p99']:.1f} ms",
             f"  {'stage':<14}{'mean ms':>9}{'p50 ms':>9}{'p99 ms':>9}"]
    for k, v in result["stages_ms"].items():
        lines.append(f"  {k:<14}{v['mean']:>9.2f}{v['p50']:>9.2f}{v['p99']:>9.2f}")
    return "\n".join(lines)
