"""Timing of the whole WorldSession step and of each stage, p50/p99 (`mirage bench`).

The walk is an explore trajectory of an eval world: a first observation, then
generated frames with memory on, so memory read/write costs grow as they would
for a person walking. Warm-up frames are excluded from the statistics.
"""
from __future__ import annotations

from pathlib import Path

from engine.bench.walk import machine_info


def bench_step(model_dir: str | Path | None = None, frames: int = 200, warmup: int = 20, steps: int | None = None,
               memory: bool = True, scene_seed: int = 1_000_007, device: str = "cpu", layout: bool = True) -> dict:
    """Frames/s and per-stage latency of WorldSession.step at the model's resolution, on torch.

    The torch run of engine.bench.backend with the machine described; `mirage bench` also
    reports it as the torch backend's row instead of timing torch a second time.
    """
    from engine.bench.backend import bench_backend

    r = bench_backend("torch", frames=frames, model_dir=model_dir, steps=steps, warmup=warmup, memory=memory,
                      device=device, scene_seed=scene_seed, layout=layout)
    return {**r, "resolution": r["image_size"], "machine": machine_info(device)}


def format_table(result: dict) -> str:
    lines = [f"WorldSession.step at {result['resolution']}x{result['resolution']}, {result['steps']} sampling steps, "
             f"memory {'on' if result['memory'] else 'off'}, layout {result.get('layout', 'off')}, "
             f"{result['frames']} frames",
             f"  whole step: {result['fps']:.1f} frames/s, p50 {result['latency_ms_p50']:.1f} ms, "
             f"p99 {result['latency_ms_p99']:.1f} ms",
             f"  {'stage':<14}{'mean ms':>9}{'p50 ms':>9}{'p99 ms':>9}"]
    for k, v in result["stages_ms"].items():
        lines.append(f"  {k:<14}{v['mean']:>9.2f}{v['p50']:>9.2f}{v['p99']:>9.2f}")
    return "\n".join(lines)
